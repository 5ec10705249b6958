"""The stand-ins beside API Management, wired into one running emulator (emulator/apim/app.py).

- ARM providers at the same ARM endpoint (``handle_arm``, the one hook in the ARM dispatch): Front Door
  origins, Traffic Manager endpoints, DNS CNAME record sets (emulator/arm_providers/), diagnostic
  settings on a service, APIM service PATCH/PUT (emulator/apim/service_update.py), and the region
  outage answer (504) for APIM requests whose service sits in a region that is down.
- The data plane (``handle_dataplane``, one HTTPS server routing by ``Host``): Key Vault
  (emulator/keyvault/) and each instance's gateway (emulator/gateway/).
- Name resolution for emulator/proxy.py (``resolve``): which host names exist and answer now.
- Seeding, and the admin endpoints under ``/_emulator/`` (``handle_admin``).

Nothing here imports dr_core: the stand-ins follow Azure's REST specs, not the app.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator import gateway, regions
from emulator.apim.errors import ArmError, invalid_parameter
from emulator.apim.operations import Engine
from emulator.apim.resources import SERVICE_NAME_MAX, SERVICE_NAME_RE, SUPPORTED_API_VERSIONS, service_id
from emulator.apim.service_update import ServiceUpdates
from emulator.apim.wire import Request, Response, json_response
from emulator.arm_providers import diagnostics, dns, frontdoor, trafficmanager
from emulator.arm_providers.front import ArmFront, Call
from emulator.arm_providers.store import ResourceStore
from emulator.certs import TlsFiles
from emulator.keyvault import roles
from emulator.keyvault.api import KeyVaultApi
from emulator.keyvault.vaults import PKCS12, KeyVaultError, Vaults, certificate_info, parse_object_id

logger = logging.getLogger(__name__)

SETTINGS_KEY = "standinSettings"
DEFAULT_SETTINGS = {"providerOpSeconds": 1.0, "exclusiveHostnames": False}
ADMIN_HEADS = ("keyvaults", "arm-resources", "regions", "standin-settings")
VAULT_SUFFIX = ".vault.azure.net"
GATEWAY_SUFFIX = ".azure-api.net"
REGIONAL_RE = re.compile(r"^(?P<name>[a-z0-9-]+)-(?P<region>[a-z0-9]+)-01\.regional\.azure-api\.net$")
TM_SUFFIX = ".trafficmanager.net"
MAX_CNAME_HOPS = 8

_RG = r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/"
APIM_SERVICE_RE = re.compile(_RG + r"microsoft\.apimanagement/service/(?P<name>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)
DIAGNOSTICS_RE = re.compile(
    r"^/providers/microsoft\.insights/diagnosticsettings(?:/(?P<setting>[^/]+))?/?$", re.IGNORECASE
)
CDN_ORIGINS_RE = re.compile(
    _RG + r"microsoft\.cdn/profiles/(?P<p>[^/]+)/origingroups/(?P<g>[^/]+)/origins(?:/(?P<o>[^/]+))?/?$", re.IGNORECASE
)
CDN_OPERATION_RE = re.compile(_RG + r"microsoft\.cdn/operationresults/(?P<op>[^/]+)/?$", re.IGNORECASE)
TM_RE = re.compile(
    _RG + r"microsoft\.network/trafficmanagerprofiles/(?P<p>[^/]+)"
    r"(?:/(?P<t>azureendpoints|externalendpoints)/(?P<e>[^/]+))?/?$",
    re.IGNORECASE,
)
DNS_RE = re.compile(
    _RG + r"microsoft\.network/dnszones/(?P<zone>[^/]+)/(?P<type>[^/]+)(?:/(?P<name>[^/]+))?/?$", re.IGNORECASE
)


class Standins:
    def __init__(self, engine: Engine, tls: TlsFiles, state_dir: Path) -> None:
        self.engine = engine
        self.tls = tls
        self.regions = regions.Regions(engine.store, engine.lock)
        self.vaults = Vaults(engine.store, engine.lock, engine.clock, tls)
        self.resources = ResourceStore(engine.store, engine.lock)
        self.front = ArmFront(engine)
        self.frontdoor = frontdoor.FrontDoor(self.resources, engine.clock, lambda: self.settings()["providerOpSeconds"])
        self.trafficmanager = trafficmanager.TrafficManager(self.resources)
        self.dns = dns.Dns(self.resources)
        self.diagnostics = diagnostics.DiagnosticSettings(self.resources)
        self.updates = ServiceUpdates(engine, self._read_certificate_as, self._hostname_owner)
        self.keyvault = KeyVaultApi(self.vaults, lambda: str(engine.store.get("tenantId") or ""))
        self._cert_dir = state_dir / "gateway-certs"
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        self._contexts_lock = threading.Lock()
        # Called when outages change: the proxy ends open tunnels (a region going down cuts them).
        self.on_outage_change: Any = lambda: None
        engine.seed_hooks.append(self.apply_seed)
        engine.storage_unreachable = self._storage_unreachable

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return DEFAULT_SETTINGS | (self.engine.store.get(SETTINGS_KEY) or {})

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(
                f"unknown stand-in settings: {', '.join(sorted(unknown))} (known: {', '.join(DEFAULT_SETTINGS)})"
            )
        seconds = changes.get("providerOpSeconds", 0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("providerOpSeconds must be a number of seconds >= 0")
        if not isinstance(changes.get("exclusiveHostnames", False), bool):
            raise ValueError("exclusiveHostnames must be true or false")
        with self.engine.lock:
            self.engine.store.put(SETTINGS_KEY, (self.engine.store.get(SETTINGS_KEY) or {}) | changes)
        return self.settings()

    # -- seed ----------------------------------------------------------------------------------
    def apply_seed(self, seed: dict[str, Any]) -> None:
        extra = seed.get("standins") or {}
        self.engine.store.put(SETTINGS_KEY, {})
        self.regions.restore()
        self.resources.reset()
        self.vaults.reset(extra.get("keyVaults") or [])
        default_sub = seed["subscriptions"][0]["subscriptionId"]
        for profile in extra.get("frontDoorProfiles") or []:
            self.frontdoor.add_profile(profile.get("subscriptionId") or default_sub, profile)
        for profile in extra.get("trafficManagerProfiles") or []:
            self.trafficmanager.add_profile(profile.get("subscriptionId") or default_sub, profile)
        for zone in extra.get("dnsZones") or []:
            self.dns.add_zone(zone.get("subscriptionId") or default_sub, zone)
        with self._contexts_lock:
            self._contexts.clear()

    # -- ARM -----------------------------------------------------------------------------------
    def handle_arm(self, req: Request) -> Response | None:
        """The answer for requests the stand-ins own; None for everything the APIM routes serve."""
        path = req.path
        if (m := APIM_SERVICE_RE.match(path)) is not None:
            return self._apim(req, m)
        if (m := CDN_ORIGINS_RE.match(path)) is not None:
            return self._serve(
                req,
                m,
                versions=frontdoor.API_VERSIONS,
                rtype="profiles/originGroups/origins",
                handler=lambda c: self.frontdoor.handle(c, unquote(m["p"]), unquote(m["g"]), _opt(m["o"])),
            )
        if (m := CDN_OPERATION_RE.match(path)) is not None:
            return self._serve(
                req,
                m,
                versions=frontdoor.API_VERSIONS,
                rtype="operationresults",
                handler=lambda c: self.frontdoor.operation_status(c, unquote(m["op"])),
            )
        if (m := TM_RE.match(path)) is not None:
            return self._serve(
                req,
                m,
                versions=trafficmanager.API_VERSIONS,
                rtype="trafficManagerProfiles",
                handler=lambda c: self.trafficmanager.handle(c, unquote(m["p"]), m["t"], _opt(m["e"])),
            )
        if (m := DNS_RE.match(path)) is not None:
            return self._serve(
                req,
                m,
                versions=dns.API_VERSIONS,
                rtype="dnszones",
                handler=lambda c: self.dns.handle(c, unquote(m["zone"]).lower(), unquote(m["type"]), _opt(m["name"])),
            )
        return None

    def _serve(
        self,
        req: Request,
        m: re.Match[str],
        *,
        versions: tuple[str, ...],
        rtype: str,
        handler: Any,
        location: str | None = None,
    ) -> Response:
        return self.front.serve(
            req,
            subscription=unquote(m["sub"]),
            resource_group=unquote(m["rg"]),
            api_versions=versions,
            resource_type=rtype,
            handler=handler,
            location=location,
        )

    def _apim(self, req: Request, m: re.Match[str]) -> Response | None:
        rest = m["rest"] or ""
        name = unquote(m["name"])
        diag = DIAGNOSTICS_RE.match(rest)
        svc = self.engine.service(name)
        located = (
            svc is not None
            and svc["subscriptionId"].lower() == unquote(m["sub"]).lower()
            and svc["resourceGroup"].lower() == unquote(m["rg"]).lower()
        )
        if diag is not None:

            def diagnostics_call(call: Call) -> Response:
                found = self._service(call, name)
                sid = service_id(found["subscriptionId"], found["resourceGroup"], found["name"])
                return self.diagnostics.handle(call, sid, _opt(diag["setting"]))

            return self._serve(
                req, m, versions=diagnostics.API_VERSIONS, rtype="diagnosticSettings", handler=diagnostics_call
            )
        if rest.strip("/") == "" and req.method in ("PUT", "PATCH"):

            def update_call(call: Call) -> Response:
                if req.method == "PUT" and self.engine.service(name) is None:
                    raise ArmError(405, "MethodNotAllowed", "Creating API Management services is not emulated.")
                found = self._service(call, name)
                if self.regions.is_down(found["location"], "arm"):
                    raise regions.provider_unavailable("Microsoft.ApiManagement")
                return self.updates.handle(req, found, call.api_version, call.principal.object_id)

            return self._serve(
                req,
                m,
                versions=SUPPORTED_API_VERSIONS,
                rtype="service",
                handler=update_call,
                location=svc["location"] if svc else None,
            )
        if located and svc is not None and self.regions.is_down(svc["location"], "arm"):
            # ARM authenticates and authorises, then the provider's region does not answer.
            def unavailable(call: Call) -> Response:
                raise regions.provider_unavailable("Microsoft.ApiManagement")

            return self._serve(
                req, m, versions=SUPPORTED_API_VERSIONS, rtype="service", handler=unavailable, location=svc["location"]
            )
        return None

    def _service(self, call: Call, name: str) -> dict[str, Any]:
        if not SERVICE_NAME_RE.match(name) or len(name) > SERVICE_NAME_MAX:
            raise ArmError(400, "InvalidResourceName", f"Resource name '{name[:100]}' is invalid.")
        svc = self.engine.service(name)
        if (
            svc is None
            or svc["subscriptionId"].lower() != call.subscription.lower()
            or svc["resourceGroup"].lower() != (call.resource_group or "").lower()
        ):
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ApiManagement/service/{name}' under resource group '{call.resource_group}' "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return svc

    # -- APIM's own access to Key Vault and storage --------------------------------------------
    def _read_certificate_as(self, svc: dict[str, Any], principal: str, key_vault_id: str) -> dict[str, str]:
        def refused(reason: str) -> ArmError:
            return invalid_parameter(
                f"Failed to access KeyVault Secret {key_vault_id[:300]} using Managed Service Identity "
                f"(http://aka.ms/apimmsi) of Api Management service. Check if Managed Identity with ObjectId: "
                f"{principal} has GET permissions on secrets in the KeyVault ({reason}).",
                "keyVaultId",
            )

        try:
            ref = parse_object_id(key_vault_id)
        except ValueError as exc:
            raise invalid_parameter(str(exc), "keyVaultId") from None
        vault = self.vaults.vault(ref.vault)
        if vault is None:
            raise refused(f"the vault '{ref.vault}' does not resolve")
        if self.regions.is_down(vault["location"], "keyVault"):
            raise refused(f"the vault '{ref.vault}' does not answer: region outage in {vault['location']}")
        if not self.vaults.authorized(vault, principal, roles.GET_SECRET, "secrets", ref.name):
            raise refused(f"403 Forbidden: no role grants '{roles.GET_SECRET}' on secret '{ref.name}'")
        entry = self.vaults.secret_entry(vault, ref.name)
        record = None if entry is None else self.vaults.pick_version(entry, ref.version)
        if record is None:
            raise refused(f"404 SecretNotFound: '{ref.name}{'/' + ref.version if ref.version else ''}'")
        if not record["enabled"]:
            raise refused("403 Forbidden: the secret is disabled")
        if record.get("contentType") != PKCS12:
            raise invalid_parameter(f"The KeyVault Secret {key_vault_id[:300]} is not of type {PKCS12}.", "keyVaultId")
        try:
            return certificate_info(record["value"])
        except ValueError as exc:
            raise invalid_parameter(f"The KeyVault Secret {key_vault_id[:300]}: {exc}.", "keyVaultId") from None

    def _hostname_owner(self, host: str, service: str) -> str | None:
        if not self.settings()["exclusiveHostnames"]:
            return None
        for other in self.engine.store.services():
            if other["name"].lower() == service.lower():
                continue
            if any(h.get("hostName", "").lower() == host.lower() for h in other.get("hostnameConfigurations") or []):
                return str(other["name"])
        return None

    def _storage_unreachable(self, account: dict[str, Any]) -> str | None:
        location = account.get("location")
        if location and self.regions.is_down(location, "storage"):
            return f"region outage in {location}"
        return None

    # -- name resolution (emulator/proxy.py) and the data plane --------------------------------
    def _instance_for_host(self, host: str) -> tuple[dict[str, Any] | None, str]:
        """The instance whose gateway a host name reaches (following emulated DNS), and why not."""
        current = host.lower().rstrip(".")
        for _ in range(MAX_CNAME_HOPS):
            if current.endswith(GATEWAY_SUFFIX):
                label = current[: -len(GATEWAY_SUFFIX)]
                regional = REGIONAL_RE.match(current)
                name = regional["name"] if regional else label
                if "." in name and not regional:
                    return None, f"'{host}' does not resolve"
                svc = self.engine.service(name)
                return (svc, "") if svc is not None else (None, f"'{host}' does not resolve (no instance '{name}')")
            if current.endswith(TM_SUFFIX):
                target = self._traffic_manager_answer(current[: -len(TM_SUFFIX)])
                if target is None:
                    return None, f"'{host}': the Traffic Manager profile has no enabled, reachable endpoint"
                current = target.lower().rstrip(".")
                continue
            target = self.dns.resolve(current)
            if target is None:
                return None, f"'{host}' does not resolve (no instance, and no CNAME in the emulated DNS zones)"
            current = target.lower().rstrip(".")
        return None, f"'{host}': too many CNAME hops"

    def _traffic_manager_answer(self, relative_name: str) -> str | None:
        """Priority routing: the enabled endpoint with the lowest priority whose target answers."""
        for profile in self.resources.all():
            if profile["type"] != trafficmanager.PROFILE_TYPE:
                continue
            if profile["properties"]["dnsConfig"]["relativeName"].lower() != relative_name:
                continue
            endpoints = sorted(
                (
                    e
                    for e in self.resources.children(profile["id"])
                    if e["properties"].get("endpointStatus") == "Enabled"
                ),
                key=lambda e: e["properties"].get("priority") or 1000,
            )
            for endpoint in endpoints:
                target = endpoint["properties"].get("target")
                if not target:
                    continue
                svc, _ = self._instance_for_host(target)
                if svc is not None and not self.regions.is_down(svc["location"], "gateway"):
                    return str(target)
        return None

    def resolve(self, host: str) -> str | None:
        """None when a tunnel to ``host`` may open; else why not (no such name, or its region is down)."""
        host = host.lower()
        if host.endswith(VAULT_SUFFIX):
            vault = self.vaults.vault(host[: -len(VAULT_SUFFIX)])
            if vault is None:
                return f"'{host}' does not resolve (no such vault)"
            if self.regions.is_down(vault["location"], "keyVault"):
                return f"'{host}' does not answer: region outage in {vault['location']}"
            return None
        svc, why = self._instance_for_host(host)
        if svc is None:
            return why
        if self.regions.is_down(svc["location"], "gateway"):
            return f"'{host}' does not answer: the gateway of '{svc['name']}' is in {svc['location']}, which is down"
        return None

    def handle_dataplane(self, req: Request) -> Response:
        host = (
            (req.header("host") or "").rsplit(":", 1)[0].lower()
            if not (req.header("host") or "").startswith("[")
            else ""
        )
        if host.endswith(VAULT_SUFFIX):
            vault = self.vaults.vault(host[: -len(VAULT_SUFFIX)])
            if vault is not None and self.regions.is_down(vault["location"], "keyVault"):
                return Response(503, b"", close=True)
            try:
                return self.keyvault.handle(req, host[: -len(VAULT_SUFFIX)])
            except KeyVaultError as exc:  # pragma: no cover - handle() answers its own errors
                return json_response(exc.status, exc.body())
        svc, why = self._instance_for_host(host)
        if svc is None:
            return json_response(404, {"statusCode": 404, "message": why or "Resource not found"})
        if self.regions.is_down(svc["location"], "gateway"):
            return Response(503, b"", close=True)
        if not host.endswith(GATEWAY_SUFFIX) and not _binds(svc, host):
            # Reached through DNS, but the instance has no such custom hostname.
            return json_response(404, {"statusCode": 404, "message": "Resource not found"})
        # The gateway reads the configuration as a document (the entities table holds it item by item).
        configured = svc | {"configuration": self.engine.configuration_document(svc["name"])}
        return gateway.serve(req, configured, svc["location"])

    def sni_context(self, server_name: str | None) -> ssl.SSLContext | None:
        """The TLS context for a custom hostname: the Key Vault certificate the instance has bound to it."""
        if not server_name:
            return None
        host = server_name.lower()
        if host.endswith((VAULT_SUFFIX, GATEWAY_SUFFIX)) or host in ("localhost", "127.0.0.1"):
            return None
        svc, _ = self._instance_for_host(host)
        binding = (
            None
            if svc is None
            else next(
                (
                    h
                    for h in svc.get("hostnameConfigurations") or []
                    if h.get("hostName", "").lower() == host and h.get("keyVaultId")
                ),
                None,
            )
        )
        if binding is None:
            return None
        try:
            ref = parse_object_id(binding["keyVaultId"])
        except ValueError:
            return None
        vault = self.vaults.vault(ref.vault)
        entry = None if vault is None else self.vaults.secret_entry(vault, ref.name)
        record = None if entry is None else self.vaults.pick_version(entry, ref.version)
        if record is None or record.get("contentType") != PKCS12:
            return None
        key = (host, record["version"])
        with self._contexts_lock:
            if key in self._contexts:
                return self._contexts[key]
            private_key, cert, chain = pkcs12.load_key_and_certificates(base64.b64decode(record["value"]), None)
            if private_key is None or cert is None:
                return None
            self._cert_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self._cert_dir, suffix=".pem", delete=False) as handle:
                handle.write(
                    private_key.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                    )
                )
                handle.write(cert.public_bytes(serialization.Encoding.PEM))
                for extra in chain or []:
                    handle.write(extra.public_bytes(serialization.Encoding.PEM))
                pem = handle.name
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(pem)
            Path(pem).unlink(missing_ok=True)
            self._contexts[key] = context
            return context

    # -- admin ---------------------------------------------------------------------------------
    def handle_admin(self, req: Request, parts: list[str]) -> Response | None:
        """``/_emulator/{keyvaults|arm-resources|regions|standin-settings}/...``; None for other heads."""
        if not parts or parts[0] not in ADMIN_HEADS:
            return None
        try:
            return self._admin(req, parts[0], parts[1:])
        except KeyVaultError as exc:
            return json_response(exc.status, {"error": exc.message})
        except ArmError as exc:
            return json_response(exc.status, {"error": exc.message})
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})

    def _admin(self, req: Request, head: str, rest: list[str]) -> Response:
        method = req.method
        body = _admin_body(req) if method in ("POST", "PUT", "PATCH") else {}
        if head == "standin-settings":
            if method == "GET":
                return json_response(200, self.settings())
            return json_response(200, self.update_settings(body))
        if head == "regions":
            if method == "GET":
                return json_response(200, {"value": [o.to_json() for o in self.regions.outages()]})
            if method in ("POST", "PUT") and rest and rest[-1] == "down":
                outage = self.regions.set_down(rest[0], self.engine.clock.now(), **body)
                self.on_outage_change()
                return json_response(200, outage.to_json())
            if method in ("POST", "DELETE") and (not rest or rest[-1] in ("up", rest[0])):
                self.regions.restore(rest[0] if rest else None)
                return json_response(200, {"value": [o.to_json() for o in self.regions.outages()]})
            raise ValueError(
                "POST /_emulator/regions/{region}/down {arm?, gateway?, keyVault?, storage?}; POST .../{region}/up"
            )
        if head == "arm-resources":
            if method == "GET":
                return json_response(200, {"value": self.resources.all()})
            kinds = {
                "frontdoor-profiles": self.frontdoor.add_profile,
                "trafficmanager-profiles": self.trafficmanager.add_profile,
                "dns-zones": self.dns.add_zone,
            }
            if method == "POST" and rest and rest[0] in kinds:
                subs = self.engine.store.get("subscriptions") or []
                kinds[rest[0]](body.get("subscriptionId") or subs[0]["subscriptionId"], body)
                return json_response(201, {"value": self.resources.all()})
            raise ValueError(
                "GET /_emulator/arm-resources; POST .../{frontdoor-profiles|trafficmanager-profiles|dns-zones}"
            )
        # keyvaults
        if not rest:
            if method == "GET":
                return json_response(200, {"value": [self.vaults.view(v["name"]) for v in self.vaults.vaults()]})
            if method == "POST":
                return json_response(201, self.vaults.create_vault(body))
            raise ValueError("GET or POST /_emulator/keyvaults")
        vault = rest[0]
        if len(rest) == 1 and method == "GET":
            return json_response(200, self.vaults.view(vault))
        what = rest[1] if len(rest) > 1 else ""
        if what == "secrets" and method == "POST":
            record = self.vaults.set_secret(
                vault,
                body.get("name"),
                body.get("value"),
                content_type=body.get("contentType"),
                enabled=bool(body.get("enabled", True)),
                tags=body.get("tags"),
            )
            return json_response(
                201,
                {k: v for k, v in record.items() if k != "value"}
                | {"id": f"https://{vault}{VAULT_SUFFIX}/secrets/{body.get('name')}/{record['version']}"},
            )
        if what == "secrets" and method == "PATCH" and len(rest) >= 3:
            self.vaults.set_secret_enabled(
                vault, rest[2], bool(body.get("enabled")), rest[3] if len(rest) > 3 else None
            )
            return json_response(200, self.vaults.view(vault))
        if what == "certificates" and method == "POST":
            record = self.vaults.create_certificate(vault, body)
            base = f"https://{vault}{VAULT_SUFFIX}"
            return json_response(
                201,
                record
                | {
                    "id": f"{base}/certificates/{body['name']}/{record['version']}",
                    "secretId": f"{base}/secrets/{body['name']}/{record['version']}",
                },
            )
        if what == "role-assignments" and method == "POST":
            return json_response(201, self.vaults.grant(vault, body))
        if what == "role-assignments" and method == "DELETE" and len(rest) >= 3:
            removed = self.vaults.revoke(vault, rest[2], req.param("role"))
            return json_response(200, {"removed": removed})
        raise ValueError(
            "POST /_emulator/keyvaults/{vault}/secrets {name, value, contentType?}, .../certificates {name, subject, "
            "dnsNames?}, .../role-assignments {principalId, role|dataActions, scope?}; DELETE "
            ".../role-assignments/{principalId}?role=; PATCH .../secrets/{name}[/{version}] {enabled}"
        )


def _binds(svc: dict[str, Any], host: str) -> bool:
    return any(
        h.get("type") == "Proxy" and h.get("hostName", "").lower() == host
        for h in svc.get("hostnameConfigurations") or []
    )


def _opt(value: str | None) -> str | None:
    return None if value is None else unquote(value)


def _admin_body(req: Request) -> dict[str, Any]:
    if not req.body.strip():
        return {}
    try:
        body = json.loads(req.body)
    except (ValueError, RecursionError):
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
