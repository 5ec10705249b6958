"""Key Vault state: vaults, secret versions, certificates (as Key Vault stores them), role assignments.

A certificate is what Key Vault makes of one: a certificate object (``/certificates/{name}/{version}``:
DER ``cer``, ``x5t`` thumbprint) and, under the **same name and version**, a managed secret
(``/secrets/{name}/{version}``) whose value is the PKCS#12 (base64, no password) with content type
``application/x-pkcs12``. That secret id is what API Management's ``hostnameConfigurations[].keyVaultId``
references. Certificates made here are signed by the emulator's own CA (``emulator/certs.py``), so a
client trusting the emulator's CA bundle trusts them.

Everything is kept in the emulator's SQLite state (one document, ``keyVaults``), changed under the
engine's shared-document lock.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from emulator.apim.state import Clock, Store
from emulator.certs import TlsFiles

from . import roles

STATE_KEY = "keyVaults"
VAULT_DOMAIN = "vault.azure.net"
# Vault names: 3-24 characters, letters, digits and hyphens, starting with a letter, ending with a
# letter or digit, no consecutive hyphens (Key Vault naming rules).
VAULT_NAME_RE = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
# Secret and certificate names: 1-127 characters, letters, digits and hyphens.
OBJECT_NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_SECRET_VALUE_BYTES = 25 * 1024  # "The maximum allowed size of a secret value is 25 KB"
PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"


class KeyVaultError(Exception):
    """A Key Vault error answer: ``{"error": {"code", "message"[, "innerError": {"code"}]}}``."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innerError"] = {"code": self.inner}
        return {"error": error}


@dataclass(frozen=True)
class SecretRef:
    """A parsed secret or certificate identifier ``https://{vault}.vault.azure.net/{kind}/{name}[/{version}]``."""

    vault: str
    kind: str  # "secrets" | "certificates"
    name: str
    version: str | None


def parse_object_id(url: str) -> SecretRef:
    """Parse a Key Vault object id; ``ValueError`` naming what is wrong."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host.endswith("." + VAULT_DOMAIN):
        raise ValueError(f"'{url}' is not a Key Vault URL (https://{{vault}}.{VAULT_DOMAIN}/...)")
    vault = host[: -len(VAULT_DOMAIN) - 1]
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) not in (2, 3) or segments[0] not in ("secrets", "certificates"):
        raise ValueError(f"'{url}' names no secret or certificate (/secrets/{{name}}[/{{version}}])")
    if not OBJECT_NAME_RE.match(segments[1]) or (len(segments) == 3 and not VERSION_RE.match(segments[2])):
        raise ValueError(f"'{url}' has an invalid name or version")
    return SecretRef(vault, segments[0], segments[1], segments[2].lower() if len(segments) == 3 else None)


def vault_url(name: str) -> str:
    return f"https://{name.lower()}.{VAULT_DOMAIN}"


class Vaults:
    def __init__(self, store: Store, lock: threading.RLock, clock: Clock, tls: TlsFiles) -> None:
        self._store = store
        self._lock = lock
        self._clock = clock
        self._tls = tls

    # -- state ---------------------------------------------------------------------------------
    def _all(self) -> dict[str, Any]:
        return dict(self._store.get(STATE_KEY) or {})

    def vault(self, name: str) -> dict[str, Any] | None:
        found = self._all().get(name.lower())
        return None if found is None else dict(found)

    def vaults(self) -> list[dict[str, Any]]:
        return list(self._all().values())

    def _save(self, vault: dict[str, Any]) -> None:
        current = self._all()
        current[vault["name"].lower()] = vault
        self._store.put(STATE_KEY, current)

    def reset(self, seeded: list[dict[str, Any]]) -> None:
        with self._lock:
            self._store.put(STATE_KEY, {})
            for raw in seeded:
                self.create_vault(raw)

    def resource_id(self, vault: dict[str, Any], kind: str | None = None, name: str | None = None) -> str:
        rid = (
            f"/subscriptions/{vault['subscriptionId']}/resourceGroups/{vault['resourceGroup']}"
            f"/providers/Microsoft.KeyVault/vaults/{vault['name']}"
        )
        return f"{rid}/{kind}/{name}" if kind and name else rid

    # -- admin ---------------------------------------------------------------------------------
    def create_vault(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A vault from ``{name, location, resourceGroup, subscriptionId?, roleAssignments?, secrets?,
        certificates?}``."""
        name = raw.get("name")
        if not isinstance(name, str) or not VAULT_NAME_RE.match(name):
            raise ValueError(
                f"vault name {name!r} is invalid: 3-24 letters, digits and single hyphens, starting with a letter"
            )
        location = raw.get("location")
        group = raw.get("resourceGroup")
        if not isinstance(location, str) or not location or not isinstance(group, str) or not group:
            raise ValueError("a vault needs 'location' and 'resourceGroup'")
        subscription = raw.get("subscriptionId") or self._default_subscription()
        with self._lock:
            if self.vault(name) is not None:
                raise ValueError(f"vault '{name}' already exists (vault names are global)")
            vault: dict[str, Any] = {
                "name": name.lower(),
                "location": location.replace(" ", "").lower(),
                "resourceGroup": group,
                "subscriptionId": subscription,
                "roleAssignments": [],
                "secrets": {},
                "certificates": {},
            }
            self._save(vault)
            for assignment in raw.get("roleAssignments") or []:
                self.grant(name, assignment)
            for secret in raw.get("secrets") or []:
                if not isinstance(secret, dict):
                    raise ValueError("vault secrets must be objects {name, value, contentType?}")
                self.set_secret(name, secret.get("name"), secret.get("value"), content_type=secret.get("contentType"))
            for cert in raw.get("certificates") or []:
                if not isinstance(cert, dict):
                    raise ValueError("vault certificates must be objects {name, subject, dnsNames?}")
                self.create_certificate(name, cert)
            return self._view(self.vault(name) or vault)

    def _default_subscription(self) -> str:
        subs = self._store.get("subscriptions") or []
        return str(subs[0]["subscriptionId"]) if subs else "00000000-0000-0000-0000-000000000000"

    def _require(self, name: str) -> dict[str, Any]:
        vault = self.vault(name)
        if vault is None:
            raise KeyError(f"vault {name}")
        return vault

    def grant(self, vault_name: str, raw: Any) -> dict[str, Any]:
        """Add a role assignment ``{principalId, role | dataActions, scope?}``.

        ``scope`` is the vault (default), ``secrets/{name}`` or ``certificates/{name}`` (Azure RBAC
        allows assignments on a single secret or certificate).
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("principalId"), str) or not raw["principalId"]:
            raise ValueError("a role assignment needs 'principalId' and 'role' (name or GUID) or 'dataActions'")
        role = raw.get("role")
        actions = raw.get("dataActions")
        if role is not None:
            if not isinstance(role, str):
                raise ValueError("'role' must be a role name or GUID")
            resolved = list(roles.role_actions(role))
        elif isinstance(actions, list) and actions and all(isinstance(a, str) for a in actions):
            resolved = list(actions)
        else:
            raise ValueError("a role assignment needs 'role' (name or GUID) or a non-empty list 'dataActions'")
        scope = str(raw.get("scope") or "").strip("/")
        if scope:
            kind, _, obj = scope.partition("/")
            if kind not in ("secrets", "certificates") or not OBJECT_NAME_RE.match(obj):
                raise ValueError("'scope' is the vault (omit it), 'secrets/{name}' or 'certificates/{name}'")
        assignment = {
            "principalId": raw["principalId"].lower(),
            "role": roles.role_name(role) if role else "custom",
            "dataActions": resolved,
            "scope": scope,
        }
        with self._lock:
            vault = self._require(vault_name)
            vault["roleAssignments"].append(assignment)
            self._save(vault)
        return assignment

    def revoke(self, vault_name: str, principal_id: str, role: str | None = None) -> int:
        with self._lock:
            vault = self._require(vault_name)
            before = len(vault["roleAssignments"])
            wanted = roles.role_name(role) if role else None
            vault["roleAssignments"] = [
                a
                for a in vault["roleAssignments"]
                if not (a["principalId"] == principal_id.lower() and (wanted is None or a["role"] == wanted))
            ]
            self._save(vault)
            return before - len(vault["roleAssignments"])

    def set_secret(
        self,
        vault_name: str,
        name: Any,
        value: Any,
        *,
        content_type: Any = None,
        enabled: bool = True,
        tags: Any = None,
        managed: bool = False,
        version: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(name, str) or not OBJECT_NAME_RE.match(name):
            raise KeyVaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        if not isinstance(value, str):
            raise KeyVaultError(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(value.encode()) > MAX_SECRET_VALUE_BYTES:
            raise KeyVaultError(
                400,
                "BadParameter",
                f"The secret value is {len(value.encode())} bytes: the limit is 25 KB (25600 bytes).",
            )
        if content_type is not None and (not isinstance(content_type, str) or len(content_type) > 255):
            raise KeyVaultError(
                400, "BadParameter", "Property 'contentType' must be a string of at most 255 characters."
            )
        if tags is not None and (
            not isinstance(tags, dict)
            or len(tags) > 15
            or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 512 and len(v) <= 512 for k, v in tags.items()
            )
        ):
            raise KeyVaultError(
                400, "BadParameter", "Tags must map at most 15 names to strings of at most 512 characters."
            )
        now = int(self._clock.now())
        record = {
            "version": version or secrets.token_hex(16),
            "value": value,
            "contentType": content_type,
            "enabled": bool(enabled),
            "created": now,
            "updated": now,
            "tags": dict(tags or {}),
            "managed": managed,
        }
        with self._lock:
            vault = self._require(vault_name)
            vault["secrets"].setdefault(name.lower(), {"name": name, "versions": []})["versions"].append(record)
            self._save(vault)
        return record

    def set_secret_enabled(self, vault_name: str, name: str, enabled: bool, version: str | None = None) -> None:
        with self._lock:
            vault = self._require(vault_name)
            entry = vault["secrets"].get(name.lower())
            if entry is None:
                raise KeyError(f"secret {name}")
            targets = (
                entry["versions"] if version is None else [v for v in entry["versions"] if v["version"] == version]
            )
            if not targets:
                raise KeyError(f"secret {name}/{version}")
            for record in targets:
                record["enabled"] = enabled
            self._save(vault)

    def create_certificate(self, vault_name: str, raw: dict[str, Any]) -> dict[str, Any]:
        """A new certificate version ``{name, subject, dnsNames?, validityDays?}`` signed by the emulator CA."""
        name = raw.get("name")
        if not isinstance(name, str) or not OBJECT_NAME_RE.match(name):
            raise ValueError(f"certificate name {name!r} is invalid: 1-127 letters, digits and hyphens")
        subject = raw.get("subject") or ""
        if not isinstance(subject, str) or not subject.startswith("CN=") or len(subject) > 200:
            raise ValueError("'subject' must look like 'CN=api.contoso.com'")
        dns_names = raw.get("dnsNames") or [subject[3:]]
        if not isinstance(dns_names, list) or not all(isinstance(n, str) and n for n in dns_names):
            raise ValueError("'dnsNames' must be a list of host names")
        days = raw.get("validityDays", 365)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
            raise ValueError("'validityDays' must be 1-3650")
        pfx, cert = self._issue(subject[3:], dns_names, days)
        version = secrets.token_hex(16)
        now = int(self._clock.now())
        record = {
            "version": version,
            "cer": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
            "subject": subject,
            "dnsNames": dns_names,
            "notBefore": int(cert.not_valid_before_utc.timestamp()),
            "expires": int(cert.not_valid_after_utc.timestamp()),
            "created": now,
            "updated": now,
            "enabled": True,
        }
        with self._lock:
            vault = self._require(vault_name)
            vault["certificates"].setdefault(name.lower(), {"name": name, "versions": []})["versions"].append(record)
            self._save(vault)
            self.set_secret(
                vault_name, name, base64.b64encode(pfx).decode(), content_type=PKCS12, managed=True, version=version
            )
        return record

    def _issue(self, common_name: str, dns_names: list[str], days: int) -> tuple[bytes, x509.Certificate]:
        ca_cert = x509.load_pem_x509_certificate(self._tls.cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self._tls.key.read_bytes(), password=None)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.fromtimestamp(self._clock.now(), dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        pfx = pkcs12.serialize_key_and_certificates(
            common_name.encode(), key, cert, [ca_cert], serialization.NoEncryption()
        )
        return pfx, cert

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def secret_entry(vault: dict[str, Any], name: str) -> dict[str, Any] | None:
        entry = vault["secrets"].get(name.lower())
        return None if entry is None else dict(entry)

    @staticmethod
    def pick_version(entry: dict[str, Any], version: str | None) -> dict[str, Any] | None:
        versions = entry["versions"]
        if not versions:
            return None
        if version is None:
            return dict(versions[-1])
        return next((dict(v) for v in versions if v["version"] == version.lower()), None)

    def authorized(
        self, vault: dict[str, Any], principal: str, action: str, kind: str | None, name: str | None
    ) -> bool:
        """Whether ``principal`` holds ``action`` on the vault or on the object ``{kind}/{name}``."""
        target = f"{kind}/{name}".lower() if kind and name else ""
        for assignment in vault["roleAssignments"]:
            if assignment["principalId"] != principal.lower():
                continue
            scope = assignment["scope"].lower()
            if scope and scope != target:
                continue
            if roles.grants(assignment["dataActions"], action):
                return True
        return False

    def _view(self, vault: dict[str, Any]) -> dict[str, Any]:
        """The admin view: no secret values."""
        return {
            "name": vault["name"],
            "vaultUri": vault_url(vault["name"]) + "/",
            "id": self.resource_id(vault),
            "location": vault["location"],
            "resourceGroup": vault["resourceGroup"],
            "subscriptionId": vault["subscriptionId"],
            "roleAssignments": vault["roleAssignments"],
            "secrets": {
                e["name"]: [
                    {k: v for k, v in r.items() if k != "value"}
                    | {"id": f"{vault_url(vault['name'])}/secrets/{e['name']}/{r['version']}"}
                    for r in e["versions"]
                ]
                for e in vault["secrets"].values()
            },
            "certificates": {
                e["name"]: [
                    r
                    | {
                        "id": f"{vault_url(vault['name'])}/certificates/{e['name']}/{r['version']}",
                        "secretId": f"{vault_url(vault['name'])}/secrets/{e['name']}/{r['version']}",
                    }
                    for r in e["versions"]
                ]
                for e in vault["certificates"].values()
            },
        }

    def view(self, name: str) -> dict[str, Any]:
        return self._view(self._require(name))


def certificate_info(pfx_b64: str) -> dict[str, str]:
    """``CertificateInformation`` (expiry, thumbprint, subject) of a PKCS#12 secret value; ValueError if unreadable."""
    try:
        _, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx_b64, validate=True), None)
    except (ValueError, TypeError) as exc:
        raise ValueError("the secret is not a PKCS#12 certificate without password") from exc
    if cert is None:
        raise ValueError("the PKCS#12 holds no certificate")
    return {
        "expiry": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
        "subject": cert.subject.rfc4514_string(),
    }


def x5t(thumbprint_hex: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint_hex)).decode().rstrip("=")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
