"""The companion export: what a native backup (and a configuration snapshot) leaves out, kept beside it.

APIM's backup omits custom-domain and CA certificates, VNet settings, managed identities, Azure
Monitor diagnostics, protocol and cipher settings and developer-portal content, and a restore does
not change custom hostnames (DR doc, ../shared/reference/apim-arm.md §4.1). A failover has to put
those back on the standby, so each recovery point gets a ``{recovery point}.companion.json`` that
records them from the source instance:

- **hostnames**: type, host name, Key Vault secret ID of the certificate and the identity that reads
  it, source, client-certificate negotiation, default SSL binding; never certificate bytes or
  passwords (``encodedCertificate``, ``certificatePassword`` are dropped on the way in);
- **CA certificates**: store, thumbprint, subject, expiry (APIM takes them only as uploaded bytes, which
  are not kept: they are listed under ``notCaptured`` so the runbook says to upload them);
- **identity**: type and the user-assigned identities' resource IDs;
- **customProperties**: protocols and ciphers;
- **network**: virtual-network type and subnet;
- **diagnostic settings** and Application Insights **loggers**;
- **developer portal**: content items, and the sign-in, sign-up and delegation settings (delegation's
  validation key is a secret: not kept);
- **tags**.

A part that could not be read is named in ``notCaptured`` with the reason; nothing is silently left out.
Pure: the adapters read, this module decides what is kept and what a failover writes back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dr_core.snapshots.document import JsonValue, NotCaptured

__all__ = [
    "COMPANION_FORMAT",
    "COMPANION_SUFFIX",
    "CaCertificate",
    "CompanionDocumentError",
    "CompanionExport",
    "HostnameBinding",
    "PortalItem",
    "companion_blob_name",
]

COMPANION_FORMAT = "apim-dr/companion/1"
COMPANION_SUFFIX = ".companion.json"
MAX_COMPANION_BYTES = 16 * 1024 * 1024
_BUILT_IN = "BuiltIn"
_NOT_CAPTURED_CA = "CA certificate bytes not captured (APIM accepts CA certificates only as uploads): upload it again"


class CompanionDocumentError(ValueError):
    """A stored companion that apim-dr did not write, or that is damaged."""


def companion_blob_name(recovery_point_blob: str) -> str:
    return recovery_point_blob + COMPANION_SUFFIX


@dataclass(frozen=True)
class HostnameBinding:
    type: str
    host_name: str
    key_vault_id: str | None
    identity_client_id: str | None
    certificate_source: str | None
    negotiate_client_certificate: bool = False
    default_ssl_binding: bool = False

    @property
    def custom(self) -> bool:
        """A custom domain (a built-in ``*.azure-api.net`` name is the instance's own and never moves)."""
        return self.certificate_source != _BUILT_IN

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": self.type, "hostName": self.host_name, "keyVaultId": self.key_vault_id,
                "identityClientId": self.identity_client_id, "certificateSource": self.certificate_source,
                "negotiateClientCertificate": self.negotiate_client_certificate,
                "defaultSslBinding": self.default_ssl_binding}

    @classmethod
    def from_arm(cls, raw: Mapping[str, JsonValue]) -> HostnameBinding:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) and value else None

        return cls(type=text("type") or "Proxy", host_name=text("hostName") or "", key_vault_id=text("keyVaultId"),
                   identity_client_id=text("identityClientId"),
                   certificate_source=text("certificateSource") or (_BUILT_IN if not text("keyVaultId") else None),
                   negotiate_client_certificate=raw.get("negotiateClientCertificate") is True,
                   default_ssl_binding=raw.get("defaultSslBinding") is True)


@dataclass(frozen=True)
class CaCertificate:
    store_name: str
    thumbprint: str | None
    subject: str | None
    expiry: str | None

    def to_json(self) -> dict[str, JsonValue]:
        return {"storeName": self.store_name, "thumbprint": self.thumbprint, "subject": self.subject,
                "expiry": self.expiry}


@dataclass(frozen=True)
class PortalItem:
    """A developer-portal content item (``contentTypes/{type}/contentItems/{id}``) or a portal setting."""

    path: str
    properties: dict[str, JsonValue]

    def to_json(self) -> dict[str, JsonValue]:
        return {"path": self.path, "properties": self.properties}


@dataclass(frozen=True)
class CompanionExport:
    instance: str
    recovery_point: str
    taken_at: datetime
    hostnames: tuple[HostnameBinding, ...] = ()
    ca_certificates: tuple[CaCertificate, ...] = ()
    identity_type: str | None = None
    user_assigned_identities: tuple[str, ...] = ()
    custom_properties: dict[str, str] = field(default_factory=dict)
    virtual_network_type: str | None = None
    subnet_id: str | None = None
    diagnostic_settings: tuple[PortalItem, ...] = ()  # name -> properties, as ARM returns them
    app_insights_loggers: tuple[PortalItem, ...] = ()
    portal: tuple[PortalItem, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    not_captured: tuple[NotCaptured, ...] = ()

    @classmethod
    def from_service(cls, service: Mapping[str, JsonValue], *, recovery_point: str, taken_at: datetime,
                     diagnostic_settings: Iterable[PortalItem] = (), loggers: Iterable[PortalItem] = (),
                     portal: Iterable[PortalItem] = (), not_captured: Iterable[NotCaptured] = ()) -> CompanionExport:
        """What the companion keeps of the service resource (``ApiManagementServiceResource`` REST body)."""
        properties = service.get("properties")
        props: Mapping[str, JsonValue] = properties if isinstance(properties, dict) else {}
        hostnames = tuple(HostnameBinding.from_arm(h) for h in _list_of_dicts(props.get("hostnameConfigurations")))
        missing = list(not_captured)
        cas: list[CaCertificate] = []
        for ca in _list_of_dicts(props.get("certificates")):
            info = ca.get("certificate")
            info_map: Mapping[str, JsonValue] = info if isinstance(info, dict) else {}
            cert = CaCertificate(str(ca.get("storeName") or ""), _str(info_map.get("thumbprint")),
                                 _str(info_map.get("subject")), _str(info_map.get("expiry")))
            cas.append(cert)
            missing.append(NotCaptured(f"caCertificates/{cert.thumbprint or cert.subject or len(cas)}",
                                       _NOT_CAPTURED_CA))
        identity = service.get("identity")
        identity_map: Mapping[str, JsonValue] = identity if isinstance(identity, dict) else {}
        user_assigned = identity_map.get("userAssignedIdentities")
        vnet = props.get("virtualNetworkConfiguration")
        vnet_map: Mapping[str, JsonValue] = vnet if isinstance(vnet, dict) else {}
        custom = props.get("customProperties")
        tags = service.get("tags")
        return cls(
            instance=str(service.get("id") or ""),
            recovery_point=recovery_point,
            taken_at=taken_at,
            hostnames=tuple(h for h in hostnames if h.custom),
            ca_certificates=tuple(cas),
            identity_type=_str(identity_map.get("type")),
            user_assigned_identities=tuple(sorted(user_assigned)) if isinstance(user_assigned, dict) else (),
            custom_properties={k: str(v) for k, v in sorted(custom.items())} if isinstance(custom, dict) else {},
            virtual_network_type=_str(props.get("virtualNetworkType")),
            subnet_id=_str(vnet_map.get("subnetResourceId")),
            diagnostic_settings=tuple(sorted(diagnostic_settings, key=lambda i: i.path)),
            app_insights_loggers=tuple(sorted(loggers, key=lambda i: i.path)),
            portal=tuple(sorted((_without_secrets(p) for p in portal), key=lambda i: i.path)),
            tags={k: str(v) for k, v in sorted(tags.items())} if isinstance(tags, dict) else {},
            not_captured=tuple(sorted(missing, key=lambda n: n.item_id)),
        )

    # -- what a failover writes back onto the standby ----------------------------------------------
    def service_patch(self, standby: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        """The ``PATCH`` body that puts this companion's settings onto ``standby`` (its REST body as read now).

        Hostnames: the standby keeps its own built-in ones and gets the primary's custom domains, each
        certificate read by the standby's identity (the same user-assigned identity when the standby has
        it too, else the standby's system-assigned one). Protocols and ciphers are merged key by key.
        """
        properties = standby.get("properties")
        props: Mapping[str, JsonValue] = properties if isinstance(properties, dict) else {}
        own = [HostnameBinding.from_arm(h) for h in _list_of_dicts(props.get("hostnameConfigurations"))]
        standby_identities = _user_assigned_client_ids(standby)
        custom_names = {h.host_name.lower() for h in self.hostnames}
        bindings: list[JsonValue] = [h.to_json() for h in own
                                     if not h.custom and h.host_name.lower() not in custom_names]
        for binding in self.hostnames:
            client_id = binding.identity_client_id if binding.identity_client_id in standby_identities else None
            bindings.append({**binding.to_json(), "identityClientId": client_id})
        return {"properties": {"hostnameConfigurations": bindings,
                               "customProperties": dict(self.custom_properties)}}

    # -- bytes -------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, JsonValue]:
        return {
            "format": COMPANION_FORMAT,
            "instance": self.instance,
            "recoveryPoint": self.recovery_point,
            "takenAt": self.taken_at.isoformat().replace("+00:00", "Z"),
            "hostnames": [h.to_json() for h in self.hostnames],
            "caCertificates": [c.to_json() for c in self.ca_certificates],
            "identity": {"type": self.identity_type, "userAssignedIdentities": list(self.user_assigned_identities)},
            "customProperties": dict(self.custom_properties),
            "network": {"virtualNetworkType": self.virtual_network_type, "subnetResourceId": self.subnet_id},
            "diagnosticSettings": [d.to_json() for d in self.diagnostic_settings],
            "appInsightsLoggers": [lg.to_json() for lg in self.app_insights_loggers],
            "portal": [p.to_json() for p in self.portal],
            "tags": dict(self.tags),
            "notCaptured": [n.to_json() for n in self.not_captured],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> CompanionExport:
        """:raises CompanionDocumentError: naming what is wrong."""
        if len(data) > MAX_COMPANION_BYTES:
            raise CompanionDocumentError(f"the companion is {len(data)} bytes; at most {MAX_COMPANION_BYTES}")
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise CompanionDocumentError(f"the companion is not JSON: {str(e)[:120]}") from e
        if not isinstance(body, dict) or body.get("format") != COMPANION_FORMAT:
            raise CompanionDocumentError(f"not an apim-dr companion (format is not {COMPANION_FORMAT!r})")
        try:
            taken_at = datetime.fromisoformat(str(body["takenAt"]).replace("Z", "+00:00"))
            identity = body.get("identity") or {}
            network = body.get("network") or {}
            return cls(
                instance=str(body["instance"]), recovery_point=str(body["recoveryPoint"]), taken_at=taken_at,
                hostnames=tuple(HostnameBinding.from_arm(h) for h in _list_of_dicts(body.get("hostnames"))),
                ca_certificates=tuple(CaCertificate(str(c.get("storeName") or ""), _str(c.get("thumbprint")),
                                                    _str(c.get("subject")), _str(c.get("expiry")))
                                      for c in _list_of_dicts(body.get("caCertificates"))),
                identity_type=_str(identity.get("type")),
                user_assigned_identities=tuple(str(i) for i in identity.get("userAssignedIdentities") or ()),
                custom_properties={str(k): str(v) for k, v in (body.get("customProperties") or {}).items()},
                virtual_network_type=_str(network.get("virtualNetworkType")),
                subnet_id=_str(network.get("subnetResourceId")),
                diagnostic_settings=_items(body.get("diagnosticSettings")),
                app_insights_loggers=_items(body.get("appInsightsLoggers")),
                portal=_items(body.get("portal")),
                tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
                not_captured=tuple(NotCaptured(str(n.get("id")), str(n.get("reason")))
                                   for n in _list_of_dicts(body.get("notCaptured"))),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise CompanionDocumentError(f"the companion is damaged: {type(e).__name__}: {str(e)[:120]}") from e


def _without_secrets(item: PortalItem) -> PortalItem:
    """Delegation's validation key is a secret (portalsettings/delegation ``validationKey``)."""
    if not item.path.lower().endswith("portalsettings/delegation"):
        return item
    properties = copy.deepcopy(item.properties)
    properties.pop("validationKey", None)
    return PortalItem(item.path, properties)


def _user_assigned_client_ids(service: Mapping[str, JsonValue]) -> set[str]:
    identity = service.get("identity")
    if not isinstance(identity, dict):
        return set()
    assigned = identity.get("userAssignedIdentities")
    if not isinstance(assigned, dict):
        return set()
    return {str(v.get("clientId")) for v in assigned.values() if isinstance(v, dict) and v.get("clientId")}


def _list_of_dicts(value: JsonValue) -> list[dict[str, JsonValue]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _items(value: JsonValue) -> tuple[PortalItem, ...]:
    out: list[PortalItem] = []
    for raw in _list_of_dicts(value):
        properties = raw.get("properties")
        out.append(PortalItem(str(raw.get("path")), properties if isinstance(properties, dict) else {}))
    return tuple(out)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
