"""Azure Front Door Standard/Premium origins: ``Microsoft.Cdn/profiles/{p}/originGroups/{g}/origins/{o}``.

Source: Azure/azure-rest-api-specs ``specification/cdn/resource-manager/Microsoft.Cdn/Cdn/stable/2025-06-01/
afdx.json`` (commit d4625f499b8bfda013a1fb06509ae135ff13d553) and its TypeSpec ``Cdn/AFDOrigin.tsp``
(commit 462a57553a1a7da37bac67cc90ed0d2b84e7a39b): ``AFDOrigins_Get``, ``AFDOrigins_ListByOriginGroup``,
``AFDOrigins_Create`` (PUT: 200/201/202, final state via ``azure-async-operation``) and
``AFDOrigins_Update`` (PATCH: 200, or 202 with ``Azure-AsyncOperation`` + ``Location`` and the origin
in the body). Bodies as examples ``AFDOrigins_Get.json`` (commit 7f0834e70c0943380c8fda4361b1c30d3c4cef55)
and ``AFDOrigins_Update.json`` (commit 22f550d8f54b2871b05930d4b78ec677d7004e5a): ``type``
``Microsoft.Cdn/profiles/origingroups/origins``, ``provisioningState`` ``Updating`` in the 202 body.
Limits from ``AFDOriginProperties``: priority 1-5, weight 1-1000, ports 1-65535, ``enabledState``
``Enabled``/``Disabled``. api-versions: the spec's stable ones and azure-mgmt-cdn 14.1's default.

A change answers 202; the origin reads ``Updating`` until the emulator clock passes the change's end
(admin setting ``providerOpSeconds``), then ``Succeeded``; the monitor URL answers ``InProgress`` then
``Succeeded`` (``{"status", "name", "startTime", "endTime"}``, the ARM async-operation shape).
Profiles and origin groups come from the seed or the admin API (read-only over ARM here).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.state import Clock, iso
from emulator.apim.wire import Response, json_response

from .front import Call, not_found
from .store import ResourceStore, check_name

API_VERSIONS = ("2026-10-01", "2025-06-01", "2024-09-01", "2024-02-01", "2023-05-01")
ORIGIN_TYPE = "Microsoft.Cdn/profiles/origingroups/origins"
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
WRITABLE = (
    "hostName",
    "httpPort",
    "httpsPort",
    "originHostHeader",
    "priority",
    "weight",
    "enabledState",
    "enforceCertificateNameCheck",
    "azureOrigin",
    "sharedPrivateLinkResource",
)


def profile_id(sub: str, rg: str, profile: str) -> str:
    return f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Cdn/profiles/{profile}"


def group_id(sub: str, rg: str, profile: str, group: str) -> str:
    return f"{profile_id(sub, rg, profile)}/origingroups/{group}"


def origin_id(sub: str, rg: str, profile: str, group: str, origin: str) -> str:
    return f"{group_id(sub, rg, profile, group)}/origins/{origin}"


def validate_properties(props: Any, *, creating: bool) -> dict[str, Any]:
    """The writable origin properties of a request, or 400 naming the first bad one."""
    if not isinstance(props, dict):
        raise ArmError(400, "BadRequest", "The 'properties' object is required.")
    out: dict[str, Any] = {}
    for key in WRITABLE:
        if key not in props or props[key] is None:
            continue
        value = props[key]
        if key in ("httpPort", "httpsPort"):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise ArmError(400, "BadRequest", f"Property '{key}' must be between 1 and 65535.")
        elif key == "priority":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                raise ArmError(400, "BadRequest", "Property 'priority' must be between 1 and 5.")
        elif key == "weight":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
                raise ArmError(400, "BadRequest", "Property 'weight' must be between 1 and 1000.")
        elif key == "enabledState":
            if value not in ("Enabled", "Disabled"):
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Property 'enabledState' must be 'Enabled' or 'Disabled', not '{str(value)[:50]}'.",
                )
        elif key in ("hostName", "originHostHeader") and (not isinstance(value, str) or not HOST_RE.match(value)):
            raise ArmError(400, "BadRequest", f"Property '{key}' must be a host name (1-253 characters).")
        elif key == "enforceCertificateNameCheck" and not isinstance(value, bool):
            raise ArmError(400, "BadRequest", "Property 'enforceCertificateNameCheck' must be true or false.")
        out[key] = value
    if creating and "hostName" not in out:
        raise ArmError(400, "BadRequest", "Property 'hostName' is required.")
    return out


class FrontDoor:
    def __init__(self, resources: ResourceStore, clock: Clock, op_seconds: Any) -> None:
        self.resources = resources
        self.clock = clock
        self.op_seconds = op_seconds  # () -> float

    # -- seeding / admin -----------------------------------------------------------------------
    def add_profile(self, sub: str, raw: dict[str, Any]) -> None:
        name, rg = raw.get("name"), raw.get("resourceGroup")
        if not isinstance(name, str) or not isinstance(rg, str):
            raise ValueError("a Front Door profile needs 'name' and 'resourceGroup'")
        pid = profile_id(sub, rg, name)
        self.resources.put(
            {
                "id": pid,
                "type": "Microsoft.Cdn/profiles",
                "name": name,
                "resourceGroup": rg,
                "subscriptionId": sub,
                "parent": None,
                "location": "Global",
                "sku": {"name": raw.get("sku", "Standard_AzureFrontDoor")},
                "properties": {},
            }
        )
        for group in raw.get("originGroups") or []:
            gname = group.get("name") if isinstance(group, dict) else None
            if not isinstance(gname, str):
                raise ValueError(f"origin groups of profile '{name}' need a 'name'")
            gid = group_id(sub, rg, name, gname)
            self.resources.put(
                {
                    "id": gid,
                    "type": "Microsoft.Cdn/profiles/origingroups",
                    "name": gname,
                    "resourceGroup": rg,
                    "subscriptionId": sub,
                    "parent": pid,
                    "properties": {},
                }
            )
            for origin in group.get("origins") or []:
                props = validate_properties(origin, creating=True)
                oname = origin.get("name")
                if not isinstance(oname, str):
                    raise ValueError(f"origins of group '{gname}' need a 'name'")
                self._store_origin(sub, rg, name, group=gname, origin=oname, props=props, busy=False)

    # -- ARM -----------------------------------------------------------------------------------
    def handle(self, call: Call, profile: str, group: str, origin: str | None) -> Response:
        assert call.resource_group is not None
        sub, rg = call.subscription, call.resource_group
        for value, what in ((profile, "profile"), (group, "origin group")):
            check_name(value, what)
        if origin is not None:
            check_name(origin, "origin")
        if self.resources.get(profile_id(sub, rg, profile)) is None:
            raise not_found("Microsoft.Cdn/profiles", profile, rg)
        if self.resources.get(group_id(sub, rg, profile, group)) is None:
            raise not_found("Microsoft.Cdn/profiles/originGroups", f"{profile}/{group}", rg)
        if origin is None:
            if call.req.method != "GET":
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{call.req.method}'."
                )
            items = [self.render(r) for r in self.resources.children(group_id(sub, rg, profile, group), ORIGIN_TYPE)]
            return json_response(200, {"value": items, "nextLink": None})
        oid = origin_id(sub, rg, profile, group, origin)
        existing = self.resources.get(oid)
        method = call.req.method
        if method == "GET":
            if existing is None:
                raise not_found("Microsoft.Cdn/profiles/originGroups/origins", f"{profile}/{group}/{origin}", rg)
            return json_response(200, self.render(existing))
        if method == "PATCH":
            if existing is None:
                raise not_found("Microsoft.Cdn/profiles/originGroups/origins", f"{profile}/{group}/{origin}", rg)
            changes = validate_properties(call.json_body().get("properties"), creating=False)
            props = dict(existing["properties"]) | changes
            record = self._store_origin(sub, rg, profile, group=group, origin=origin, props=props, busy=True)
            return self._accepted(call, record, 202)
        if method == "PUT":
            props = validate_properties(call.json_body().get("properties"), creating=True)
            record = self._store_origin(sub, rg, profile, group=group, origin=origin, props=props, busy=True)
            return self._accepted(call, record, 200 if existing is not None else 201)
        raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")

    def _store_origin(
        self, sub: str, rg: str, profile: str, *, group: str, origin: str, props: dict[str, Any], busy: bool
    ) -> dict[str, Any]:
        defaults = {"httpPort": 80, "httpsPort": 443, "enabledState": "Enabled", "enforceCertificateNameCheck": True}
        record = {
            "id": origin_id(sub, rg, profile, group, origin),
            "type": ORIGIN_TYPE,
            "name": origin,
            "resourceGroup": rg,
            "subscriptionId": sub,
            "parent": group_id(sub, rg, profile, group),
            "groupName": group,
            "properties": defaults | props,
            "busyUntil": self.clock.now() + float(self.op_seconds()) if busy else None,
        }
        return self.resources.put(record)

    def render(self, record: dict[str, Any]) -> dict[str, Any]:
        busy = record.get("busyUntil") is not None and self.clock.now() < float(record["busyUntil"])
        props = record["properties"]
        return {
            "id": record["id"],
            "name": record["name"],
            "type": ORIGIN_TYPE,
            "properties": {
                "originGroupName": record["groupName"],
                "azureOrigin": props.get("azureOrigin"),
                "hostName": props.get("hostName"),
                "httpPort": props.get("httpPort"),
                "httpsPort": props.get("httpsPort"),
                "originHostHeader": props.get("originHostHeader"),
                "priority": props.get("priority"),
                "weight": props.get("weight"),
                "sharedPrivateLinkResource": props.get("sharedPrivateLinkResource"),
                "enabledState": props.get("enabledState"),
                "enforceCertificateNameCheck": props.get("enforceCertificateNameCheck"),
                "provisioningState": "Updating" if busy else "Succeeded",
                "deploymentStatus": "InProgress" if busy else "Succeeded",
            },
        }

    def _accepted(self, call: Call, record: dict[str, Any], status: int) -> Response:
        op_id = secrets.token_hex(16)
        assert call.resource_group is not None
        monitor = (
            f"{call.req.base_url}/subscriptions/{call.subscription}/resourcegroups/{call.resource_group}"
            f"/providers/Microsoft.Cdn/operationresults/{op_id}?api-version={call.api_version}"
        )
        self.resources.add_operation(
            {"id": op_id, "resourceId": record["id"], "startedAt": self.clock.now(), "due": record["busyUntil"]}
        )
        headers = {"Azure-AsyncOperation": monitor, "Location": monitor + "&monitor=true", "Retry-After": "1"}
        return json_response(status, self.render(record), headers)

    def operation_status(self, call: Call, op_id: str) -> Response:
        op = self.resources.operation(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"The operation '{op_id}' was not found.")
        done = op["due"] is None or self.clock.now() >= float(op["due"])
        body: dict[str, Any] = {
            "name": op_id,
            "status": "Succeeded" if done else "InProgress",
            "startTime": iso(op["startedAt"]),
        }
        if done:
            body["endTime"] = iso(float(op["due"] or op["startedAt"]))
            return json_response(200, body)
        return json_response(200, body, {"Retry-After": "1"})
