"""Azure DNS CNAME record sets: ``Microsoft.Network/dnsZones/{zone}/CNAME/{name}``.

Source: Azure/azure-rest-api-specs ``specification/dns/resource-manager/Microsoft.Network/stable/2018-05-01/
dns.json`` (commit 8c75aaec9fbfa51c30d0b7db6d73e52f4fe88778): ``RecordSets_Get`` (200),
``RecordSets_CreateOrUpdate`` (PUT: 200 updated / 201 created; headers ``If-Match`` "to prevent
accidentally overwriting any concurrent changes" and ``If-None-Match`` "Set to '*' to allow a new record
set to be created, but to prevent updating an existing record set"), ``RecordSets_ListByType``. A record
set carries an ``etag``; a failed precondition answers **412 ``PreconditionFailed``**. ``CNAMERecord``
``{cname}``; ``TTL`` a 64-bit integer (0-2147483647 accepted); a CNAME cannot sit at the zone apex
(``@``). Only CNAME record sets are emulated (other types answer 404). api-version 2018-05-01
(azure-mgmt-dns 9.0's default) and 2023-07-01-preview.

Zones come from the seed or the admin API. emulator/proxy.py resolves host names through these
records, so switching a CNAME moves the traffic of the name.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.wire import Response, json_response

from .front import Call, not_found
from .store import ResourceStore

API_VERSIONS = ("2018-05-01", "2023-07-01-preview")
ZONE_TYPE = "Microsoft.Network/dnszones"
CNAME_TYPE = "Microsoft.Network/dnszones/CNAME"
LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_RE = re.compile(rf"^(?=.{{1,253}}\.?$){LABEL}(?:\.{LABEL})*\.?$")
RELATIVE_RE = re.compile(rf"^(?=.{{1,253}}$)(?:\*|{LABEL})(?:\.{LABEL})*$")
MAX_TTL = 2147483647


def zone_id(sub: str, rg: str, zone: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/dnszones/{zone.lower()}"


class Dns:
    def __init__(self, resources: ResourceStore) -> None:
        self.resources = resources

    def add_zone(self, sub: str, raw: dict[str, Any]) -> None:
        name, rg = raw.get("name"), raw.get("resourceGroup")
        if not isinstance(name, str) or not HOST_RE.match(name) or not isinstance(rg, str):
            raise ValueError("a DNS zone needs a valid 'name' (e.g. contoso.com) and 'resourceGroup'")
        self.resources.put(
            {
                "id": zone_id(sub, rg, name),
                "type": ZONE_TYPE,
                "name": name.lower(),
                "resourceGroup": rg,
                "subscriptionId": sub,
                "parent": None,
                "location": "global",
                "properties": {},
            }
        )
        for record in raw.get("records") or []:
            if not isinstance(record, dict) or str(record.get("type", "CNAME")).upper() != "CNAME":
                raise ValueError(f"zone '{name}': only CNAME records are emulated")
            rname = record.get("name")
            if not isinstance(rname, str) or not RELATIVE_RE.match(rname):
                raise ValueError(f"zone '{name}': record name {rname!r} is invalid")
            props = self._validate({"TTL": record.get("ttl", 3600), "CNAMERecord": {"cname": record.get("cname")}})
            self._store(sub, rg, name.lower(), rname, props)

    def handle(self, call: Call, zone: str, record_type: str, name: str | None) -> Response:
        assert call.resource_group is not None
        sub, rg, method = call.subscription, call.resource_group, call.req.method
        zone_record = self.resources.get(zone_id(sub, rg, zone))
        if not HOST_RE.match(zone) or zone_record is None:
            raise not_found(ZONE_TYPE, zone, rg)
        if record_type.upper() != "CNAME":
            raise ArmError(404, "NotFound", f"The emulator serves only CNAME record sets, not '{record_type[:20]}'.")
        if name is None:
            if method != "GET":
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
                )
            items = [
                self.render(r, zone_record["name"]) for r in self.resources.children(zone_record["id"], CNAME_TYPE)
            ]
            return json_response(200, {"value": items, "nextLink": None})
        if name == "@":
            if method == "PUT":
                raise ArmError(400, "BadRequest", "A CNAME record set cannot be created at the zone apex ('@').")
            raise not_found(CNAME_TYPE, f"{zone}/@", rg)
        if not RELATIVE_RE.match(name):
            raise ArmError(
                400,
                "BadRequest",
                f"The record set name '{name[:300]}' is invalid: dot-separated labels of 1-63 letters, "
                "digits, '-' or '_'.",
            )
        rid = f"{zone_record['id']}/CNAME/{name.lower()}"
        existing = self.resources.get(rid)
        if method == "GET":
            if existing is None:
                raise not_found(CNAME_TYPE, f"{zone}/{name}", rg)
            return json_response(200, self.render(existing, zone_record["name"]), {"ETag": existing["etag"]})
        if method in ("PUT", "PATCH"):
            self._preconditions(call, existing, zone, name)
            body = call.json_body()
            if method == "PATCH":
                if existing is None:
                    raise not_found(CNAME_TYPE, f"{zone}/{name}", rg)
                props = self._validate(dict(existing["properties"]) | (body.get("properties") or {}))
            else:
                props = self._validate(body.get("properties"))
            record = self._store(sub, rg, zone_record["name"], name, props)
            status = 201 if existing is None else 200
            return json_response(status, self.render(record, zone_record["name"]), {"ETag": record["etag"]})
        raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")

    @staticmethod
    def _preconditions(call: Call, existing: dict[str, Any] | None, zone: str, name: str) -> None:
        if_match = call.req.header("if-match")
        if_none_match = call.req.header("if-none-match")
        where = f"'{name}' of type 'CNAME' in zone '{zone}'"
        if if_none_match is not None:
            if if_none_match.strip() != "*":
                raise ArmError(400, "BadRequest", "If-None-Match only accepts '*'.")
            if existing is not None:
                raise ArmError(412, "PreconditionFailed", f"The record set {where} already exists (If-None-Match: *).")
        if if_match is not None:
            wanted = if_match.strip()
            if existing is None:
                raise ArmError(
                    412, "PreconditionFailed", f"The record set {where} does not exist (If-Match: {wanted[:100]})."
                )
            if wanted != "*" and wanted.strip('"') != existing["etag"]:
                raise ArmError(
                    412,
                    "PreconditionFailed",
                    f"The record set {where} has been modified: its etag is not '{wanted[:100]}' (If-Match).",
                )

    @staticmethod
    def _validate(props: Any) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise ArmError(400, "BadRequest", "The 'properties' object is required.")
        ttl = props.get("TTL", 3600)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= MAX_TTL:
            raise ArmError(400, "BadRequest", f"The TTL must be an integer between 0 and {MAX_TTL}.")
        cname = (
            (props.get("CNAMERecord") or {}).get("cname") if isinstance(props.get("CNAMERecord"), dict | None) else None
        )
        if not isinstance(cname, str) or not HOST_RE.match(cname):
            raise ArmError(
                400,
                "BadRequest",
                "A CNAME record set needs 'CNAMERecord.cname', a host name of at most 253 characters.",
            )
        metadata = props.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ArmError(400, "BadRequest", "'metadata' must map names to strings.")
        return {"TTL": ttl, "CNAMERecord": {"cname": cname.rstrip(".")}, "metadata": metadata}

    def _store(self, sub: str, rg: str, zone: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
        zid = zone_id(sub, rg, zone)
        return self.resources.put(
            {
                "id": f"{zid}/CNAME/{name.lower()}",
                "type": CNAME_TYPE,
                "name": name,
                "resourceGroup": rg,
                "subscriptionId": sub,
                "parent": zid,
                "properties": props,
            }
        )

    @staticmethod
    def render(record: dict[str, Any], zone: str) -> dict[str, Any]:
        props = record["properties"]
        return {
            "id": record["id"],
            "name": record["name"],
            "type": CNAME_TYPE,
            "etag": record["etag"],
            "properties": {
                "metadata": props.get("metadata") or {},
                "TTL": props["TTL"],
                "fqdn": f"{record['name']}.{zone}.",
                "provisioningState": "Succeeded",
                "targetResource": {},
                "CNAMERecord": dict(props["CNAMERecord"]),
            },
        }

    def resolve(self, host: str) -> str | None:
        """The CNAME target of ``host`` in the emulated zones (the longest zone suffix wins), if any."""
        host = host.lower().rstrip(".")
        best: tuple[int, str] | None = None
        for record in self.resources.all():
            if record["type"] != CNAME_TYPE:
                continue
            zone = record["parent"].rsplit("/", 1)[1]
            if f"{record['name'].lower()}.{zone}" == host and (best is None or len(zone) > best[0]):
                best = (len(zone), record["properties"]["CNAMERecord"]["cname"])
        return None if best is None else best[1]
