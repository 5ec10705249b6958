"""Diagnostic settings on an API Management service.

The extension resource ``{serviceId}/providers/Microsoft.Insights/diagnosticSettings/{name}``.

Source: Azure/azure-rest-api-specs ``specification/monitor/resource-manager/Microsoft.Insights/preview/
2021-05-01-preview/diagnosticsSettings_API.json`` (commit e3a946e7426f9308923f7b8663bfe2cff3d8265c):
``DiagnosticSettings_Get``, ``DiagnosticSettings_List`` (``{"value": [...]}``),
``DiagnosticSettings_CreateOrUpdate`` (PUT, 200), ``DiagnosticSettings_Delete`` (200/204) on an extension
resource; ``DiagnosticSettingsResource`` properties ``storageAccountId``, ``workspaceId``,
``eventHubAuthorizationRuleId``, ``eventHubName``, ``marketplacePartnerId``, ``logAnalyticsDestinationType``,
``metrics`` and ``logs`` (``category`` or ``categoryGroup``, ``enabled``). api-version 2021-05-01-preview
(azure-mgmt-monitor 6.0's; 7.0 no longer ships diagnostic settings). A setting needs a destination, and
categories must be ones API Management emits (``GatewayLogs``, ``WebSocketConnectionLogs``,
``DeveloperPortalAuditLogs``, ``GatewayLlmLogs``; groups ``allLogs``, ``audit``; metrics ``AllMetrics``).
"""

from __future__ import annotations

from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.wire import Response, json_response

from .front import Call
from .store import ResourceStore, check_name

API_VERSIONS = ("2021-05-01-preview", "2017-05-01-preview")
SETTING_TYPE = "Microsoft.Insights/diagnosticSettings"
LOG_CATEGORIES = {"gatewaylogs", "websocketconnectionlogs", "developerportalauditlogs", "gatewayllmlogs"}
CATEGORY_GROUPS = {"alllogs", "audit"}
METRIC_CATEGORIES = {"allmetrics"}
DESTINATIONS = ("storageAccountId", "workspaceId", "eventHubAuthorizationRuleId", "marketplacePartnerId")


class DiagnosticSettings:
    def __init__(self, resources: ResourceStore) -> None:
        self.resources = resources

    def handle(self, call: Call, service_resource_id: str, name: str | None) -> Response:
        method = call.req.method
        collection = f"{service_resource_id}/providers/{SETTING_TYPE}"
        if name is None:
            if method != "GET":
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
                )
            return json_response(
                200, {"value": [self.render(r) for r in self.resources.children(service_resource_id, SETTING_TYPE)]}
            )
        check_name(name, "diagnostic setting")
        rid = f"{collection}/{name}"
        existing = self.resources.get(rid)
        if method == "GET":
            if existing is None:
                raise ArmError(404, "ResourceNotFound", f"The diagnostic setting '{name}' doesn't exist.")
            return json_response(200, self.render(existing))
        if method == "PUT":
            props = self._validate(call.json_body().get("properties"))
            record = self.resources.put(
                {"id": rid, "type": SETTING_TYPE, "name": name, "parent": service_resource_id, "properties": props}
            )
            return json_response(200, self.render(record))
        if method == "DELETE":
            return Response(200 if self.resources.delete(rid) else 204)
        raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")

    @staticmethod
    def _validate(props: Any) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise ArmError(400, "BadRequest", "The 'properties' object is required.")
        if not any(isinstance(props.get(d), str) and props[d] for d in DESTINATIONS):
            raise ArmError(
                400,
                "BadRequest",
                "A diagnostic setting needs a destination: storageAccountId, workspaceId, "
                "eventHubAuthorizationRuleId or marketplacePartnerId.",
            )
        logs, metrics = props.get("logs") or [], props.get("metrics") or []
        if not isinstance(logs, list) or not isinstance(metrics, list):
            raise ArmError(400, "BadRequest", "'logs' and 'metrics' must be lists.")
        for entry in logs:
            if not isinstance(entry, dict) or not isinstance(entry.get("enabled"), bool):
                raise ArmError(
                    400, "BadRequest", "Each log setting needs 'enabled' and a 'category' or 'categoryGroup'."
                )
            category, group = entry.get("category"), entry.get("categoryGroup")
            if category is not None and str(category).lower() not in LOG_CATEGORIES:
                raise ArmError(400, "BadRequest", f"Category '{str(category)[:100]}' is not supported.")
            if group is not None and str(group).lower() not in CATEGORY_GROUPS:
                raise ArmError(400, "BadRequest", f"Category group '{str(group)[:100]}' is not supported.")
            if category is None and group is None:
                raise ArmError(400, "BadRequest", "Each log setting needs a 'category' or 'categoryGroup'.")
        for entry in metrics:
            if not isinstance(entry, dict) or str(entry.get("category", "")).lower() not in METRIC_CATEGORIES:
                raise ArmError(400, "BadRequest", "Metric settings take the category 'AllMetrics'.")
        keep = (*DESTINATIONS, "eventHubName", "serviceBusRuleId", "logAnalyticsDestinationType")
        out = {k: props.get(k) for k in keep}
        out["logs"], out["metrics"] = logs, metrics
        return out

    @staticmethod
    def render(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "name": record["name"],
            "type": SETTING_TYPE,
            "properties": dict(record["properties"]),
        }
