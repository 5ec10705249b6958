"""Per-kind rules of the configuration entities: what a body may hold, defaults, references, secrets.

``clean_properties`` checks a body's ``properties`` against a kind's fields (types, lengths, enums,
patterns, required ones); each kind's ``Behaviour`` then adds APIM's own rules (a product-API link to an
API that does not exist is refused, a secret named value is never returned, a logger's instrumentation
key becomes a ``{{Logger-Credentials--...}}`` named value, a policy fragment still included somewhere
cannot be deleted ...) and renders the stored entity as the contract the spec defines.

Error wording, where real answers are on record: ``ValidationError`` "One or more fields contain
incorrect values:" with ``{code, target, message}`` details and "Property 'x' not found." (Azure/apiops
#491); "Error in element 'include-fragment' on line L, column C: Policy fragment with id 'x' could not be
found." (Azure/apiops #668); "The Policy Fragment 'x' is used by the following entities:\\r\\n/policies/policy\\r\\n"
(Azure/apiops-cli #261); "Cannot delete the current revision of an API." (Azure/apiops-cli #142);
"Api not found." (Azure/apiops #494); "Validation failed for logger-id 'x'. Exception Received 'Invalid
instrumentation key for Application Insights Logger'" (Azure/apiops #101). The rest is written down in
emulator/README.md ("Choices where Azure is undocumented").
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from . import tiers
from .entity import Entity
from .errors import ArmError, entity_error, not_found, validation_error
from .kinds import DIAGNOSTIC_KINDS, KINDS, POLICY_KINDS, SEGMENTS, TAG_LINK_KINDS, Field, Kind
from .resources import etag_for
from .state import iso
from .views import Ctx

REV_RE = re.compile(r"^(?P<base>.+);rev=(?P<rev>\d+)$", re.IGNORECASE)
NAMED_VALUE_REF_RE = re.compile(r"\{\{([^{}]+)\}\}")
FRAGMENT_REF_RE = re.compile(r"<include-fragment\s+fragment-id\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
KEY_VAULT_SECRET_RE = re.compile(r"^https://[^/\s]+/secrets/[^/\s]+(?:/[^/\s]*)?$", re.IGNORECASE)
HTTP_METHOD_RE = re.compile(r"^[A-Za-z]+$")
TEMPLATE_PARAM_RE = re.compile(r"\{\*?([^{}]+)\}")
LOGGER_SECRET_KEYS = ("instrumentationKey", "connectionString")
LOGGER_CREDENTIALS_PREFIX = "Logger-Credentials--"
DEFAULT_SERVICE_POLICY = (
    "<policies>\r\n\t<inbound />\r\n\t<backend>\r\n\t\t<forward-request />\r\n\t</backend>\r\n"
    "\t<outbound />\r\n\t<on-error />\r\n</policies>"
)
BUILTIN_GROUPS = {
    "administrators": ("Administrators", "Administrators is a built-in group. Its membership is managed by the "
                                         "system. Microsoft Azure subscription administrators fall into this group."),
    "developers": ("Developers", "Developers is a built-in group. Its membership is managed by the system. Signed-in "
                                 "users fall into this group."),
    "guests": ("Guests", "Guests is a built-in group. Its membership is managed by the system. Unauthenticated users "
                         "visiting the developer portal fall into this group."),
}
SUBSCRIPTION_KEY_NAMES = {"header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"}


# -- properties ------------------------------------------------------------------------------------
def clean_properties(kind: Kind, props: dict[str, Any], *, mode: str, partial: bool) -> dict[str, Any]:
    """The properties of a body that the kind's contract knows, checked; unknown ones are dropped (APIM's
    deserializer ignores them), read-only ones too unless a configuration document is imported."""
    if kind.free_form:
        return dict(props)
    by_lower = {name.lower(): name for name in kind.fields}
    out: dict[str, Any] = {}
    for key, value in props.items():
        name = by_lower.get(str(key).lower())
        if name is None or value is None:
            continue
        spec = kind.fields[name]
        if spec.read_only and mode == "arm":
            continue
        out[name] = check_field(name, spec, value)
    if not partial:
        missing = [name for name in kind.required if name not in out]
        if missing:
            raise validation_error(missing[0], f"The {missing[0]} field is required.")
    return out


def check_field(name: str, spec: Field, value: Any) -> Any:
    """``value`` checked against one field; strings of an enum come back in the spec's spelling."""
    kind = spec.type
    if kind == "any":
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise validation_error(name, f"'{name}' must be a string.")
        if spec.min_len is not None and len(value) < spec.min_len:
            raise validation_error(name, f"'{name}' must be at least {spec.min_len} characters long.")
        if spec.max_len is not None and len(value) > spec.max_len:
            raise validation_error(name, f"'{name}' must be at most {spec.max_len} characters long.")
        if spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
            raise validation_error(name, f"'{name}' must match the pattern '{spec.pattern}'.")
        if spec.enum is not None:
            return _enum(name, spec.enum, value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise validation_error(name, f"'{name}' must be true or false.")
        return value
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
            raise validation_error(name, f"'{name}' must be a 32-bit integer.")
        return value
    if kind == "object":
        if not isinstance(value, dict):
            raise validation_error(name, f"'{name}' must be an object.")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise validation_error(name, f"'{name}' must be an array.")
        if spec.items == "string" and not all(isinstance(v, str) for v in value):
            raise validation_error(name, f"'{name}' must be an array of strings.")
        if spec.items == "object" and not all(isinstance(v, dict) for v in value):
            raise validation_error(name, f"'{name}' must be an array of objects.")
        if spec.items == "enum" and spec.enum is not None:
            return [_enum(name, spec.enum, v) for v in value]
        return value
    raise AssertionError(f"unknown field type {kind}")


def _enum(name: str, allowed: tuple[str, ...], value: Any) -> str:
    for option in allowed:
        if isinstance(value, str) and option.lower() == value.lower():
            return option
    raise validation_error(name, f"'{value}' is not a valid value of '{name}'. Valid values: {', '.join(allowed)}.")


# -- names and ids ---------------------------------------------------------------------------------
def split_revision(name: str) -> tuple[str, str | None]:
    """``echo-api;rev=2`` -> (``echo-api``, ``2``); a plain name has no revision."""
    match = REV_RE.match(name)
    return (match["base"], match["rev"]) if match else (name, None)


def entity_ref(text: str, segment: str) -> str | None:
    """The name in an entity reference ``/apiVersionSets/x`` or ``/subscriptions/.../service/s/apiVersionSets/x``."""
    parts = [p for p in text.strip().split("/") if p]
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lower() == segment.lower():
            return parts[i + 1] if i + 1 < len(parts) else None
    return None


def resource_id(ctx: Ctx, rpath: str) -> str:
    return f"{ctx.service.resource_id}/{rpath}"


def rpath_of(parent: Entity | None, kind: Kind, name: str) -> str:
    prefix = f"{parent.rpath}/" if parent is not None else ""
    return f"{prefix}{kind.segment}/{name}"


def path_of(parent: Entity | None, kind: Kind, name: str) -> str:
    prefix = f"{parent.path}/" if parent is not None else ""
    return f"{prefix}{kind.parts[-1]}/{name.lower()}"


def etag_text(entity: Entity) -> str:
    """The entity's ETag, as APIM's look: base64 of an 8-byte version (``AAAAAAAAAAa=``)."""
    return etag_for(entity.etag)


def new_subscription_key() -> str:
    return secrets.token_hex(16)


def version_time(entity: Entity) -> str:
    """When an entity last changed: its version is microseconds of the wall clock."""
    return iso(entity.etag / 1_000_000)


# -- policies --------------------------------------------------------------------------------------
def check_policy_document(ctx: Ctx, value: str, fmt: str, *, root: str, target: str = "value") -> None:
    """APIM's checks of a policy or fragment document: size, form, named values and fragments it uses."""
    limit = tiers.policy_limit(ctx.service.tier)
    if len(value.encode()) > limit:
        raise validation_error(target, f"The policy document is larger than {limit} bytes, the limit of the "
                                       f"{ctx.service.tier} tier.")
    if fmt.endswith("-link"):
        raise validation_error("format", f"Format '{fmt}' makes API Management fetch the document from a URL; the "
                                         "emulator does not fetch (send the document inline as 'xml' or 'rawxml').")
    lowered = value.lower()
    if "<!doctype" in lowered or "<!entity" in lowered:
        raise validation_error(target, "The policy document must not contain a DOCTYPE or entity declarations.")
    if fmt == "xml":
        try:
            element = ET.fromstring(value)
        except ET.ParseError as exc:
            raise validation_error(target, f"The policy document is not well-formed XML ({exc}).") from None
        if element.tag != root:
            raise validation_error(
                target, f"The root element of the document must be '<{root}>', not '<{element.tag}>'."
            )
    elif not re.match(rf"^\s*(?:<!--.*?-->\s*)*<{root}[\s>/]", value, re.DOTALL):
        raise validation_error(target, f"The root element of the document must be '<{root}>'.")
    for match in NAMED_VALUE_REF_RE.finditer(value):
        require_named_value(ctx, match[1].strip(), target)
    for match in FRAGMENT_REF_RE.finditer(value):
        fragment = match[1]
        if ctx.view.get(f"policyfragments/{fragment.lower()}") is None:
            line = value.count("\n", 0, match.start()) + 1
            column = match.start() - (value.rfind("\n", 0, match.start()) + 1) + 1
            raise validation_error(
                "include-fragment",
                f"Error in element 'include-fragment' on line {line}, column {column}: Policy fragment with id "
                f"'{fragment}' could not be found.",
            )


def require_named_value(ctx: Ctx, display_name: str, target: str) -> Entity:
    """A ``{{name}}`` reference: named values are referenced by display name (Azure/apiops #321)."""
    found = ctx.view.by_akey(("namedvalues",), display_name.lower())
    if not found:
        raise validation_error(target, f"Property '{display_name}' not found.")
    return found[0]


def used_by(what: str, name: str, users: list[Entity]) -> ArmError:
    """APIM's refusal to delete something still referenced (Azure/apiops-cli #261)."""
    lines = "".join(f"/{e.rpath}\r\n" for e in users)
    return entity_error(400, "ValidationError", f"The {what} '{name}' is used by the following entities:\r\n{lines}")


# -- behaviours ------------------------------------------------------------------------------------
@dataclass
class Write:
    """One entity being created or updated: where, under which name, with which checked properties."""

    ctx: Ctx
    kind: Kind
    parent: Entity | None
    name: str
    props: dict[str, Any]
    existing: Entity | None


class Behaviour:
    """The default: store the checked properties, render them."""

    defaults: ClassVar[dict[str, Any]] = {}

    def prepare(self, w: Write) -> dict[str, Any]:
        props = w.props
        return props

    def akey(self, entity: Entity) -> str | None:
        return None

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        properties = dict(self.defaults)
        properties.update({k: v for k, v in entity.props.items() if not kind.fields.get(k, Field("any")).secret})
        if kind.lro:
            properties["provisioningState"] = "Succeeded"
        return properties

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        """Raise if APIM refuses to delete ``entity``."""

    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        """Delete what goes with ``entity`` outside its own subtree."""


class PolicyBehaviour(Behaviour):
    ROOTS: ClassVar[dict[str, str]] = {"policyfragments": "fragment"}

    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, kind, props = w.ctx, w.kind, w.props
        fmt = props.get("format") or "xml"
        check_policy_document(ctx, props["value"], fmt, root=self.ROOTS.get(kind.key, "policies"))
        return props | {"format": fmt}

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        properties = {"format": "xml"} | entity.props
        if kind.lro:
            properties["provisioningState"] = "Succeeded"
        return properties


class FragmentBehaviour(PolicyBehaviour):
    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        users = fragment_users(ctx, entity.name)
        if users:
            raise used_by("Policy Fragment", entity.name, users)


def fragment_users(ctx: Ctx, fragment: str) -> list[Entity]:
    candidates = ctx.view.of_kinds((*POLICY_KINDS, "policyfragments"), containing=fragment)
    return [e for e in candidates
            if any(m[1].lower() == fragment.lower() for m in FRAGMENT_REF_RE.finditer(str(e.props.get("value", ""))))]


class ApiBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, name, props, existing = w.ctx, w.name, w.props, w.existing
        base, rev = split_revision(name)
        if props.get("format") is not None or props.get("value") is not None:
            raise validation_error("format", "The emulator does not import API definitions (value/format); create "
                                             "the API, then its operations (ApiOperation_CreateOrUpdate).")
        for create_only in ("wsdlSelector", "translateRequiredQueryParameters", "value", "format"):
            props.pop(create_only, None)
        api_type = props.pop("apiType", None)
        if api_type is not None and "type" not in props:
            props["type"] = api_type
        props.pop("sourceApiId", None)
        props.pop("apiVersionSet", None)  # details of the set: derived from apiVersionSetId
        service_url = props.get("serviceUrl")
        if service_url:
            parsed = urlsplit(service_url)
            if parsed.scheme.lower() not in ("http", "https", "ws", "wss") or not parsed.netloc:
                raise validation_error("serviceUrl", f"'{service_url}' is not a valid absolute URL.")
        if "protocols" in props and not props["protocols"]:
            raise validation_error("protocols", "At least one protocol is required.")
        if rev is not None:
            props["apiRevision"] = rev
        elif existing is not None:
            props.setdefault("apiRevision", existing.props.get("apiRevision", "1"))
        else:
            props.setdefault("apiRevision", "1")
        version_set = props.get("apiVersionSetId")
        if version_set:
            set_name = entity_ref(version_set, "apiVersionSets")
            found = ctx.view.get(f"apiversionsets/{set_name.lower()}") if set_name else None
            if found is None:
                raise validation_error("apiVersionSetId", f"ApiVersionSet '{set_name or version_set}' not found.")
            props["apiVersionSetId"] = f"/apiVersionSets/{found.name}"
        path = str(props.get("path", "")).strip("/")
        for other in ctx.view.by_akey(("apis",), path.lower()):
            other_base, _ = split_revision(other.name)
            if other_base.lower() == base.lower():
                continue
            same_set = (props.get("apiVersionSetId") or "").lower() == str(
                other.props.get("apiVersionSetId") or "").lower() != ""
            if same_set and (props.get("apiVersion") or "") != (other.props.get("apiVersion") or ""):
                continue
            raise validation_error(
                "path",
                f"Cannot create API '{base}' with the same Path '{path}' as API '{other_base}' unless it's a part "
                "of the same version set",
            )
        props.pop("isCurrent", None)  # decided by the caller: a revision becomes current explicitly
        return props

    def akey(self, entity: Entity) -> str | None:
        return str(entity.props.get("path", "")).strip("/").lower()

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        props = entity.props
        properties: dict[str, Any] = {
            "displayName": split_revision(entity.name)[0],
            "apiRevision": "1",
            "subscriptionRequired": True,
            "serviceUrl": None,
            "path": "",
            "protocols": ["https"],
            "authenticationSettings": {"oAuth2": None, "openid": None},
            "subscriptionKeyParameterNames": dict(SUBSCRIPTION_KEY_NAMES),
        }
        properties.update(props)
        properties["isCurrent"] = not entity.hidden
        if props.get("apiVersionSetId"):
            properties["apiVersionSetId"] = resource_id(ctx, str(props["apiVersionSetId"]).lstrip("/"))
        properties["provisioningState"] = "Succeeded"
        return properties

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        if query.get("addressed_revision") and not entity.hidden:
            raise entity_error(400, "ValidationError", "Cannot delete the current revision of an API.")

    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        if entity.hidden:
            return  # one revision; the API, its links and subscriptions stay
        base = split_revision(entity.name)[0].lower()
        for other in other_revisions(ctx, base):
            ctx.view.delete_tree(other.path)
        for link in ctx.view.by_akey(("products/apis",), base):
            ctx.view.delete_tree(link.path)
        for sub in ctx.view.by_akey(("subscriptions",), f"/apis/{base}"):
            ctx.view.delete_tree(sub.path)


def other_revisions(ctx: Ctx, base: str) -> list[Entity]:
    """The API's revisions that are not current (at ``apis/{base};rev={n}``), whatever their path says."""
    return [e for e in ctx.view.with_prefix(f"apis/{base.lower()};rev=") if e.kind == "apis" and e.hidden]


class OperationBehaviour(Behaviour):
    defaults: ClassVar[dict[str, Any]] = {"templateParameters": [], "responses": []}

    def prepare(self, w: Write) -> dict[str, Any]:
        props = w.props
        method = props["method"]
        if not HTTP_METHOD_RE.match(method):
            raise validation_error("method", f"'{method}' is not a valid HTTP method.")
        props["method"] = method.upper()
        template = props["urlTemplate"]
        if not template.startswith("/"):
            raise validation_error("urlTemplate", "The URL template must start with '/'.")
        used = {p.lower() for p in TEMPLATE_PARAM_RE.findall(template.split("?", 1)[0])}
        declared = set()
        for i, parameter in enumerate(props.get("templateParameters") or []):
            if not isinstance(parameter.get("name"), str) or not isinstance(parameter.get("type"), str):
                raise validation_error(f"templateParameters[{i}]", "A template parameter needs a name and a type.")
            declared.add(parameter["name"].lower())
        if used != declared:
            raise validation_error(
                "templateParameters",
                "All template parameters used in the UriTemplate must be defined in the Operation, and vice-versa.",
            )
        return props

    def akey(self, entity: Entity) -> str | None:
        template = TEMPLATE_PARAM_RE.sub("{}", str(entity.props.get("urlTemplate", "")).split("?", 1)[0])
        return f"{entity.parent}|{entity.props.get('method', '')} {template.rstrip('/').lower()}"

    def after_check(self, ctx: Ctx, entity: Entity) -> None:
        for other in ctx.view.by_akey(("apis/operations",), self.akey(entity) or ""):
            if other.path != entity.path:
                raise validation_error(
                    "urlTemplate",
                    f"Operation '{other.name}' has the same method and URL template "
                    f"({entity.props['method']} {entity.props['urlTemplate']}).",
                )


class LinkBehaviour(Behaviour):
    """A link to another entity (product-API, product-group, tag on an API/operation/product)."""

    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, kind, name = w.ctx, w.kind, w.name
        assert kind.link is not None
        if link_target(ctx, kind, name) is None:
            raise not_found(KINDS[kind.link].entity)
        return {}

    def akey(self, entity: Entity) -> str | None:
        return split_revision(entity.name)[0].lower()


def link_target(ctx: Ctx, kind: Kind, name: str) -> Entity | None:
    assert kind.link is not None
    base = split_revision(name)[0] if kind.link == "apis" else name
    return ctx.view.get(f"{kind.link}/{base.lower()}")


class VersionSetBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        props = w.props
        scheme = props.get("versioningScheme")
        if scheme == "Query" and not props.get("versionQueryName"):
            raise validation_error("versionQueryName", "versionQueryName is required for the Query versioning scheme.")
        if scheme == "Header" and not props.get("versionHeaderName"):
            raise validation_error("versionHeaderName",
                                   "versionHeaderName is required for the Header versioning scheme.")
        return props

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        users = [e for e in ctx.view.of_kinds(("apis",), containing=f"/apiVersionSets/{entity.name}")
                 if str(e.props.get("apiVersionSetId", "")).lower() == f"/apiversionsets/{entity.name.lower()}"]
        if users:
            raise used_by("Api Version Set", entity.name, users)


class ProductBehaviour(Behaviour):
    defaults: ClassVar[dict[str, Any]] = {"subscriptionRequired": True, "state": "notPublished"}

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        subscriptions = ctx.view.by_akey(("subscriptions",), f"/products/{entity.name.lower()}")
        if subscriptions and query.get("deletesubscriptions", "").lower() != "true":
            raise entity_error(
                400, "ValidationError",
                f"Product '{entity.name}' has {len(subscriptions)} subscription(s). Delete them first, or delete the "
                "product with deleteSubscriptions=true.",
            )

    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        for sub in ctx.view.by_akey(("subscriptions",), f"/products/{entity.name.lower()}"):
            ctx.view.delete_tree(sub.path)


class TagBehaviour(Behaviour):
    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        for link in ctx.view.by_akey(TAG_LINK_KINDS, entity.name.lower()):
            ctx.view.delete_tree(link.path)


class GroupBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, props, existing = w.ctx, w.props, w.existing
        if existing is not None and existing.props.get("builtIn"):
            # Built-in groups keep being system groups whatever the body says.
            return props | {"builtIn": True, "type": "system"}
        if ctx.mode == "arm":
            props.pop("builtIn", None)
            if props.get("type") == "system":
                raise validation_error("type", "Groups of type 'system' are built in; create 'custom' or 'external' "
                                               "groups.")
        props.setdefault("type", "custom")
        if props["type"] == "external" and not props.get("externalId"):
            raise validation_error("externalId", "externalId is required for an external group.")
        return props

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        return {"builtIn": False, "type": "custom"} | entity.props

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        if entity.props.get("builtIn"):
            raise entity_error(400, "ValidationError", f"The built-in group '{entity.name}' cannot be deleted.")

    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        for link in ctx.view.by_akey(("products/groups",), entity.name.lower()):
            ctx.view.delete_tree(link.path)


def check_key_vault(ctx: Ctx, key_vault: dict[str, Any], target: str = "keyVault") -> dict[str, Any]:
    """A Key Vault reference: the secret identifier's form, and an identity of the service to read it with."""
    identifier = key_vault.get("secretIdentifier")
    if not isinstance(identifier, str) or not KEY_VAULT_SECRET_RE.match(identifier):
        raise validation_error(f"{target}.secretIdentifier",
                               "secretIdentifier must be a Key Vault secret URL: https://{vault}/secrets/{name}[/{version}].")
    client_id = key_vault.get("identityClientId")
    if client_id is not None and not isinstance(client_id, str):
        raise validation_error(f"{target}.identityClientId", "identityClientId must be a string.")
    if ctx.mode == "arm":
        identity = ctx.service.identity or {}
        if client_id:
            clients = {str(u.get("clientId", "")).lower()
                       for u in (identity.get("userAssignedIdentities") or {}).values()}
            if client_id.lower() not in clients:
                raise validation_error(f"{target}.identityClientId",
                                       f"User assigned managed identity with client id '{client_id}' is not assigned "
                                       "to "
                                       f"API Management service '{ctx.service.name}'.")
        elif "SystemAssigned" not in str(identity.get("type", "")):
            raise validation_error(target, f"System assigned managed identity is not enabled on API Management service "
                                           f"'{ctx.service.name}'; it reads Key Vault secrets without "
                                           "identityClientId.")
    return {"secretIdentifier": identifier, "identityClientId": client_id}


def key_vault_view(entity: Entity) -> dict[str, Any]:
    key_vault = dict(entity.props["keyVault"])
    key_vault["lastStatus"] = {"code": "Success", "message": None, "timeStampUtc": version_time(entity)}
    return key_vault


class NamedValueBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, name, props = w.ctx, w.name, w.props
        key_vault = props.get("keyVault")
        if key_vault is not None:
            if props.get("value") is not None and ctx.mode == "arm":
                raise validation_error("keyVault", "Specify either value or keyVault, not both.")
            props["keyVault"] = check_key_vault(ctx, key_vault)
            props["secret"] = True
            if ctx.mode == "arm":
                props.pop("value", None)  # a Key Vault value is fetched, never sent
        elif props.get("value") is None or props.get("value") == "":
            raise validation_error("value", "The value field is required (or a keyVault reference).")
        props.setdefault("secret", False)
        props.setdefault("tags", [])
        if len(props["tags"]) > 32:
            raise validation_error("tags", "A named value has at most 32 tags.")
        for other in ctx.view.by_akey(("namedvalues",), props["displayName"].lower()):
            if other.name.lower() != name.lower():
                raise validation_error("displayName",
                                       f"Named value '{other.name}' already has the display name "
                                       f"'{props['displayName']}'.")
        return props

    def akey(self, entity: Entity) -> str | None:
        return str(entity.props.get("displayName", entity.name)).lower()

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        props = entity.props
        secret = bool(props.get("secret")) or "keyVault" in props
        properties: dict[str, Any] = {
            "displayName": props.get("displayName", entity.name),
            # Secrets are never returned by GET/list; listValue reveals them.
            "value": None if secret else props.get("value"),
            "secret": bool(props.get("secret", False)),
            "tags": list(props.get("tags") or []),
        }
        if props.get("keyVault") is not None:
            properties["keyVault"] = key_vault_view(entity)
        properties["provisioningState"] = "Succeeded"
        return properties

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        display = str(entity.props.get("displayName", entity.name))
        users = named_value_users(ctx, display)
        if users:
            raise used_by("Named Value", entity.name, users)


def named_value_users(ctx: Ctx, display_name: str) -> list[Entity]:
    needle = display_name.lower()
    found = ctx.view.of_kinds((*POLICY_KINDS, "policyfragments", "loggers", "backends"), containing="{{")
    return [e for e in found if any(m[1].strip().lower() == needle for m in NAMED_VALUE_REF_RE.finditer(
        _strings(e.props)))]


def _strings(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_strings(v) for v in value)
    return ""


class BackendBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, props = w.ctx, w.props
        parsed = urlsplit(props["url"])
        if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
            raise validation_error("url", f"'{props['url']}' is not a valid absolute URL.")
        for match in NAMED_VALUE_REF_RE.finditer(_strings(props.get("credentials") or {})):
            require_named_value(ctx, match[1].strip(), "credentials")
        pool = props.get("pool") or {}
        for i, member in enumerate(pool.get("services") or []):
            member_id = str(member.get("id", "")) if isinstance(member, dict) else ""
            member_name = entity_ref(member_id, "backends")
            if not member_name or ctx.view.get(f"backends/{member_name.lower()}") is None:
                raise validation_error(f"pool.services[{i}].id", f"Backend '{member_name or member}' not found.")
        return props


class LoggerBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, name, props, existing = w.ctx, w.name, w.props, w.existing
        logger_type = props["loggerType"]
        if logger_type == "azureMonitor":
            tiers.require(ctx.service.tier, "azureMonitorLogs")
        credentials = dict(props.get("credentials") or {})
        if not all(isinstance(v, str) for v in credentials.values()):
            raise validation_error("credentials", "credentials must map names to strings.")
        if logger_type == "applicationInsights" and not any(k in credentials for k in LOGGER_SECRET_KEYS):
            raise validation_error("credentials",
                                   "An applicationInsights logger needs credentials.instrumentationKey or "
                                   "credentials.connectionString.")
        if logger_type == "azureEventHub" and "name" not in credentials:
            raise validation_error("credentials", "An azureEventHub logger needs credentials.name.")
        previous = dict((existing.props.get("credentials") or {}) if existing else {})
        for key in LOGGER_SECRET_KEYS:
            value = credentials.get(key)
            if value is None:
                continue
            reference = NAMED_VALUE_REF_RE.fullmatch(value.strip())
            if reference is not None:
                require_named_value(ctx, reference[1].strip(), "credentials")
                continue
            if key == "instrumentationKey" and not GUID_RE.match(value):
                raise entity_error(400, "ValidationError", f"Validation failed for logger-id '{name}'. Exception "
                                                           "Received 'Invalid instrumentation key for Application "
                                                           "Insights Logger'")
            credentials[key] = "{{" + store_logger_secret(ctx, f"{name}|{key}", previous.get(key), value) + "}}"
        if credentials:
            props["credentials"] = credentials
        return props

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        return {"isBuffered": True, "description": None} | entity.props

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        users = ctx.view.by_akey(DIAGNOSTIC_KINDS, entity.name.lower())
        if users:
            raise used_by("Logger", entity.name, users)

    def cascade(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        # The named values APIM created for this logger's secrets go with it.
        for value in (entity.props.get("credentials") or {}).values():
            reference = NAMED_VALUE_REF_RE.fullmatch(str(value).strip())
            if reference and reference[1].startswith(LOGGER_CREDENTIALS_PREFIX):
                for named in ctx.view.by_akey(("namedvalues",), reference[1].lower()):
                    ctx.view.delete_tree(named.path)


def store_logger_secret(ctx: Ctx, owner: str, previous: str | None, value: str) -> str:
    """Keep a logger's secret as APIM does: in a secret named value ``Logger-Credentials--{24 hex}``.

    Random through ARM, as APIM's; derived from the logger and the value when a document is imported, so that
    a seed builds the same configuration every time.
    """
    reference = NAMED_VALUE_REF_RE.fullmatch(previous.strip()) if previous else None
    name = reference[1] if reference and reference[1].startswith(LOGGER_CREDENTIALS_PREFIX) else None
    if name is None:
        suffix = (secrets.token_hex(12) if ctx.mode == "arm"
                  else hashlib.sha256(f"{owner}|{value}".encode()).hexdigest()[:24])
        name = LOGGER_CREDENTIALS_PREFIX + suffix
    existing = ctx.view.get(f"namedvalues/{name.lower()}")
    version = ctx.view.next_version()
    ctx.view.put(Entity(
        f"namedvalues/{name.lower()}", "namedvalues", f"namedValues/{name}", name,
        {"displayName": name, "value": value, "secret": True, "tags": []},
        etag=version, seq=existing.seq if existing else version, akey=name.lower(),
    ))
    return name


class DiagnosticBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, name, props = w.ctx, w.name, w.props
        logger_name = entity_ref(props["loggerId"], "loggers")
        logger = ctx.view.get(f"loggers/{logger_name.lower()}") if logger_name else None
        if logger is None:
            raise validation_error("loggerId", f"Logger '{logger_name or props['loggerId']}' not found.")
        if name.lower() == "azuremonitor" or logger.props.get("loggerType") == "azureMonitor":
            tiers.require(ctx.service.tier, "azureMonitorLogs")
        props["loggerId"] = f"/loggers/{logger.name}"
        return props

    def akey(self, entity: Entity) -> str | None:
        return (entity_ref(str(entity.props.get("loggerId", "")), "loggers") or "").lower()

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        properties = dict(entity.props)
        properties["loggerId"] = resource_id(ctx, str(entity.props["loggerId"]).lstrip("/"))
        return properties


class CertificateBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, props, existing = w.ctx, w.props, w.existing
        key_vault = props.get("keyVault")
        data = props.get("data")
        if key_vault is None and data is None:
            raise validation_error("data", "Either data (a base64 PFX) or keyVault is required.")
        if key_vault is not None:
            props["keyVault"] = check_key_vault(ctx, key_vault)
            if ctx.mode == "arm" or not props.get("thumbprint"):
                props |= key_vault_certificate(ctx, props["keyVault"]["secretIdentifier"], existing)
            props.pop("data", None)
            props.pop("password", None)
        elif data is not None and (ctx.mode == "arm" or not props.get("thumbprint")):
            props |= pfx_metadata(data, props.get("password"))
        return props

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        properties: dict[str, Any] = {
            k: entity.props[k] for k in ("subject", "thumbprint", "expirationDate") if k in entity.props
        }
        if entity.props.get("keyVault") is not None:
            properties["keyVault"] = key_vault_view(entity)
        return properties


def pfx_metadata(data: str, password: str | None) -> dict[str, Any]:
    """Subject, thumbprint and expiry of a base64 PKCS#12 blob, as APIM reads them on upload."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        raw = base64.b64decode(data, validate=True)
        _, certificate, _ = pkcs12.load_key_and_certificates(raw, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise validation_error("data", f"The certificate data is not a PFX that opens with the password given "
                                       f"({type(exc).__name__}).") from None
    if certificate is None:
        raise validation_error("data", "The PFX holds no certificate.")
    expires = certificate.not_valid_after_utc
    return {
        "subject": certificate.subject.rfc4514_string(),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),
        "expirationDate": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def key_vault_certificate(ctx: Ctx, identifier: str, existing: Entity | None) -> dict[str, Any]:
    """Metadata of a Key Vault certificate. The emulator reads no Key Vault: it keeps what it had for the same
    secret, else derives stable values from the identifier (subject ``CN={secret name}``, a year of validity)."""
    if existing is not None and (existing.props.get("keyVault") or {}).get("secretIdentifier") == identifier:
        return {k: existing.props[k] for k in ("subject", "thumbprint", "expirationDate") if k in existing.props}
    secret_name = identifier.rstrip("/").split("/secrets/", 1)[-1].split("/", 1)[0]
    created = datetime.fromisoformat(ctx.service.now_iso.replace("Z", "+00:00").split(".")[0] + "+00:00")
    return {
        "subject": f"CN={secret_name}",
        "thumbprint": hashlib.sha1(identifier.lower().encode()).hexdigest().upper(),
        "expirationDate": (created + timedelta(days=365)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class GlobalSchemaBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        props = w.props
        if props["schemaType"] == "xml" and not isinstance(props.get("value"), str):
            raise validation_error("value", "An xml schema needs its document in 'value'.")
        if props["schemaType"] == "json" and props.get("document") is None and props.get("value") is None:
            raise validation_error("document", "A json schema needs its document in 'document'.")
        return props


class SubscriptionBehaviour(Behaviour):
    def prepare(self, w: Write) -> dict[str, Any]:
        ctx, props, existing = w.ctx, w.props, w.existing
        props["scope"] = subscription_scope(ctx, props["scope"])
        owner = props.get("ownerId")
        if owner:
            if not tiers.has(ctx.service.tier, "users"):
                raise validation_error("ownerId", f"The {ctx.service.tier} tier has no users to own a subscription.")
            user = entity_ref(owner, "users")
            if not user or ctx.view.get(f"users/{user.lower()}") is None:
                raise validation_error("ownerId", f"User '{user or owner}' not found.")
            props["ownerId"] = f"/users/{user}"
        # "If no value is specified, subscription is created with Submitted state." (the spec)
        props.setdefault("state", "submitted")
        for key in ("primaryKey", "secondaryKey"):
            if not props.get(key):
                props[key] = (existing.props.get(key) if existing else None) or new_subscription_key()
        if not props.get("createdDate"):
            props["createdDate"] = (existing.props.get("createdDate") if existing else None) or ctx.service.now_iso
        return props

    def akey(self, entity: Entity) -> str | None:
        return str(entity.props.get("scope", "")).lower()

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        properties = {k: v for k, v in entity.props.items() if k not in ("primaryKey", "secondaryKey")}
        properties["scope"] = resource_id(ctx, str(entity.props["scope"]).lstrip("/"))
        if entity.props.get("ownerId"):
            properties["ownerId"] = resource_id(ctx, str(entity.props["ownerId"]).lstrip("/"))
        return properties


def subscription_scope(ctx: Ctx, scope: str) -> str:
    """``/apis``, ``/apis/{id}``, ``/products/{id}`` (or the full ids), checked; stored in short form."""
    parts = [p for p in scope.strip().split("/") if p]
    lowered = [p.lower() for p in parts]
    if lowered and lowered[-1] == "apis":
        return "/apis"
    for segment, kind_key in (("products", "products"), ("apis", "apis")):
        if len(lowered) >= 2 and lowered[-2] == segment:
            target = ctx.view.get(f"{kind_key}/{split_revision(parts[-1])[0].lower()}")
            if target is None:
                raise validation_error("scope", f"{KINDS[kind_key].entity} '{parts[-1]}' not found.")
            return f"/{segment}/{target.name}"
    raise validation_error("scope", f"'{scope}' is not a subscription scope (/apis, /apis/{{apiId}} or "
                                    "/products/{productId}).")


class ContentTypeBehaviour(Behaviour):
    """Developer portal content types: custom ones are named ``c-...``; built-in ones (a seed may list them)
    cannot be changed or removed (ContentType_CreateOrUpdate and ContentType_Delete in the spec)."""

    def prepare(self, w: Write) -> dict[str, Any]:
        if w.ctx.mode == "arm" and not w.name.lower().startswith("c-"):
            raise entity_error(400, "ValidationError", "Built-in content types can't be modified; custom content "
                                                       "type identifiers need to start with the 'c-' prefix.")
        return w.props

    def check_delete(self, ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
        if not entity.name.lower().startswith("c-"):
            raise entity_error(400, "ValidationError", "Built-in content types can't be removed.")


PORTAL_SETTINGS = {
    "signin": ("enabled",),
    "signup": ("enabled", "termsOfService"),
    "delegation": ("url", "validationKey", "subscriptions", "userRegistration"),
}
PORTAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "signin": {"enabled": False},
    "signup": {"enabled": True, "termsOfService": {"enabled": False, "consentRequired": False}},
    "delegation": {"subscriptions": {"enabled": False}, "userRegistration": {"enabled": False}},
}


class PortalSettingsBehaviour(Behaviour):
    """Sign-in, sign-up and delegation settings of the developer portal: each keeps its own properties."""

    def prepare(self, w: Write) -> dict[str, Any]:
        which = w.name.lower()
        props = {k: v for k, v in w.props.items() if k in PORTAL_SETTINGS[which]}
        if which == "delegation":
            key = props.get("validationKey")
            if key is not None:
                try:
                    base64.b64decode(key, validate=True)
                except ValueError:
                    raise validation_error("validationKey", "validationKey must be base64.") from None
            elif w.existing is not None and w.existing.props.get("validationKey"):
                props["validationKey"] = w.existing.props["validationKey"]
            else:
                props["validationKey"] = base64.b64encode(secrets.token_bytes(64)).decode()
            delegated = any((props.get(k) or {}).get("enabled") for k in ("subscriptions", "userRegistration"))
            url = props.get("url")
            if url:
                parsed = urlsplit(url)
                if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
                    raise validation_error("url", f"'{url}' is not a valid absolute URL.")
            elif delegated:
                raise validation_error("url", "Delegation needs the url of the delegation endpoint.")
        return props

    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        which = entity.name.lower()
        return {k: v for k, v in (PORTAL_DEFAULTS[which] | entity.props).items() if k != "validationKey"}


class ContentItemBehaviour(Behaviour):
    def render(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        return dict(entity.props)


BEHAVIOURS: dict[str, Behaviour] = {
    "policies": PolicyBehaviour(),
    "apis": ApiBehaviour(),
    "apis/operations": OperationBehaviour(),
    "apis/operations/policies": PolicyBehaviour(),
    "apis/operations/tags": LinkBehaviour(),
    "apis/policies": PolicyBehaviour(),
    "apis/schemas": Behaviour(),
    "apis/tags": LinkBehaviour(),
    "apis/diagnostics": DiagnosticBehaviour(),
    "apiversionsets": VersionSetBehaviour(),
    "products": ProductBehaviour(),
    "products/apis": LinkBehaviour(),
    "products/groups": LinkBehaviour(),
    "products/policies": PolicyBehaviour(),
    "products/tags": LinkBehaviour(),
    "namedvalues": NamedValueBehaviour(),
    "backends": BackendBehaviour(),
    "loggers": LoggerBehaviour(),
    "diagnostics": DiagnosticBehaviour(),
    "policyfragments": FragmentBehaviour(),
    "tags": TagBehaviour(),
    "groups": GroupBehaviour(),
    "certificates": CertificateBehaviour(),
    "schemas": GlobalSchemaBehaviour(),
    "subscriptions": SubscriptionBehaviour(),
    "contenttypes": ContentTypeBehaviour(),
    "contenttypes/contentitems": ContentItemBehaviour(),
    "portalsettings": PortalSettingsBehaviour(),
}


def behaviour(kind: Kind) -> Behaviour:
    return BEHAVIOURS.get(kind.key, Behaviour())


# -- rendering -------------------------------------------------------------------------------------
def render(ctx: Ctx, kind: Kind, entity: Entity, *, name: str | None = None) -> dict[str, Any]:
    """The ARM body of a stored entity (``name``: the name it was addressed by, e.g. ``echo-api;rev=1``)."""
    shown = name or entity.name
    rpath = entity.rpath if name is None else entity.rpath.rsplit("/", 1)[0] + f"/{shown}"
    return {
        "id": resource_id(ctx, rpath),
        "type": kind.arm_type,
        "name": shown,
        "properties": behaviour(kind).render(ctx, kind, entity),
    }


def render_link(ctx: Ctx, kind: Kind, link: Entity, target: Entity) -> dict[str, Any]:
    """A link answers its target's contract: a tag under its own id (the Tag_AssignToApi example), an API or
    group of a product under the product (the ProductApi_ListByProduct example)."""
    assert kind.link is not None
    target_kind = KINDS[kind.link]
    body = render(ctx, target_kind, target)
    if kind.link != "tags":
        body["id"] = resource_id(ctx, f"{link.rpath.rsplit('/', 2)[0]}/{kind.segment}/{target.name}")
        body["type"] = kind.arm_type
    return body


def arm_segment(part: str) -> str:
    return SEGMENTS.get(part, part)
