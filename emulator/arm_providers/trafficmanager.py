"""Traffic Manager endpoints: ``Microsoft.Network/trafficmanagerprofiles/{p}/{azureEndpoints|externalEndpoints}/{e}``.

Source: Azure/azure-rest-api-specs ``specification/trafficmanager/resource-manager/Microsoft.Network/
stable/2022-04-01/trafficmanager.json`` (commit aa704a36a9ac1f42b7aded1ec6d3927b83bf7dc9):
``Endpoints_Get`` (200), ``Endpoints_CreateOrUpdate`` (PUT: 200 or 201), ``Endpoints_Update`` (PATCH:
200, merged), ``Profiles_Get`` (the profile with its endpoints). Synchronous: no long-running operations.
``EndpointProperties``: ``endpointStatus`` ``Enabled``/``Disabled``; ``priority`` "Possible values are
from 1 to 1000 ... If specified, it must be specified on all endpoints. No two endpoints can share the
same priority value"; ``weight`` 1-1000. Duplicated priorities and out-of-range values answer 400
``BadRequest``. api-versions: the spec's and azure-mgmt-trafficmanager 2.0's default.
"""

from __future__ import annotations

from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.resources import display_location
from emulator.apim.wire import Response, json_response

from .front import Call, not_found
from .store import ResourceStore, check_name

API_VERSIONS = ("2026-09-01", "2022-04-01", "2018-08-01", "2018-04-01")
ENDPOINT_TYPES = {"azureendpoints": "azureEndpoints", "externalendpoints": "externalEndpoints"}
PROFILE_TYPE = "Microsoft.Network/trafficManagerProfiles"
WRITABLE = (
    "targetResourceId",
    "target",
    "endpointStatus",
    "weight",
    "priority",
    "endpointLocation",
    "minChildEndpoints",
    "customHeaders",
    "alwaysServe",
    "geoMapping",
    "subnets",
)


def profile_id(sub: str, rg: str, profile: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/trafficManagerProfiles/{profile}"


def _int_in(value: Any, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArmError(400, "BadRequest", f"The value of '{name}' must be between {low} and {high}.")
    return value


def validate_properties(props: Any, *, endpoint_type: str, creating: bool) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise ArmError(400, "BadRequest", "The 'properties' object is required.")
    out: dict[str, Any] = {}
    for key in WRITABLE:
        if key not in props or props[key] is None:
            continue
        value = props[key]
        if key == "endpointStatus" and value not in ("Enabled", "Disabled"):
            raise ArmError(
                400,
                "BadRequest",
                f"The value of 'endpointStatus' must be 'Enabled' or 'Disabled', not '{str(value)[:50]}'.",
            )
        if key in ("priority", "weight"):
            _int_in(value, 1, 1000, key)
        if key in ("target", "targetResourceId", "endpointLocation") and (
            not isinstance(value, str) or len(value) > 1024
        ):
            raise ArmError(400, "BadRequest", f"The value of '{key}' must be a string of at most 1024 characters.")
        out[key] = value
    if creating and endpoint_type == "externalEndpoints" and "target" not in out:
        raise ArmError(400, "BadRequest", "An external endpoint needs 'target'.")
    if creating and endpoint_type == "azureEndpoints" and "targetResourceId" not in out:
        raise ArmError(400, "BadRequest", "An Azure endpoint needs 'targetResourceId'.")
    return out


class TrafficManager:
    def __init__(self, resources: ResourceStore) -> None:
        self.resources = resources

    def add_profile(self, sub: str, raw: dict[str, Any]) -> None:
        name, rg = raw.get("name"), raw.get("resourceGroup")
        if not isinstance(name, str) or not isinstance(rg, str):
            raise ValueError("a Traffic Manager profile needs 'name' and 'resourceGroup'")
        method = raw.get("trafficRoutingMethod", "Priority")
        self.resources.put(
            {
                "id": profile_id(sub, rg, name),
                "type": PROFILE_TYPE,
                "name": name,
                "resourceGroup": rg,
                "subscriptionId": sub,
                "parent": None,
                "location": "global",
                "properties": {
                    "profileStatus": "Enabled",
                    "trafficRoutingMethod": method,
                    "dnsConfig": {
                        "relativeName": raw.get("dnsName", name),
                        "fqdn": f"{raw.get('dnsName', name)}.trafficmanager.net",
                        "ttl": 60,
                    },
                    "monitorConfig": {"protocol": "HTTPS", "port": 443, "path": "/status-0123456789abcdef"},
                },
            }
        )
        for endpoint in raw.get("endpoints") or []:
            etype = ENDPOINT_TYPES.get(str(endpoint.get("type", "")).lower()) if isinstance(endpoint, dict) else None
            if etype is None or not isinstance(endpoint.get("name"), str):
                raise ValueError(
                    f"endpoints of profile '{name}' need 'name' and 'type' (azureEndpoints or externalEndpoints)"
                )
            props = validate_properties(endpoint, endpoint_type=etype, creating=True)
            self._check_unique_priority(sub, rg, name, endpoint["name"], props)
            self._store(sub, rg, name, etype=etype, name=endpoint["name"], props=props)

    def handle(self, call: Call, profile: str, endpoint_type: str | None, endpoint: str | None) -> Response:
        assert call.resource_group is not None
        sub, rg, method = call.subscription, call.resource_group, call.req.method
        check_name(profile, "profile")
        profile_record = self.resources.get(profile_id(sub, rg, profile))
        if profile_record is None:
            raise not_found(PROFILE_TYPE, profile, rg)
        if endpoint_type is None:
            if method != "GET":
                raise ArmError(
                    405, "MethodNotAllowed", f"The emulator does not change Traffic Manager profiles ({method})."
                )
            return json_response(200, self.render_profile(profile_record))
        etype = ENDPOINT_TYPES[endpoint_type.lower()]
        assert endpoint is not None
        check_name(endpoint, "endpoint")
        eid = f"{profile_record['id']}/{etype}/{endpoint}"
        existing = self.resources.get(eid)
        if existing is not None and existing["endpointType"] != etype:
            existing = None
        if method == "GET":
            if existing is None:
                raise not_found(f"{PROFILE_TYPE}/{etype}", f"{profile}/{endpoint}", rg)
            return json_response(200, self.render(existing))
        if method == "PATCH":
            if existing is None:
                raise not_found(f"{PROFILE_TYPE}/{etype}", f"{profile}/{endpoint}", rg)
            changes = validate_properties(call.json_body().get("properties"), endpoint_type=etype, creating=False)
            props = dict(existing["properties"]) | changes
            self._check_unique_priority(sub, rg, profile, endpoint, props)
            record = self._store(sub, rg, profile, etype=etype, name=endpoint, props=props)
            return json_response(200, self.render(record))
        if method == "PUT":
            props = validate_properties(call.json_body().get("properties"), endpoint_type=etype, creating=True)
            self._check_unique_priority(sub, rg, profile, endpoint, props)
            record = self._store(sub, rg, profile, etype=etype, name=endpoint, props=props)
            return json_response(200 if existing is not None else 201, self.render(record))
        raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")

    def _check_unique_priority(self, sub: str, rg: str, profile: str, endpoint: str, props: dict[str, Any]) -> None:
        priority = props.get("priority")
        if priority is None:
            return
        for other in self.resources.children(profile_id(sub, rg, profile)):
            if other["name"].lower() != endpoint.lower() and other["properties"].get("priority") == priority:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Endpoint priority values must be unique: endpoint '{other['name']}' already has "
                    f"priority {priority}.",
                )

    def _store(
        self, sub: str, rg: str, profile: str, *, etype: str, name: str, props: dict[str, Any]
    ) -> dict[str, Any]:
        pid = profile_id(sub, rg, profile)
        return self.resources.put(
            {
                "id": f"{pid}/{etype}/{name}",
                "type": f"{PROFILE_TYPE}/{etype}",
                "name": name,
                "resourceGroup": rg,
                "subscriptionId": sub,
                "parent": pid,
                "endpointType": etype,
                "properties": {"endpointStatus": "Enabled"} | props,
            }
        )

    @staticmethod
    def render(record: dict[str, Any]) -> dict[str, Any]:
        props = dict(record["properties"])
        if props.get("endpointLocation"):
            props["endpointLocation"] = display_location(props["endpointLocation"])
        props["endpointMonitorStatus"] = "Online" if props.get("endpointStatus") == "Enabled" else "Disabled"
        return {"id": record["id"], "name": record["name"], "type": record["type"], "properties": props}

    def render_profile(self, record: dict[str, Any]) -> dict[str, Any]:
        endpoints = [self.render(r) for r in self.resources.children(record["id"])]
        return {
            "id": record["id"],
            "name": record["name"],
            "type": PROFILE_TYPE,
            "location": "global",
            "tags": {},
            "properties": dict(record["properties"]) | {"endpoints": endpoints},
        }
