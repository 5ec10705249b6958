"""``ApiManagementService_Update`` (PATCH) and ``ApiManagementService_CreateOrUpdate`` (PUT) of an existing
service: the settings a failover re-applies because a backup leaves them out.

Spec: ``../shared/apim-spec/apimdeployment.json`` (api-version 2024-05-01, commit
376dc4dbcd480bc0fadef32e34e753fb589e8ef8): PATCH answers 200 or 202 + ``Location``; PUT 200/201; both
``x-ms-long-running-operation``. Real traffic (``../shared/apim-spec/recordings``): a PATCH that changes
nothing answers 200 with the resource; a PUT answers with the resource, ``Location`` to
``operationresults`` and ``Retry-After``; polls answer 202 until the resource comes with 200.
``customProperties`` in a PATCH are merged key by key (the recorded PATCH sent one key and kept the others).

Emulated:

- ``hostnameConfigurations`` (type, hostName, keyVaultId, identityClientId, certificateSource,
  defaultSslBinding, negotiateClientCertificate): a Key Vault certificate is read **now, with the
  instance's identity** (``identityClientId`` = a user-assigned identity of the instance, else its
  system-assigned one) exactly as an outside client would: the vault must answer (region), the
  identity needs ``secrets/getSecret/action`` (Key Vault Secrets User / Certificate User ...), the secret
  must exist, be enabled and hold a PKCS#12. Any failure refuses the request: 400 ``InvalidParameters``
  "Failed to access KeyVault Secret ... using Managed Service Identity (http://aka.ms/apimmsi) ..."
  (the wording APIM uses, recalled; not found in the public corpus: see emulator/README.md). A
  ``/certificates/`` URL: "ApiManagement service only accepts KeyVault Secrets type." (seen in
  hashicorp/terraform-provider-azurerm #3635). No certificate at all: "Either encodedCertificate or
  keyVaultId should be provided to retrieve the custom SSL certificate for type: {type} and hostname :
  {host}." (terraform-provider-azurerm #11290). An unknown ``identityClientId``: "Can not find Managed
  Identity with provided IdentityClientId : {id}. For more information please see aka.ms/apimmsi."
  (Azure/apiops #257). ``certificate`` is filled from the certificate read; bytes and passwords are
  never stored. Binding a hostname another instance has bound is allowed, as in Azure (active-active
  setups bind the same custom domain on several instances); the admin setting
  ``exclusiveHostnames`` refuses it instead (409 ``Conflict``) for tests that want that stricter world.
- ``customProperties`` (protocols, ciphers: keys under ``Microsoft.WindowsAzure.ApiManagement.Gateway.``,
  values ``True``/``False``), ``identity`` (``SystemAssigned``/``UserAssigned``/both/``None``; new
  identities get principal and client ids), ``certificates`` (CA certificates: ``storeName``
  ``Root``/``CertificateAuthority`` and a base64 DER or PEM ``encodedCertificate``, kept as
  ``certificate`` info), ``virtualNetworkType`` / ``virtualNetworkConfiguration`` (recorded only),
  ``tags``, ``publisherEmail``/``publisherName``.

Tags and publisher changes, and requests that change nothing, answer 200 at once. Anything else starts
an operation (the engine's, ``kind`` "update"): 202 (PATCH) or 200 (PUT) with ``Location``; the service
is ``Updating`` and other writes (backup and restore included) get 409 ``ServiceLocked`` until the
operation ends. A native backup still omits all of this, and a restore keeps it (emulator/apim/backups.py).
Creating a new service is not emulated (405).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .errors import ArmError, apim_error, invalid_parameter
from .operations import Engine
from .resources import etag_for, render_service
from .wire import Request, Response, json_response

HOSTNAME_TYPES = ("Proxy", "Portal", "Management", "Scm", "DeveloperPortal", "ConfigurationApi")
CERTIFICATE_SOURCES = ("Managed", "KeyVault", "Custom", "BuiltIn")
IDENTITY_TYPES = ("SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None")
CUSTOM_PROPERTY_PREFIX = "Microsoft.WindowsAzure.ApiManagement.Gateway."
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9*](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
SUBNET_RE = re.compile(
    r"^/subscriptions/[^/]*/resourceGroups/[^/]*/providers/Microsoft.(ClassicNetwork|Network)/virtualNetworks/[^/]*/subnets/[^/]*$"
)
MAX_BODY_BYTES = 256 * 1024
LONG_RUNNING = (
    "hostnameConfigurations",
    "customProperties",
    "identity",
    "certificates",
    "virtualNetworkType",
    "virtualNetworkConfiguration",
)

# (service record, principal id, keyVaultId) -> the certificate information, or raises ArmError
CertificateReader = Callable[[dict[str, Any], str, str], dict[str, str]]
# (host name, service name) -> the name of another instance that has it bound, or None
HostnameOwner = Callable[[str, str], str | None]


class ServiceUpdates:
    def __init__(self, engine: Engine, read_certificate: CertificateReader, hostname_owner: HostnameOwner) -> None:
        self.engine = engine
        self.read_certificate = read_certificate
        self.hostname_owner = hostname_owner
        engine.completers["update"] = self._complete

    def handle(self, req: Request, svc: dict[str, Any], api_version: str, principal: str) -> Response:
        """PATCH or PUT of ``svc`` (the lookups, RBAC and region checks were made by the caller)."""
        body = _body(req)
        replace = req.method == "PUT"

        def decide(current: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            if self.engine.is_locked(current):
                raise apim_error(
                    409,
                    "ServiceLocked",
                    f"The API Service {current['name']} is transitioning at this time. "
                    "Please try the request again later.",
                )
            changes = self._changes(current, body, replace=replace)
            return changes, any(key in LONG_RUNNING for key in changes)

        svc, op = self.engine.change_service(
            svc["name"], decide, _apply, kind="update", api_version=api_version, principal=principal
        )
        resource = render_service(svc)
        etag = {"ETag": f'"{etag_for(svc["etagCounter"])}"'}
        if op is None:
            return json_response(200, resource, etag)
        location = {
            "Location": f"{req.base_url}{op['locationPath']}?api-version={api_version}",
            "Retry-After": str(self.engine.retry_after()),
        }
        if req.method == "PATCH":
            return Response(202, b"", location)
        return json_response(200, resource, etag | location)

    # -- validation ----------------------------------------------------------------------------
    def _changes(self, svc: dict[str, Any], body: dict[str, Any], *, replace: bool) -> dict[str, Any]:
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise invalid_parameter("'properties' must be an object.", "properties")
        sku = body.get("sku")
        if sku is not None and (
            not isinstance(sku, dict)
            or sku.get("name") != svc["sku"]["name"]
            or sku.get("capacity", svc["sku"]["capacity"]) != svc["sku"]["capacity"]
        ):
            raise invalid_parameter("Changing the SKU or its capacity is not emulated.", "sku")
        location = body.get("location")
        if location is not None and str(location).replace(" ", "").lower() != svc["location"].replace(" ", "").lower():
            raise invalid_parameter("The location of a service cannot change.", "location")
        proposed: dict[str, Any] = {}
        if "identity" in body and body["identity"] is not None:
            proposed["identity"] = self._identity(svc, body["identity"])
        if "tags" in body and body["tags"] is not None:
            tags = body["tags"]
            if (
                not isinstance(tags, dict)
                or len(tags) > 50
                or not all(
                    isinstance(k, str) and isinstance(v, str) and len(k) <= 512 and len(v) <= 256
                    for k, v in tags.items()
                )
            ):
                raise ArmError(
                    400, "InvalidTag", "Tags must map at most 50 names (512 characters) to strings (256 characters)."
                )
            proposed["tags"] = dict(tags)
        for key in ("publisherEmail", "publisherName"):
            if key in props and props[key] is not None:
                if not isinstance(props[key], str) or not 1 <= len(props[key]) <= 100:
                    raise invalid_parameter(f"'{key}' must be 1-100 characters.", key)
                proposed[key] = props[key]
        if props.get("customProperties") is not None:
            proposed["customProperties"] = self._custom_properties(svc, props["customProperties"], replace=replace)
        identity_after = proposed.get("identity", svc.get("identity"))
        if props.get("hostnameConfigurations") is not None:
            proposed["hostnameConfigurations"] = self._hostnames(svc, identity_after, props["hostnameConfigurations"])
        if "certificates" in props:
            proposed["certificates"] = _ca_certificates(props["certificates"])
        if props.get("virtualNetworkType") is not None:
            if props["virtualNetworkType"] not in ("None", "External", "Internal"):
                raise invalid_parameter(
                    f"Requested value '{str(props['virtualNetworkType'])[:50]}' was not found.", "virtualNetworkType"
                )
            proposed["virtualNetworkType"] = props["virtualNetworkType"]
        if "virtualNetworkConfiguration" in props:
            proposed["virtualNetworkConfiguration"] = _vnet(props["virtualNetworkConfiguration"])
        # Only what differs from the service is a change.
        return {k: v for k, v in proposed.items() if _current(svc, k) != v}

    def _identity(self, svc: dict[str, Any], raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict) or raw.get("type") not in IDENTITY_TYPES:
            raise invalid_parameter(f"identity.type must be one of {', '.join(IDENTITY_TYPES)}.", "identity")
        kind = raw["type"]
        if kind == "None":
            return None
        current = svc.get("identity") or {}
        identity: dict[str, Any] = {"type": kind}
        if "SystemAssigned" in kind:
            identity["principalId"] = current.get("principalId") or str(uuid.uuid4())
            identity["tenantId"] = current.get("tenantId") or str(self.engine.store.get("tenantId"))
        if "UserAssigned" in kind:
            given = raw.get("userAssignedIdentities")
            if not isinstance(given, dict) or not given:
                raise invalid_parameter(
                    "userAssignedIdentities must name at least one identity resource id.", "identity"
                )
            known = current.get("userAssignedIdentities") or {}
            users = {}
            for rid in given:
                if (
                    not isinstance(rid, str)
                    or "/providers/microsoft.managedidentity/userassignedidentities/" not in rid.lower()
                ):
                    raise invalid_parameter(
                        f"'{str(rid)[:200]}' is not a user-assigned identity resource id.", "identity"
                    )
                existing = next((v for k, v in known.items() if k.lower() == rid.lower()), None)
                users[rid] = existing or {
                    "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, rid.lower() + "#principal")),
                    "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, rid.lower() + "#client")),
                }
            identity["userAssignedIdentities"] = users
        return identity

    @staticmethod
    def _custom_properties(svc: dict[str, Any], raw: Any, *, replace: bool) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise invalid_parameter("customProperties must map names to 'True' or 'False'.", "customProperties")
        merged = {} if replace else dict(svc.get("customProperties") or {})
        for key, value in raw.items():
            if not isinstance(key, str) or not key.startswith(CUSTOM_PROPERTY_PREFIX) or len(key) > 200:
                raise invalid_parameter(f"Unknown custom property '{str(key)[:200]}'.", "customProperties")
            text = str(value).lower() if isinstance(value, str | bool) else ""
            if text not in ("true", "false"):
                raise invalid_parameter(f"The value of '{key}' must be 'True' or 'False'.", "customProperties")
            # APIM reports them capitalised whatever the case sent (recording: 'false' -> 'False').
            merged[key] = text.capitalize()
        return merged

    def _hostnames(self, svc: dict[str, Any], identity: dict[str, Any] | None, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or len(raw) > 40:
            raise invalid_parameter("hostnameConfigurations must be a list (at most 40).", "hostnameConfigurations")
        default_host = f"{svc['name'].lower()}.azure-api.net"
        seen: set[tuple[str, str]] = set()
        result: list[dict[str, Any]] = []
        for entry in raw:
            if not isinstance(entry, dict):
                raise invalid_parameter("Each hostname configuration must be an object.", "hostnameConfigurations")
            kind, host = entry.get("type"), entry.get("hostName")
            if kind not in HOSTNAME_TYPES:
                raise invalid_parameter(f"Requested value '{str(kind)[:50]}' was not found.", "type")
            if not isinstance(host, str) or not HOST_RE.match(host):
                raise invalid_parameter(f"'{str(host)[:260]}' is not a valid host name.", "hostName")
            if (kind, host.lower()) in seen:
                raise invalid_parameter(
                    f"Hostname '{host}' of type {kind} is configured twice.", "hostnameConfigurations"
                )
            seen.add((kind, host.lower()))
            source = entry.get("certificateSource")
            if source is not None and source not in CERTIFICATE_SOURCES:
                raise invalid_parameter(f"Requested value '{str(source)[:50]}' was not found.", "certificateSource")
            out = {
                "type": kind,
                "hostName": host,
                "encodedCertificate": None,
                "keyVaultId": None,
                "certificatePassword": None,
                "negotiateClientCertificate": bool(entry.get("negotiateClientCertificate", False)),
                "certificate": None,
                "defaultSslBinding": bool(entry.get("defaultSslBinding", False)),
                "identityClientId": None,
                "certificateSource": "BuiltIn",
                "certificateStatus": None,
            }
            if host.lower() == default_host:
                result.append(out)
                continue
            owner = self.hostname_owner(host, svc["name"])
            if owner is not None:
                raise apim_error(
                    409, "Conflict", f"Hostname '{host}' is already bound to API Management service '{owner}'."
                )
            key_vault_id = entry.get("keyVaultId")
            if key_vault_id is None:
                if entry.get("encodedCertificate"):
                    raise invalid_parameter(
                        "Uploading certificate bytes is not emulated: reference a Key Vault secret (keyVaultId).",
                        "encodedCertificate",
                    )
                if source == "Managed":
                    out["certificateSource"] = "Managed"
                    result.append(out)
                    continue
                raise invalid_parameter(
                    "Either encodedCertificate or keyVaultId should be provided to retrieve the custom SSL "
                    "certificate "
                    f"for type: {kind} and hostname : {host}."
                )
            if not isinstance(key_vault_id, str) or len(key_vault_id) > 2048:
                raise invalid_parameter("keyVaultId must be a Key Vault secret URL.", "keyVaultId")
            if "/certificates/" in key_vault_id.lower():
                raise invalid_parameter("ApiManagement service only accepts KeyVault Secrets type.", "keyVaultId")
            client_id = entry.get("identityClientId")
            principal = _principal_for(identity, client_id)
            out["certificate"] = self.read_certificate(svc, principal, key_vault_id)
            out |= {
                "keyVaultId": key_vault_id,
                "identityClientId": client_id,
                "certificateSource": "KeyVault",
                "certificateStatus": "Completed",
            }
            result.append(out)
        if not any(e["type"] == "Proxy" and e["hostName"].lower() == default_host for e in result):
            # The default gateway hostname is always there (APIM adds it back).
            result.insert(
                0,
                {
                    "type": "Proxy",
                    "hostName": default_host,
                    "encodedCertificate": None,
                    "keyVaultId": None,
                    "certificatePassword": None,
                    "negotiateClientCertificate": False,
                    "certificate": None,
                    "defaultSslBinding": False,
                    "identityClientId": None,
                    "certificateSource": "BuiltIn",
                    "certificateStatus": None,
                },
            )
        return result

    # -- completion ----------------------------------------------------------------------------
    @staticmethod
    def _complete(svc: dict[str, Any], op: dict[str, Any], now: float) -> None:
        _apply(svc, op["parameters"]["changes"])


def _apply(svc: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        svc[key] = copy.deepcopy(value)


def _current(svc: dict[str, Any], key: str) -> Any:
    if key == "virtualNetworkType":
        return svc.get(key) or "None"
    return svc.get(key)


def _principal_for(identity: dict[str, Any] | None, client_id: Any) -> str:
    identity = identity or {}
    if client_id is not None:
        for uai in (identity.get("userAssignedIdentities") or {}).values():
            if isinstance(client_id, str) and uai.get("clientId", "").lower() == client_id.lower():
                return str(uai["principalId"])
        raise invalid_parameter(
            f"Can not find Managed Identity with provided IdentityClientId : {str(client_id)[:100]}. "
            "For more information please see aka.ms/apimmsi.",
            "identityClientId",
        )
    if "SystemAssigned" in str(identity.get("type", "")) and identity.get("principalId"):
        return str(identity["principalId"])
    raise invalid_parameter(
        "API Management service is not configured with a Managed Identity (http://aka.ms/apimmsi) to read "
        "certificates from Key Vault.",
        "keyVaultId",
    )


def _ca_certificates(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > 10:
        raise invalid_parameter("certificates must be a list (at most 10).", "certificates")
    out = []
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("storeName") not in ("CertificateAuthority", "Root"):
            raise invalid_parameter("Each certificate needs storeName 'Root' or 'CertificateAuthority'.", "storeName")
        encoded = entry.get("encodedCertificate")
        if not isinstance(encoded, str) or len(encoded) > 64 * 1024:
            raise invalid_parameter("encodedCertificate must be a base64 certificate.", "encodedCertificate")
        try:
            data = encoded.encode()
            cert = (
                x509.load_pem_x509_certificate(data)
                if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(base64.b64decode(data, validate=True))
            )
        except ValueError:
            raise invalid_parameter(
                "encodedCertificate is not a certificate (base64 DER or PEM).", "encodedCertificate"
            ) from None
        out.append(
            {
                "encodedCertificate": None,
                "certificatePassword": None,
                "storeName": entry["storeName"],
                "certificate": {
                    "expiry": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                    "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
                    "subject": cert.subject.rfc4514_string(),
                },
            }
        )
    return out


def _vnet(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    subnet = raw.get("subnetResourceId") if isinstance(raw, dict) else None
    if not isinstance(subnet, str) or not SUBNET_RE.match(subnet):
        raise invalid_parameter("subnetResourceId must be a subnet resource id.", "virtualNetworkConfiguration")
    return {
        "vnetid": "00000000-0000-0000-0000-000000000000",
        "subnetname": subnet.rsplit("/", 1)[1],
        "subnetResourceId": subnet,
    }


def _body(req: Request) -> dict[str, Any]:
    if len(req.body) > MAX_BODY_BYTES:
        raise invalid_parameter("The request content is too large.", "parameters")
    try:
        body = json.loads(req.body or b"null")
    except (ValueError, RecursionError):
        raise invalid_parameter("The request content is not valid JSON.", "parameters") from None
    if not isinstance(body, dict):
        raise invalid_parameter("The request content must be a JSON object.", "parameters")
    return body
