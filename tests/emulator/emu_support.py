"""Helpers for the APIM emulator tests: seed constants, spec validation, tokens, a raw ARM client.

(Module name is unique on purpose: pytest puts this folder on sys.path.)
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from azure.core.credentials import AccessToken
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from emulator.apim import ApimEmulator, load_seed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = PROJECT_ROOT / ".." / "shared" / "apim-spec"
SEED_PATH = PROJECT_ROOT / "emulator" / "seed.example.json"
SEED = load_seed(SEED_PATH)

TENANT = SEED["tenantId"]
SUB = SEED["subscriptions"][0]["subscriptionId"]
PROD_RG, DR_RG = "rg-apim-prod", "rg-apim-dr"
PROD, DR = "apim-contoso-prod", "apim-contoso-dr"
PREMIUM, DEV, CONSUMPTION, V2 = (
    "apim-contoso-premium",
    "apim-contoso-dev",
    "apim-contoso-consumption",
    "apim-contoso-v2",
)
ACCOUNT = SEED["storageAccounts"][0]["name"]
ACCOUNT_KEY = SEED["storageAccounts"][0]["key"]
CONTAINER = "apim-backups"
FUNC_SYSTEM = SEED["functionApp"]["systemAssignedIdentity"]
FUNC_UA = SEED["functionApp"]["userAssignedIdentities"][0]
DR_UA_CLIENT_ID = "f30d1dd2-e253-481b-8360-007cd4b24352"
ARM_AUDIENCE = "https://management.azure.com"
STORAGE_AUDIENCE = "https://storage.azure.com"
API_VERSION = "2024-05-01"

SERVICE_RGS = {s["name"]: s["resourceGroup"] for s in SEED["services"]}


def service_path(name: str, rg: str | None = None) -> str:
    rg = rg or SERVICE_RGS.get(name, PROD_RG)
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def unique(prefix: str = "bk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}.apimbackup"


def key_body(backup_name: str, *, key: str = ACCOUNT_KEY, container: str = CONTAINER) -> dict[str, Any]:
    return {
        "storageAccount": ACCOUNT,
        "containerName": container,
        "backupName": backup_name,
        "accessType": "AccessKey",
        "accessKey": key,
    }


def error_of(exc: Exception) -> Any:
    """The parsed ARM error (``code``, ``message``) of an azure-core HttpResponseError."""
    error = getattr(exc, "error", None)
    assert error is not None, f"no ARM error body in {exc!r}"
    return error


# -- tokens ------------------------------------------------------------------------------------
def make_token(
    *,
    oid: str = FUNC_SYSTEM["principalId"],
    aud: str = ARM_AUDIENCE,
    lifetime: int = 3600,
    tenant: str = TENANT,
) -> str:
    """A token like Entra ID would issue (signature is not checked by the emulator or Azurite)."""
    now = int(time.time())
    claims = {
        "aud": aud,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": oid,
        "tid": tenant,
        "appid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, "test-signing-key-that-is-long-enough-for-hs256", algorithm="HS256")


class StaticTokenCredential:
    """A TokenCredential that always returns the given token (to send bad tokens through the SDK)."""

    def __init__(self, token: str, expires_on: int | None = None) -> None:
        self.token = token
        self.expires_on = expires_on or int(time.time()) + 3600

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, self.expires_on)


def identity_token(emu: ApimEmulator, resource: str = ARM_AUDIENCE, client_id: str | None = None) -> str:
    params = {"api-version": "2019-08-01", "resource": resource}
    if client_id:
        params["client_id"] = client_id
    response = requests.get(
        emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": emu.identity_header}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


# -- the spec ----------------------------------------------------------------------------------
class SpecValidator:
    """JSON-schema (Draft 4) validation against ../shared/apim-spec, as the Azure spec tooling does.

    ``$ref``s to ``../../../../../common-types/`` are rewritten to the copies in ``common-types/``;
    ``./definitions.json`` is stubbed when it is not shipped. Real APIM bodies carry explicit ``null``
    for unset properties (see recordings/); like oav, a property that is not ``required`` may be null
    unless it says ``x-nullable: false``.

    ``response_definition(method, path, status)`` finds the operation in the spec's own ``paths`` (every
    ``apim*.json`` shipped) and names the schema its answer must have: the check of a child-resource
    answer does not depend on the emulator's idea of which contract it serves.
    """

    BASE = "https://apim-spec.invalid/"
    DOCUMENTS = (
        "apimdeployment.json",
        "apimanagement.json",
        "common-types/resource-management/v5/types.json",
        "common-types/resource-management/v3/types.json",
    )
    # Used when present (a user's clone has no ../shared; older copies lacked the child-resource files).
    OPTIONAL_DOCUMENTS = (
        "definitions.json", "common-types/resource-management/v2/types.json", "apimapis.json", "apimproducts.json",
        "apimnamedvalues.json", "apimbackends.json", "apimpolicies.json", "apimapiversionsets.json",
        "apimpolicyfragments.json", "apimloggers.json", "apimdiagnostics.json", "apimtags.json", "apimgroups.json",
        "apimcertificates.json", "apimschema.json", "apimcontenttypes.json", "apimsubscriptions.json",
    )
    ENTITY_DEFINITIONS = ("ApiCollection", "ProductCollection", "NamedValueCollection")

    def __init__(self, root: Path) -> None:
        registry: Registry[Any] = Registry()
        self.root = root
        self.present = {rel for rel in self.DOCUMENTS + self.OPTIONAL_DOCUMENTS if (root / rel).is_file()}
        self.definition_home: dict[str, str] = {}
        self.operations: list[tuple[str, re.Pattern[str], int, dict[str, Any]]] = []
        for rel in self.DOCUMENTS + self.OPTIONAL_DOCUMENTS:
            if rel not in self.present:
                continue
            raw = json.loads((root / rel).read_text(encoding="utf-8"))
            for name in raw.get("definitions", {}):
                self.definition_home.setdefault(name, rel)
            for template, methods in raw.get("paths", {}).items():
                pattern = re.compile(
                    "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$", re.IGNORECASE)
                literals = sum(1 for part in template.split("/") if part and not part.startswith("{"))
                for method, operation in methods.items():
                    if method != "parameters":
                        self.operations.append((method.upper(), pattern, literals, operation | {"_doc": rel}))
            registry = registry.with_resource(self.BASE + rel, DRAFT4.create_resource(_prepare(raw)))
        if "definitions.json" not in self.present:
            stub = {"definitions": {"RemotePrivateEndpointConnectionWrapper": {"type": "object"}}}
            registry = registry.with_resource(self.BASE + "definitions.json", DRAFT4.create_resource(stub))
        self.registry = registry

    def has(self, definition: str) -> bool:
        """Whether the shipped files define ``definition`` (the entity contracts need definitions.json)."""
        return definition in self.definition_home

    def missing_reason(self, definition: str) -> str:
        return (
            f"{self.root.resolve()} does not define {definition} (it lives in definitions.json and the "
            "apim*.json child-resource files): the bodies are checked against the SDK's generated models only"
        )

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The spec operation serving ``method path`` (the most literal template wins), or None."""
        found = [(literals, op) for m, pattern, literals, op in self.operations
                 if m == method.upper() and pattern.match(path)]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def response_definition(self, method: str, path: str, status: int) -> str | None:
        """The definition an answer with ``status`` must match, or None for a bodiless one."""
        operation = self.operation(method, path)
        if operation is None:
            raise AssertionError(f"the spec defines no {method} {path}")
        responses = operation.get("responses", {})
        response = responses.get(str(status))
        if response is None:
            if status < 400:
                raise AssertionError(f"{operation['operationId']} does not answer {status} "
                                     f"(the spec has {', '.join(responses)})")
            response = responses.get("default", {})
        ref = response.get("schema", {}).get("$ref")
        return None if ref is None else str(ref).rsplit("/", 1)[-1]

    def validator(self, definition: str) -> Draft4Validator:
        if definition in ("ErrorResponse", "ErrorDetail"):
            doc = "common-types/resource-management/v5/types.json"
        else:
            doc = self.definition_home.get(definition, "apimdeployment.json")
        return Draft4Validator({"$ref": f"{self.BASE}{doc}#/definitions/{definition}"}, registry=self.registry)

    def validate(self, instance: Any, definition: str) -> None:
        self.validator(definition).validate(instance)

    def errors(self, instance: Any, definition: str) -> list[str]:
        return [e.message for e in self.validator(definition).iter_errors(instance)]


# -- the SDK's generated models ----------------------------------------------------------------
def _sdk_models() -> Any:
    from azure.mgmt.apimanagement import models

    return models



def sdk_model_problems(body: Any, model: str, where: str = "$") -> list[str]:
    """Strict structural check of a JSON body against an ``azure.mgmt.apimanagement.models`` class.

    The SDK models are generated from the same REST specification; msrest ignores unknown keys and
    wrong types when it deserializes, so this walks the body instead: every key must be one the model
    maps (flattened ``properties.x`` keys included) and every value must have the mapped type.
    """
    from azure.mgmt.apimanagement import models

    cls = getattr(models, model)
    if not isinstance(body, dict):
        return [f"{where}: expected an object for {model}, got {type(body).__name__}"]
    tree: dict[str, Any] = {}
    for attribute in cls._attribute_map.values():
        parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", attribute["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = attribute["type"]
    return _walk_model(body, tree, where)


def _walk_model(body: dict[str, Any], tree: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    for key, value in body.items():
        if key not in tree:
            problems.append(f"{where}.{key}: not in the model")
        elif isinstance(tree[key], dict):
            if value is not None:
                problems += (
                    _walk_model(value, tree[key], f"{where}.{key}")
                    if isinstance(value, dict)
                    else [f"{where}.{key}: expected an object"]
                )
        else:
            problems += _typed(value, tree[key], f"{where}.{key}")
    return problems


def _typed(value: Any, kind: str, where: str) -> list[str]:
    if value is None:
        return []
    if kind.startswith("[") and kind.endswith("]"):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(value) for p in _typed(item, kind[1:-1], f"{where}[{i}]")]
    if kind.startswith("{") and kind.endswith("}"):
        return [] if isinstance(value, dict) else [f"{where}: expected a map"]
    simple: dict[str, type | tuple[type, ...]] = {
        "str": str, "iso-8601": str, "bool": bool, "int": int, "float": (int, float), "object": object}
    if kind in simple:
        wrong = not isinstance(value, simple[kind]) or (kind == "int" and isinstance(value, bool))
        return [f"{where}: expected {kind}, got {value!r}"] if wrong else []
    return sdk_model_problems(value, kind, where)


def _prepare(node: Any, *, property_map: bool = False) -> Any:
    """Rewrite ``$ref`` prefixes and make non-required properties nullable, walking schemas only.

    ``property_map`` marks a ``properties`` object (names -> schemas): its keys are property names,
    not schema keywords, so a property that happens to be called ``properties`` or ``type`` is not
    mistaken for one (``definitions.json`` has many ``properties`` properties, x-ms-client-flatten).
    """
    if isinstance(node, list):
        return [_prepare(item) for item in node]
    if not isinstance(node, dict):
        return node
    if property_map:
        return {name: _prepare(schema) for name, schema in node.items()}
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("./../../../../../common-types/", "common-types/").replace(
                "../../../../../common-types/", "common-types/")
        elif key in ("properties", "definitions") and isinstance(value, dict):
            out[key] = _prepare(value, property_map=True)
        else:
            out[key] = _prepare(value)
    properties = out.get("properties")
    if isinstance(properties, dict) and out.get("type", "object") == "object":
        required = set(out.get("required", []))
        for name, schema in list(properties.items()):
            if name not in required and isinstance(schema, dict) and schema.get("x-nullable") is not False:
                properties[name] = {"anyOf": [schema, {"type": "null"}]}
    return out


# -- a raw ARM client --------------------------------------------------------------------------
class RawArm:
    """requests-based ARM calls that check every emulator answer against the spec as it goes."""

    def __init__(self, emu: ApimEmulator, validator: SpecValidator | None, token: str) -> None:
        self.emu = emu
        self.validator = validator
        self.token = token
        self.session = requests.Session()
        self.session.verify = str(emu.ca_bundle)
        self.session.trust_env = False
        self.seen: list[requests.Response] = []

    def url(self, path: str, api_version: str | None = API_VERSION) -> str:
        if path.startswith("https://"):
            return path
        url = self.emu.arm_url + path
        return url if api_version is None else f"{url}?api-version={api_version}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        api_version: str | None = API_VERSION,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {token or self.token}"}
        if token == "":
            all_headers.pop("Authorization")
        all_headers.update(headers or {})
        response = self.session.request(
            method, self.url(path, api_version), json=body, data=data, headers=all_headers, timeout=30
        )
        self.seen.append(response)
        self.check(response)
        return response

    def check(self, response: requests.Response) -> None:
        """Bodies per the spec: errors are ErrorResponse, 202s are empty, 2xx bodies the schema the spec's own
        operation for that path answers (and, strictly, the SDK model of that name)."""
        path = urlsplit(response.url).path
        method = str(response.request.method)
        if response.status_code == 202:
            assert response.content == b"", "202 bodies are empty in real APIM traffic"
            return
        if not response.content:
            return
        body = response.json()
        if response.status_code >= 400:
            if self.validator is not None:
                self.validator.validate(body, "ErrorResponse")
            assert body["error"]["code"] != "MissingSubscriptionRegistration"
            return
        definition = self._definition(method, path, response.status_code)
        if definition is None:
            return
        if self.validator is not None and self.validator.has(definition):
            self.validator.validate(body, definition)
        if hasattr(_sdk_models(), definition):
            assert sdk_model_problems(body, definition) == [], definition

    def _definition(self, method: str, path: str, status: int) -> str | None:
        if "/operationresults/" in path.lower():
            return "ApiManagementServiceResource"  # not a path of the spec: the service, as the recordings show
        # ../shared/apim-spec ships their definitions (definitions.json) but not the path files
        # apimportalsettings.json and apimreports.json: the answers those files name, by path.
        tail = [p.lower() for p in path.split("/Microsoft.ApiManagement/service/", 1)[-1].split("/")[1:]]
        if tail[:1] == ["reports"]:
            return "ReportCollection"
        if tail[:1] == ["portalsettings"]:
            if len(tail) == 1:
                return "PortalSettingsCollection"
            if tail[-1] == "listsecrets":
                return "PortalSettingValidationKeyContract"
            return {"signin": "PortalSigninSettings", "signup": "PortalSignupSettings",
                    "delegation": "PortalDelegationSettings"}[tail[1]]
        if self.validator is not None:
            return self.validator.response_definition(method, path, status)
        if path.rstrip("/").lower().endswith("/microsoft.apimanagement/service"):
            return None
        # Without ../shared: the SDK models only, named as the emulator's table says.
        from emulator.apim.kinds import ChildRouteError, match_child

        tail = path.split("/Microsoft.ApiManagement/service/", 1)[-1].split("/")[1:]
        try:
            route = match_child(method, tuple(tail))
        except ChildRouteError:
            return None
        return route.kind.collection if route.operation == "list" else route.kind.contract

    def start(self, kind: str, name: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("POST", f"{service_path(name)}/{kind}", body=body, **kwargs)

    def poll(self, location: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", location, api_version=None, **kwargs)

    def run(self, kind: str, name: str, body: Any, *, advance: float = 3600) -> requests.Response:
        """Start an operation, move the emulator clock past its duration, return the final poll."""
        started = self.start(kind, name, body)
        assert started.status_code == 202, started.text
        self.emu.admin.advance_clock(advance)
        return self.poll(started.headers["Location"])
