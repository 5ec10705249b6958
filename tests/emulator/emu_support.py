"""Helpers for the APIM emulator tests: seed constants, spec validation, tokens, a raw ARM client.

(Module name is unique on purpose: pytest puts this folder on sys.path.)
"""

from __future__ import annotations

import json
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
    ``./definitions.json`` (not shipped) is stubbed. Real APIM bodies carry explicit ``null`` for
    unset properties (see recordings/); like oav, a property that is not ``required`` may be null
    unless it says ``x-nullable: false``.
    """

    BASE = "https://apim-spec.invalid/"
    DOCUMENTS = (
        "apimdeployment.json",
        "apimanagement.json",
        "common-types/resource-management/v5/types.json",
        "common-types/resource-management/v3/types.json",
    )

    def __init__(self, root: Path) -> None:
        registry: Registry[Any] = Registry()
        for rel in self.DOCUMENTS:
            doc = _prepare(json.loads((root / rel).read_text(encoding="utf-8")))
            registry = registry.with_resource(self.BASE + rel, DRAFT4.create_resource(doc))
        stub = {"definitions": {"RemotePrivateEndpointConnectionWrapper": {"type": "object"}}}
        self.registry = registry.with_resource(self.BASE + "definitions.json", DRAFT4.create_resource(stub))

    def validator(self, definition: str) -> Draft4Validator:
        doc = (
            "common-types/resource-management/v5/types.json"
            if definition in ("ErrorResponse", "ErrorDetail")
            else "apimdeployment.json"
        )
        return Draft4Validator({"$ref": f"{self.BASE}{doc}#/definitions/{definition}"}, registry=self.registry)

    def validate(self, instance: Any, definition: str) -> None:
        self.validator(definition).validate(instance)

    def errors(self, instance: Any, definition: str) -> list[str]:
        return [e.message for e in self.validator(definition).iter_errors(instance)]


def _prepare(node: Any) -> Any:
    if isinstance(node, list):
        return [_prepare(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("../../../../../common-types/", "common-types/")
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
        """Bodies per the spec: errors are ErrorResponse, 202s are empty, 200s are resources or lists."""
        path = urlsplit(response.url).path
        if response.status_code == 202:
            assert response.content == b"", "202 bodies are empty in real APIM traffic"
            return
        if self.validator is None or not response.content:
            return
        body = response.json()
        if response.status_code >= 400:
            self.validator.validate(body, "ErrorResponse")
            assert body["error"]["code"] != "MissingSubscriptionRegistration"
        elif path.rstrip("/").lower().endswith("/microsoft.apimanagement/service"):
            self.validator.validate(body, "ApiManagementServiceListResult")
        else:
            self.validator.validate(body, "ApiManagementServiceResource")

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
