"""The configuration child resources of ``Microsoft.ApiManagement/service``: one table row per kind.

Each ``Kind`` says where the resource lives (its collection segments below the service), which
methods the specification defines for it, the name rule of its path parameter, the properties its
contract has (types, lengths, enums, required ones), and how it appears in the configuration
document (seed, admin view, backup blob). The behaviour that differs per kind (defaults, references,
secrets) is in ``contracts.py``; the HTTP handling that is the same for all of them in ``children.py``.

Sources, api-version 2024-05-01 (``../shared/apim-spec``): ``apimapis.json``, ``apimproducts.json``,
``apimnamedvalues.json``, ``apimbackends.json``, ``apimpolicies.json``, ``apimapiversionsets.json``,
``apimpolicyfragments.json``, ``apimloggers.json``, ``apimdiagnostics.json``, ``apimtags.json``,
``apimgroups.json``, ``apimcertificates.json``, ``apimschema.json``, ``apimsubscriptions.json``,
``apimcontenttypes.json`` (paths, operations, parameters) and ``definitions.json`` (contracts). The
constraints below are the ones those files state; nested objects are checked for their type only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

PROVIDER_TYPE = "Microsoft.ApiManagement/service"


@dataclass(frozen=True)
class Field:
    """One property of a contract's ``properties`` object."""

    type: str  # string | boolean | integer | array | object | any
    min_len: int | None = None
    max_len: int | None = None
    enum: tuple[str, ...] | None = None  # matched case-insensitively, stored in the spec's spelling
    pattern: str | None = None
    items: str | None = None  # array item type (string | object), or "enum" for arrays of ``enum`` values
    read_only: bool = False  # in the contract only: accepted in a body and ignored, as APIM does
    secret: bool = False  # accepted on PUT, never returned by GET or list (x-ms-secret)
    create_only: bool = False  # a create parameter that is not part of the stored contract


@dataclass(frozen=True)
class NameRule:
    """The path parameter naming an entity (``ApiIdRevParameter``, ``TagIdParameter`` ...)."""

    parameter: str
    max_len: int
    pattern: str | None = None
    min_len: int = 1

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a valid value of this parameter, or None."""
        if not self.min_len <= len(name) <= self.max_len:
            return f"must be {self.min_len}-{self.max_len} characters long"
        # Not in the spec's patterns, refused here anyway: a name travels in URLs and ids.
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "/" in name or "\\" in name:
            return "must not contain control characters, '/' or '\\'"
        if self.pattern is not None and re.fullmatch(self.pattern, name) is None:
            return f"must match the pattern '{self.pattern}'"
        return None


NO_SPECIALS = r"^[^*#&+:<>?]+$"


@dataclass(frozen=True)
class Kind:
    key: str  # lower-case collection segments below the service: "apis/operations"
    segment: str  # the collection segment as ARM spells it: "operations", "namedValues"
    entity: str  # APIM's entity word in messages: "Api not found."
    name: NameRule
    contract: str  # spec definition of one item, as answered
    collection: str  # spec definition of a list answer
    ops: frozenset[str]  # list get head put patch delete
    export_key: str  # key under the parent item in the configuration document
    fields: Mapping[str, Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # required on create (spec, plus what APIM requires)
    link: str | None = None  # a link to another entity: the key of the kind it names
    singleton: str | None = None  # the only valid name ("policy")
    paged: bool = True  # the list follows nextLink (x-ms-pageable)
    head_status: int = 200  # 200 + ETag (GetEntityTag), 204 (CheckEntityExists)
    actions: frozenset[str] = frozenset()  # POST .../{name}/{action}
    lro: bool = False  # PUT is a long-running operation in the spec: answers carry provisioningState
    api_delete: bool = False  # Api_Delete answers 202/204 only
    min_version: str = "2019-12-01"  # the first api-version whose spec has this path
    feature: str | None = None  # a tier feature (tiers.py) the kind needs
    virtual: bool = False  # a list computed from other kinds (revisions, an API's products)
    counted: bool = True  # the collection definition has ``count``
    free_form: bool = False  # properties are free-form (additionalProperties): stored as sent
    creates: bool = True  # PUT answers 201 for a new entity (portal settings always exist: 200)
    patch_status: int = 200  # PATCH answers the entity (200) or nothing (204: portal settings)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("/"))

    @property
    def parent_key(self) -> str:
        return self.key.rsplit("/", 1)[0] if "/" in self.key else ""

    @property
    def arm_type(self) -> str:
        return f"{PROVIDER_TYPE}/" + "/".join(SEGMENTS[p] for p in self.parts)


def _fields(**kwargs: Field) -> Mapping[str, Field]:
    return MappingProxyType(kwargs)


S = Field("string")
B = Field("boolean")
OBJ = Field("object")
RO = Field("string", read_only=True)
POLICY_FIELDS = _fields(value=S, format=Field("string", enum=("xml", "xml-link", "rawxml", "rawxml-link")))
TAG_FIELDS = _fields(displayName=Field("string", min_len=1, max_len=160))
GROUP_FIELDS = _fields(
    displayName=Field("string", min_len=1, max_len=300),
    description=Field("string", max_len=1000),
    builtIn=Field("boolean", read_only=True),
    type=Field("string", enum=("custom", "system", "external")),
    externalId=S,
)
API_TYPES = ("http", "soap", "websocket", "graphql", "odata", "grpc")
API_FIELDS = _fields(
    description=S,
    authenticationSettings=OBJ,
    subscriptionKeyParameterNames=OBJ,
    type=Field("string", enum=API_TYPES),
    apiRevision=Field("string", min_len=1, max_len=100),
    apiVersion=Field("string", max_len=100),
    isCurrent=B,
    isOnline=Field("boolean", read_only=True),
    apiRevisionDescription=Field("string", max_len=256),
    apiVersionDescription=Field("string", max_len=256),
    apiVersionSetId=S,
    subscriptionRequired=B,
    termsOfServiceUrl=S,
    contact=OBJ,
    license=OBJ,
    sourceApiId=S,
    displayName=Field("string", min_len=1, max_len=300),
    serviceUrl=Field("string", max_len=2000),
    path=Field("string", max_len=400),
    protocols=Field("array", items="enum", enum=("http", "https", "ws", "wss")),
    apiVersionSet=OBJ,
    provisioningState=RO,
    # ApiCreateOrUpdateProperties: import and creation parameters, not stored as such.
    value=Field("string", create_only=True),
    format=Field(
        "string",
        create_only=True,
        enum=("wadl-xml", "wadl-link-json", "swagger-json", "swagger-link-json", "wsdl", "wsdl-link", "openapi",
              "openapi+json", "openapi-link", "openapi+json-link", "graphql-link", "odata", "odata-link"),
    ),
    wsdlSelector=Field("object", create_only=True),
    apiType=Field("string", create_only=True, enum=API_TYPES),
    translateRequiredQueryParameters=Field("string", create_only=True, enum=("template", "query")),
)
OPERATION_FIELDS = _fields(
    templateParameters=Field("array", items="object"),
    description=Field("string", max_len=1000),
    request=OBJ,
    responses=Field("array", items="object"),
    policies=S,
    displayName=Field("string", min_len=1, max_len=300),
    method=S,
    urlTemplate=Field("string", min_len=1, max_len=1000),
)
SCHEMA_FIELDS = _fields(contentType=S, document=OBJ, provisioningState=RO)
VERSION_SET_FIELDS = _fields(
    description=S,
    versionQueryName=Field("string", min_len=1, max_len=100),
    versionHeaderName=Field("string", min_len=1, max_len=100),
    displayName=Field("string", min_len=1, max_len=100),
    versioningScheme=Field("string", enum=("Segment", "Query", "Header")),
)
PRODUCT_FIELDS = _fields(
    description=Field("string", max_len=1000),
    terms=S,
    subscriptionRequired=B,
    approvalRequired=B,
    subscriptionsLimit=Field("integer"),
    state=Field("string", enum=("notPublished", "published")),
    displayName=Field("string", min_len=1, max_len=300),
)
NAMED_VALUE_FIELDS = _fields(
    tags=Field("array", items="string"),
    secret=B,
    displayName=Field("string", min_len=1, max_len=256, pattern=r"^[A-Za-z0-9-._]+$"),
    value=Field("string", max_len=4096, secret=True),
    keyVault=OBJ,
    provisioningState=RO,
)
BACKEND_FIELDS = _fields(
    title=Field("string", min_len=1, max_len=300),
    description=Field("string", min_len=1, max_len=2000),
    resourceId=Field("string", min_len=1, max_len=2000),
    properties=OBJ,
    credentials=OBJ,
    proxy=OBJ,
    tls=OBJ,
    circuitBreaker=OBJ,
    pool=OBJ,
    type=Field("string", enum=("Single", "Pool")),
    url=Field("string", min_len=1, max_len=2000),
    protocol=Field("string", enum=("http", "soap")),
)
LOGGER_FIELDS = _fields(
    loggerType=Field("string", enum=("azureEventHub", "applicationInsights", "azureMonitor")),
    description=Field("string", max_len=256),
    credentials=OBJ,
    isBuffered=B,
    resourceId=S,
)
DIAGNOSTIC_FIELDS = _fields(
    alwaysLog=Field("string", enum=("allErrors",)),
    loggerId=S,
    sampling=OBJ,
    frontend=OBJ,
    backend=OBJ,
    logClientIp=B,
    httpCorrelationProtocol=Field("string", enum=("None", "Legacy", "W3C")),
    verbosity=Field("string", enum=("verbose", "information", "error")),
    operationNameFormat=Field("string", enum=("Name", "Url")),
    metrics=B,
)
FRAGMENT_FIELDS = _fields(
    value=S,
    description=Field("string", max_len=1000),
    format=Field("string", enum=("xml", "rawxml")),
    provisioningState=RO,
)
CERTIFICATE_FIELDS = _fields(
    data=Field("string", secret=True),
    password=Field("string", secret=True),
    keyVault=OBJ,
    # CertificateContractProperties: derived from the certificate, read-only on PUT.
    subject=RO,
    thumbprint=RO,
    expirationDate=RO,
)
GLOBAL_SCHEMA_FIELDS = _fields(
    schemaType=Field("string", enum=("xml", "json")),
    description=S,
    value=Field("any"),
    document=OBJ,
    provisioningState=RO,
)
SUBSCRIPTION_STATES = ("suspended", "active", "expired", "submitted", "rejected", "cancelled")
SUBSCRIPTION_FIELDS = _fields(
    ownerId=S,
    scope=S,
    displayName=Field("string", min_len=0, max_len=100),
    state=Field("string", enum=SUBSCRIPTION_STATES),
    primaryKey=Field("string", min_len=1, max_len=256, secret=True),
    secondaryKey=Field("string", min_len=1, max_len=256, secret=True),
    allowTracing=B,
    createdDate=RO,
    startDate=RO,
    expirationDate=Field("string"),
    endDate=RO,
    notificationDate=RO,
    stateComment=S,
)
CONTENT_TYPE_FIELDS = _fields(id=S, name=S, description=S, schema=OBJ, version=S)
# PortalSigninSettings, PortalSignupSettings, PortalDelegationSettings (apimportalsettings.json): one kind, the
# name says which of them a resource is.
PORTAL_SETTINGS_FIELDS = _fields(
    enabled=B,
    termsOfService=OBJ,
    url=S,
    validationKey=Field("string", secret=True),
    subscriptions=OBJ,
    userRegistration=OBJ,
)

READ = frozenset({"list", "get", "head"})
CRUD = READ | {"put", "delete"}
CRUDP = CRUD | {"patch"}
LINK_OPS = frozenset({"list", "get", "head", "put", "delete"})

# Collection segment (lower case) -> ARM's spelling in ids, types and RBAC actions.
SEGMENTS: dict[str, str] = {
    "apis": "apis",
    "operations": "operations",
    "policies": "policies",
    "schemas": "schemas",
    "tags": "tags",
    "diagnostics": "diagnostics",
    "revisions": "revisions",
    "products": "products",
    "groups": "groups",
    "apiversionsets": "apiVersionSets",
    "namedvalues": "namedValues",
    "backends": "backends",
    "loggers": "loggers",
    "policyfragments": "policyFragments",
    "certificates": "certificates",
    "subscriptions": "subscriptions",
    "contenttypes": "contentTypes",
    "contentitems": "contentItems",
    "portalsettings": "portalsettings",
    "reports": "reports",
}

_POLICY_NAME = NameRule("policyId", 64)
_KINDS: tuple[Kind, ...] = (
    Kind("policies", "policies", "Policy", _POLICY_NAME, "PolicyContract", "PolicyCollection", CRUD, "policy",
         POLICY_FIELDS, ("value",), singleton="policy"),
    Kind("apis", "apis", "Api", NameRule("apiId", 256, NO_SPECIALS), "ApiContract", "ApiCollection",
         CRUDP, "apis", API_FIELDS, ("path", "displayName"), lro=True, api_delete=True),
    Kind("apis/revisions", "revisions", "Api", NameRule("apiId", 256, NO_SPECIALS), "ApiRevisionContract",
         "ApiRevisionCollection", frozenset({"list"}), "revisions", virtual=True),
    Kind("apis/products", "products", "Product", NameRule("productId", 256), "ProductContract",
         "ProductCollection", frozenset({"list"}), "products", virtual=True),
    Kind("apis/operations", "operations", "Operation", NameRule("operationId", 80), "OperationContract",
         "OperationCollection", CRUDP, "operations", OPERATION_FIELDS, ("displayName", "method", "urlTemplate")),
    Kind("apis/operations/policies", "policies", "Policy", _POLICY_NAME, "PolicyContract", "PolicyCollection",
         CRUD, "policy", POLICY_FIELDS, ("value",), singleton="policy", paged=False),
    Kind("apis/operations/tags", "tags", "Tag", NameRule("tagId", 80, NO_SPECIALS), "TagContract",
         "TagCollection", LINK_OPS, "tags", link="tags"),
    Kind("apis/policies", "policies", "Policy", _POLICY_NAME, "PolicyContract", "PolicyCollection", CRUD,
         "policy", POLICY_FIELDS, ("value",), singleton="policy", paged=False),
    Kind("apis/schemas", "schemas", "Schema", NameRule("schemaId", 80), "SchemaContract", "SchemaCollection",
         CRUD, "schemas", SCHEMA_FIELDS, ("contentType", "document"), lro=True),
    Kind("apis/tags", "tags", "Tag", NameRule("tagId", 80, NO_SPECIALS), "TagContract", "TagCollection",
         LINK_OPS, "tags", link="tags"),
    Kind("apis/diagnostics", "diagnostics", "Diagnostic", NameRule("diagnosticId", 80, NO_SPECIALS),
         "DiagnosticContract", "DiagnosticCollection", CRUDP, "diagnostics", DIAGNOSTIC_FIELDS, ("loggerId",)),
    Kind("apiversionsets", "apiVersionSets", "ApiVersionSet", NameRule("versionSetId", 80, NO_SPECIALS),
         "ApiVersionSetContract", "ApiVersionSetCollection", CRUDP, "apiVersionSets", VERSION_SET_FIELDS,
         ("displayName", "versioningScheme")),
    Kind("products", "products", "Product", NameRule("productId", 256), "ProductContract", "ProductCollection",
         CRUDP, "products", PRODUCT_FIELDS, ("displayName",)),
    Kind("products/apis", "apis", "Api", NameRule("apiId", 256, NO_SPECIALS), "ApiContract", "ApiCollection",
         frozenset({"list", "head", "put", "delete"}), "apis", link="apis", head_status=204),
    Kind("products/groups", "groups", "Group", NameRule("groupId", 256), "GroupContract", "GroupCollection",
         frozenset({"list", "head", "put", "delete"}), "groups", link="groups", head_status=204, feature="groups"),
    Kind("products/policies", "policies", "Policy", _POLICY_NAME, "PolicyContract", "PolicyCollection", CRUD,
         "policy", POLICY_FIELDS, ("value",), singleton="policy"),
    Kind("products/tags", "tags", "Tag", NameRule("tagId", 80, NO_SPECIALS), "TagContract", "TagCollection",
         LINK_OPS, "tags", link="tags"),
    Kind("namedvalues", "namedValues", "NamedValue", NameRule("namedValueId", 256, NO_SPECIALS),
         "NamedValueContract", "NamedValueCollection", CRUDP, "namedValues", NAMED_VALUE_FIELDS, ("displayName",),
         actions=frozenset({"listvalue", "refreshsecret"}), lro=True),
    Kind("backends", "backends", "Backend", NameRule("backendId", 80), "BackendContract", "BackendCollection",
         CRUDP, "backends", BACKEND_FIELDS, ("url", "protocol"), actions=frozenset({"reconnect"})),
    Kind("loggers", "loggers", "Logger", NameRule("loggerId", 256, NO_SPECIALS), "LoggerContract",
         "LoggerCollection", CRUDP, "loggers", LOGGER_FIELDS, ("loggerType",)),
    Kind("diagnostics", "diagnostics", "Diagnostic", NameRule("diagnosticId", 80, NO_SPECIALS),
         "DiagnosticContract", "DiagnosticCollection", CRUDP, "diagnostics", DIAGNOSTIC_FIELDS, ("loggerId",)),
    Kind("policyfragments", "policyFragments", "PolicyFragment",
         NameRule("id", 80, r"(^[\w]+$)|(^[\w][\w\-]+[\w]$)"), "PolicyFragmentContract", "PolicyFragmentCollection",
         CRUD, "policyFragments", FRAGMENT_FIELDS, ("value",), actions=frozenset({"listreferences"}), lro=True,
         min_version="2021-12-01"),
    Kind("tags", "tags", "Tag", NameRule("tagId", 80, NO_SPECIALS), "TagContract", "TagCollection", CRUDP, "tags",
         TAG_FIELDS, ("displayName",)),
    Kind("groups", "groups", "Group", NameRule("groupId", 256), "GroupContract", "GroupCollection", CRUDP,
         "groups", GROUP_FIELDS, ("displayName",), feature="groups"),
    Kind("certificates", "certificates", "Certificate", NameRule("certificateId", 80, NO_SPECIALS),
         "CertificateContract", "CertificateCollection", CRUD, "certificates", CERTIFICATE_FIELDS,
         actions=frozenset({"refreshsecret"})),
    Kind("schemas", "schemas", "Schema", NameRule("schemaId", 80), "GlobalSchemaContract",
         "GlobalSchemaCollection", CRUD, "schemas", GLOBAL_SCHEMA_FIELDS, ("schemaType",), lro=True,
         min_version="2021-04-01"),
    Kind("subscriptions", "subscriptions", "Subscription", NameRule("sid", 256, NO_SPECIALS),
         "SubscriptionContract", "SubscriptionCollection", CRUDP, "subscriptions", SUBSCRIPTION_FIELDS,
         ("scope", "displayName"), actions=frozenset({"listsecrets", "regenerateprimarykey",
                                                      "regeneratesecondarykey"})),
    Kind("contenttypes", "contentTypes", "ContentType", NameRule("contentTypeId", 80), "ContentTypeContract",
         "ContentTypeCollection", frozenset({"list", "get", "put", "delete"}), "contentTypes", CONTENT_TYPE_FIELDS,
         feature="developerPortal", counted=False),
    Kind("contenttypes/contentitems", "contentItems", "ContentItem", NameRule("contentItemId", 80),
         "ContentItemContract", "ContentItemCollection", CRUD, "contentItems", feature="developerPortal",
         counted=False, free_form=True),
    Kind("portalsettings", "portalsettings", "PortalSettings",
         NameRule("portalSettingsName", 10, r"^(?i:signin|signup|delegation)$"), "PortalSettingsContract",
         "PortalSettingsCollection", frozenset({"list", "get", "head", "put", "patch"}), "portalSettings",
         PORTAL_SETTINGS_FIELDS, actions=frozenset({"listsecrets"}), feature="developerPortal", paged=False,
         creates=False, patch_status=204),
    # Reports_ListBy* (apimreports.json): GET reports/{byApi|byOperation|...}, a list of records (reports.py).
    Kind("reports", "reports", "Report", NameRule("report", 20), "ReportCollection", "ReportCollection",
         frozenset({"get"}), "reports", feature="reports", virtual=True),
)
KINDS: Mapping[str, Kind] = MappingProxyType({k.key: k for k in _KINDS})

# Stored, not served: users have no specification in ../shared (apimusers.json); the seed and
# backups carry them (subscriptions name their owners) and the admin view shows them.
USERS_KEY = "users"

# The order a configuration document is imported in: what an entity refers to comes first.
IMPORT_ORDER: tuple[str, ...] = (
    "tags", "groups", USERS_KEY, "namedvalues", "certificates", "backends", "loggers", "diagnostics",
    "policyfragments", "schemas", "apiversionsets", "apis", "products", "subscriptions", "contenttypes",
    "portalsettings", "policies",
)
# Children of each parent kind, in import order.
CHILD_ORDER: dict[str, tuple[str, ...]] = {
    "apis": ("apis/schemas", "apis/operations", "apis/policies", "apis/tags", "apis/diagnostics"),
    "apis/operations": ("apis/operations/policies", "apis/operations/tags"),
    "products": ("products/apis", "products/groups", "products/tags", "products/policies"),
    "contenttypes": ("contenttypes/contentitems",),
}
POLICY_KINDS = ("policies", "apis/policies", "apis/operations/policies", "products/policies")
TAG_LINK_KINDS = ("apis/tags", "apis/operations/tags", "products/tags")
DIAGNOSTIC_KINDS = ("diagnostics", "apis/diagnostics")


def kind_for(parts: tuple[str, ...]) -> Kind | None:
    """The kind whose collection segments (lower case) are ``parts``."""
    return KINDS.get("/".join(parts))


@dataclass(frozen=True)
class ChildRoute:
    """A request below ``service/{name}/``: a collection, one entity, or an action on one."""

    kind: Kind
    names: tuple[str, ...]  # the names in the path, outermost first (an entity request ends with its own)
    operation: str  # list | get | head | put | patch | delete | action
    action: str | None = None  # lower case: listvalue, refreshsecret, listsecrets ...

    @property
    def is_entity(self) -> bool:
        return self.operation != "list"


class ChildRouteError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status  # 404: no such resource type; 405: method not defined for it


METHOD_OPERATIONS = {"GET": "get", "HEAD": "head", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}


def match_child(method: str, segments: tuple[str, ...]) -> ChildRoute:
    """The route of a request for ``segments`` (decoded, after the service name) and ``method``.

    :raises ChildRouteError: 404 for a path that names no child resource type, 405 for a method the
        specification does not define for it.
    """
    if not segments or any(s == "" for s in segments):
        raise ChildRouteError(404)
    parts = tuple(s.lower() for s in segments[0::2])
    names = tuple(segments[1::2])
    if len(segments) % 2 == 0:
        kind = kind_for(parts)
        if kind is None or (kind.virtual and kind.key != "reports"):
            raise ChildRouteError(404)
        operation = METHOD_OPERATIONS.get(method.upper())
        if operation is None or operation not in kind.ops:
            raise ChildRouteError(405)
        return ChildRoute(kind, names, operation)
    kind = kind_for(parts)
    owner = kind_for(parts[:-1]) if len(parts) > 1 else None
    if owner is not None and parts[-1] in owner.actions:
        if method.upper() != "POST":
            raise ChildRouteError(405)
        return ChildRoute(owner, names, "action", parts[-1])
    if kind is None:
        raise ChildRouteError(404)
    if method.upper() != "GET" or "list" not in kind.ops:
        raise ChildRouteError(405)
    return ChildRoute(kind, names, "list")
