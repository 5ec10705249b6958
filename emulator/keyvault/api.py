"""The Key Vault data plane at ``https://{vault}.vault.azure.net`` (reached through emulator/proxy.py).

Source: Azure/azure-rest-api-specs ``specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/
secrets.json`` (commit 0e783e4c4468ca59ee4ff808a48ad9a18a8c4740) and ``certificates.json`` (commit
b85c970dd1a0e695d218cf03fcceb8af3b8cf15c): ``GetSecret``
(``GET /secrets/{name}/{version}``, empty version = latest), ``GetSecretVersions``
(``GET /secrets/{name}/versions``), ``GetSecrets`` (``GET /secrets``), ``SetSecret``
(``PUT /secrets/{name}``), ``GetCertificate`` (``GET /certificates/{name}/{version}``) with their
``SecretBundle``/``SecretItem``/``CertificateBundle`` bodies and the ``KeyVaultError`` shape. The
api-versions accepted are the ones azure-keyvault-secrets 4.12 knows (its default ``2026-04-01``
included); the bodies do not differ between them for these operations.

Authentication is Key Vault's challenge flow: a request without a bearer token answers 401 with
``WWW-Authenticate: Bearer authorization="https://login.windows.net/{tenant}", resource="https://vault.azure.net"``
and ``{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}``
(recorded traffic, Azure/azure-sdk-for-js keyvault-secrets recordings). The official client then gets a
token for ``https://vault.azure.net/.default`` (from the emulator's managed-identity endpoint) and
retries. Authorization is Azure RBAC only: 403 ``Forbidden`` / innerError ``ForbiddenByRbac`` with the
message Key Vault sends (Caller, Action, Resource, Assignment ... as quoted in public issues, e.g.
piyushsachdeva/Terraform_AKS #2).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import jwt

from emulator.apim.wire import Request, Response, json_response

from . import roles
from .vaults import OBJECT_NAME_RE, VERSION_RE, KeyVaultError, Vaults, vault_url, x5t

API_VERSIONS = ("2026-04-01", "2025-07-01", "7.6", "7.5", "7.4", "7.3", "7.2", "7.1", "7.0", "2016-10-01")
AUDIENCES = ("https://vault.azure.net", "https://vault.azure.net/", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093")
RESOURCE = "https://vault.azure.net"
MAX_RESULTS = 25
MAX_BODY_BYTES = 64 * 1024


class KeyVaultApi:
    def __init__(self, vaults: Vaults, tenant: Callable[[], str]) -> None:
        self.vaults = vaults
        self._tenant = tenant

    @property
    def tenant(self) -> str:
        return self._tenant()

    def handle(self, req: Request, vault_name: str) -> Response:
        try:
            response = self._handle(req, vault_name)
        except KeyVaultError as exc:
            response = json_response(exc.status, exc.body(), self._challenge() if exc.status == 401 else None)
        response.headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-service-version": "1.9.0.0",
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
        } | response.headers
        return response

    def _challenge(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer authorization="https://login.windows.net/{self.tenant}", resource="{RESOURCE}"'
            )
        }

    def _handle(self, req: Request, vault_name: str) -> Response:
        vault = self.vaults.vault(vault_name)
        if vault is None:
            # A vault that does not exist has no DNS name: nothing answers (the proxy refuses it first).
            raise KeyVaultError(404, "VaultNotFound", f"The vault '{vault_name}' does not exist.")
        principal = self._authenticate(req)
        version = req.param("api-version")
        if not version:
            raise KeyVaultError(400, "BadParameter", "The 'api-version' query parameter is missing.")
        if version not in API_VERSIONS:
            raise KeyVaultError(
                400,
                "BadParameter",
                f"The specified version ({version}) is not recognized. "
                f"Consider using the latest supported version ({API_VERSIONS[0]}).",
            )
        segments = [unquote(s) for s in req.path.split("/") if s]
        if not segments or segments[0] not in ("secrets", "certificates"):
            raise KeyVaultError(404, "NotFound", f"The emulator's Key Vault does not serve '{req.path}'.")
        kind = segments[0]
        if len(segments) >= 2 and not OBJECT_NAME_RE.match(segments[1]):
            raise KeyVaultError(400, "BadParameter", f"The request URI contains an invalid name: {segments[1]}")
        if kind == "secrets":
            return self._secrets(req, vault, principal, segments[1:], version)
        return self._certificates(req, vault, principal, segments[1:], version)

    # -- authentication ------------------------------------------------------------------------
    def _authenticate(self, req: Request) -> dict[str, Any]:
        header = req.header("authorization") or ""
        scheme, _, token = header.strip().partition(" ")
        if not header or scheme.lower() not in ("bearer", "pop") or not token.strip():
            raise KeyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        try:
            claims = jwt.decode(token.strip(), options={"verify_signature": False})
        except jwt.ExpiredSignatureError:
            raise KeyVaultError(401, "Unauthorized", "AKV10032: Token expired.") from None
        except jwt.PyJWTError:
            raise KeyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.") from None
        aud = claims.get("aud")
        if aud not in AUDIENCES:
            raise KeyVaultError(401, "Unauthorized", f"AKV10022: Invalid audience. Expected {RESOURCE}, found: {aud}.")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < time.time():
            raise KeyVaultError(401, "Unauthorized", "AKV10032: Token expired.")
        if not isinstance(claims.get("oid") or claims.get("sub"), str):
            raise KeyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        return claims

    def _authorize(
        self, vault: dict[str, Any], claims: dict[str, Any], action: str, kind: str | None, name: str | None
    ) -> None:
        oid = str(claims.get("oid") or claims.get("sub")).lower()
        if self.vaults.authorized(vault, oid, action, kind, name):
            return
        resource = self.vaults.resource_id(vault, kind, name).lower()
        message = (
            "Caller is not authorized to perform action on resource.\r\n"
            "If role assignments, deny assignments or role definitions were changed recently, please observe "
            "propagation time.\r\n"
            f"Caller: appid={claims.get('appid', '')};oid={oid};"
            f"iss=https://sts.windows.net/{claims.get('tid', self.tenant)}/\r\n"
            f"Action: '{action}'\r\n"
            f"Resource: '{resource}'\r\n"
            "Assignment: (not found)\r\n"
            "DenyAssignmentId: null\r\n"
            "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
            f"Vault: {vault['name']};location={vault['location']}\r\n"
        )
        raise KeyVaultError(403, "Forbidden", message, inner="ForbiddenByRbac")

    # -- secrets -------------------------------------------------------------------------------
    def _secrets(
        self, req: Request, vault: dict[str, Any], claims: dict[str, Any], rest: list[str], version: str
    ) -> Response:
        if not rest:
            if req.method != "GET":
                raise KeyVaultError(405, "MethodNotAllowed", f"{req.method} is not supported on /secrets.")
            self._authorize(vault, claims, roles.READ_SECRET_METADATA, None, None)
            items = [
                self._secret_item(vault, entry["name"], entry["versions"][-1])
                for entry in sorted(vault["secrets"].values(), key=lambda e: e["name"].lower())
                if entry["versions"]
            ]
            return self._page(req, items, f"{vault_url(vault['name'])}:443/secrets", version)
        name = rest[0]
        if len(rest) == 2 and rest[1] == "versions":
            if req.method != "GET":
                raise KeyVaultError(405, "MethodNotAllowed", f"{req.method} is not supported on versions.")
            self._authorize(vault, claims, roles.READ_SECRET_METADATA, "secrets", name)
            entry = self.vaults.secret_entry(vault, name)
            if entry is None:
                raise _secret_not_found(name)
            items = [self._secret_item(vault, entry["name"], record) for record in entry["versions"]]
            return self._page(
                req, items, f"{vault_url(vault['name'])}:443/secrets/{quote(entry['name'])}/versions", version
            )
        if len(rest) > 2 or (len(rest) == 2 and not VERSION_RE.match(rest[1])):
            raise KeyVaultError(
                400, "BadParameter", f"The request URI contains an invalid version: {'/'.join(rest[1:])}"
            )
        if req.method == "PUT" and len(rest) == 1:
            return self._set_secret(req, vault, claims, name)
        if req.method != "GET":
            raise KeyVaultError(405, "MethodNotAllowed", f"{req.method} is not supported on a secret by the emulator.")
        self._authorize(vault, claims, roles.GET_SECRET, "secrets", name)
        entry = self.vaults.secret_entry(vault, name)
        wanted = rest[1] if len(rest) == 2 else None
        record = None if entry is None else self.vaults.pick_version(entry, wanted)
        if entry is None or record is None:
            raise _secret_not_found(name if wanted is None else f"{name}/{wanted}")
        if not record["enabled"]:
            raise KeyVaultError(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
            )
        return json_response(200, self._secret_bundle(vault, entry["name"], record))

    def _set_secret(self, req: Request, vault: dict[str, Any], claims: dict[str, Any], name: str) -> Response:
        self._authorize(vault, claims, roles.SET_SECRET, "secrets", name)
        if len(req.body) > MAX_BODY_BYTES:
            raise KeyVaultError(400, "BadParameter", "The request body is too large.")
        try:
            body = json.loads(req.body or b"null")
        except (ValueError, RecursionError):
            raise KeyVaultError(400, "BadParameter", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise KeyVaultError(400, "BadParameter", "The request body must be a JSON object with 'value'.")
        attributes = body.get("attributes") or {}
        enabled = attributes.get("enabled", True) if isinstance(attributes, dict) else True
        record = self.vaults.set_secret(
            vault["name"],
            name,
            body.get("value"),
            content_type=body.get("contentType"),
            enabled=bool(enabled),
            tags=body.get("tags"),
        )
        return json_response(200, self._secret_bundle(vault, name, record))

    @staticmethod
    def _attributes(record: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            "enabled": record["enabled"],
            "created": record["created"],
            "updated": record["updated"],
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if record.get("expires"):
            attributes["exp"] = record["expires"]
        if record.get("notBefore"):
            attributes["nbf"] = record["notBefore"]
        return attributes

    def _secret_bundle(self, vault: dict[str, Any], name: str, record: dict[str, Any]) -> dict[str, Any]:
        base = vault_url(vault["name"])
        body: dict[str, Any] = {
            "value": record["value"],
            "id": f"{base}/secrets/{name}/{record['version']}",
            "attributes": self._attributes(record),
            "tags": record.get("tags") or {},
        }
        if record.get("contentType"):
            body["contentType"] = record["contentType"]
        if record.get("managed"):
            body["managed"] = True
            body["kid"] = f"{base}/keys/{name}/{record['version']}"
        return body

    def _secret_item(self, vault: dict[str, Any], name: str, record: dict[str, Any]) -> dict[str, Any]:
        body = self._secret_bundle(vault, name, record)
        body.pop("value")
        body.pop("kid", None)
        return body

    def _page(self, req: Request, items: list[dict[str, Any]], link_base: str, version: str) -> Response:
        size_text = req.param("maxresults")
        size = MAX_RESULTS
        if size_text:
            if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_RESULTS:
                raise KeyVaultError(
                    400, "BadParameter", f"Invalid value for maxresults: {size_text}. It must be 1-{MAX_RESULTS}."
                )
            size = int(size_text)
        token = req.param("$skiptoken") or "0"
        start = int(token) if token.isdigit() else 0
        chosen = items[start : start + size]
        next_link = None
        if start + size < len(items):
            next_link = f"{link_base}?api-version={version}&$skiptoken={start + size}&maxresults={size}"
        return json_response(200, {"value": chosen, "nextLink": next_link})

    # -- certificates --------------------------------------------------------------------------
    def _certificates(
        self, req: Request, vault: dict[str, Any], claims: dict[str, Any], rest: list[str], version: str
    ) -> Response:
        if req.method != "GET":
            raise KeyVaultError(
                405, "MethodNotAllowed", f"{req.method} is not supported on certificates by the emulator."
            )
        name = rest[0] if rest else None
        self._authorize(vault, claims, roles.READ_CERTIFICATE, "certificates" if name else None, name)
        if name is None:
            items = [
                self._certificate_item(vault, e["name"], e["versions"][-1])
                for e in sorted(vault["certificates"].values(), key=lambda e: e["name"].lower())
                if e["versions"]
            ]
            return self._page(req, items, f"{vault_url(vault['name'])}:443/certificates", version)
        entry = vault["certificates"].get(name.lower())
        if len(rest) == 2 and rest[1] == "versions":
            if entry is None:
                raise _certificate_not_found(name)
            items = [self._certificate_item(vault, entry["name"], r) for r in entry["versions"]]
            return self._page(
                req, items, f"{vault_url(vault['name'])}:443/certificates/{quote(entry['name'])}/versions", version
            )
        if len(rest) > 2 or (len(rest) == 2 and not VERSION_RE.match(rest[1])):
            raise KeyVaultError(
                400, "BadParameter", f"The request URI contains an invalid version: {'/'.join(rest[1:])}"
            )
        wanted = rest[1].lower() if len(rest) == 2 else None
        record = None
        if entry is not None and entry["versions"]:
            record = (
                entry["versions"][-1]
                if wanted is None
                else next((r for r in entry["versions"] if r["version"] == wanted), None)
            )
        if entry is None or record is None:
            raise _certificate_not_found(name if wanted is None else f"{name}/{wanted}")
        base = vault_url(vault["name"])
        body = self._certificate_item(vault, entry["name"], record) | {
            "kid": f"{base}/keys/{entry['name']}/{record['version']}",
            "sid": f"{base}/secrets/{entry['name']}/{record['version']}",
            "cer": record["cer"],
            "contentType": "application/x-pkcs12",
        }
        return json_response(200, body)

    def _certificate_item(self, vault: dict[str, Any], name: str, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{vault_url(vault['name'])}/certificates/{name}/{record['version']}",
            "x5t": x5t(record["thumbprint"]),
            "attributes": self._attributes(record),
            "tags": {},
        }


def _secret_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you "
        "may be able to recover it using the correct recovery command. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125182",
    )


def _certificate_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(
        404,
        "CertificateNotFound",
        f"A certificate with (name/id) {name} was not found in this key vault. If you recently deleted this "
        "certificate you may be able to recover it using the correct recovery command. For help resolving this "
        "issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )
