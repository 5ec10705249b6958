"""The ARM calls through ``azure-mgmt-apimanagement``: start an operation, poll it once, read instances.

Functions must never block on a 30-minute operation, so the long-running operation is split
across invocations:

- :meth:`ApimOperations.begin_backup` / :meth:`begin_restore` send only the ``POST``
  (``begin_*`` with ``polling=False``) and return the operation's ``Location`` and
  ``Retry-After``;
- :meth:`ApimOperations.poll_once` sends one ``GET`` to that ``Location`` through the
  client's own pipeline (``_send_request``: same authentication, retry and Retry-After
  handling as the SDK) and reads it as ``LocationPolling`` does: ``202`` running, other
  ``2xx`` done (the body is the service resource), an error the error table calls "not now" or
  transient (429, 5xx, ``409 ServiceLocked``) "ask again", anything else failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, parse_arm_error
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.wire import JsonObject
from dr_core.ports import BackupTarget, ConfigurationSummary, PollResult, ServiceInfo, StartedOperation

from .errors import AzureCall, Service, translate, translates

if TYPE_CHECKING:
    from .clients import AzureClients

__all__ = ["ApimOperations"]

logger = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER = 60.0  # real APIM answers Retry-After: 60
_UNREACHABLE_RETRY_AFTER = 30.0  # no answer at all: ask again in half a minute
# What each call is, in the words of its errors ({name}: the instance; {sub}: the subscription).
_CALLS = {
    "begin_backup": "POST .../service/{name}/backup",
    "begin_restore": "POST .../service/{name}/restore",
    "poll_once": "GET the operation of {name}",
    "get_service": "GET {name}",
    "list_tagged": "list the APIM instances of subscription {sub}",
    "configuration_summary": "list the APIs, products and named values of {name}",
}


def _parameters(target: BackupTarget) -> Any:
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

    return ApiManagementServiceBackupRestoreParameters(
        storage_account=target.storage_account,
        container_name=target.container,
        backup_name=target.blob_name,
        access_type=target.access_type,
        access_key=target.access_key if target.access_type == "AccessKey" else None,
        client_id=target.client_id if target.access_type == "UserAssignedManagedIdentity" else None,
    )


def _retry_after(headers: Any, default: float = _DEFAULT_RETRY_AFTER) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    return seconds if seconds > 0 else default


@translates(Service.ARM, sent_once=("begin_backup", "begin_restore"))
class ApimOperations:
    """:class:`~dr_core.ports.ApimManagement` through ``azure-mgmt-apimanagement``; one per worker, clients reused."""

    def __init__(self, clients: AzureClients) -> None:
        self._clients = clients

    def _describe(self, method: str, args: Sequence[Any]) -> str:
        first = args[0] if args else None
        name = first.service_name if isinstance(first, ApimResourceId) else "?"
        return _CALLS.get(method, method).format(name=name, sub=first)

    def begin_backup(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        """Send ``POST .../backup`` and return without waiting.

        :raises ArmCallError: ARM refused (e.g. 409 ``ServiceLocked``, 400 ``MethodNotAllowedInPricingTier``).
        """
        return self._begin("backup", instance, target)

    def begin_restore(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        """Send ``POST .../restore`` and return without waiting."""
        return self._begin("restore", instance, target)

    def _begin(self, action: str, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        client = self._clients.arm(instance.subscription_id)
        method = getattr(client.api_management_service, f"begin_{action}")
        poller = method(
            instance.resource_group, instance.service_name, _parameters(target),
            polling=False, cls=lambda pipeline_response, _deserialized, _headers: pipeline_response,
            # Never repeat the POST: a retry after a lost answer meets our own operation's
            # 409 ServiceLocked. The worker's recovery path finds out what happened instead.
            retry_total=0,
        )
        pipeline_response = poller.result()
        response = pipeline_response.http_response
        if response.status_code == 200:
            return StartedOperation(location=None, retry_after=0, resource=_json_or_none(response))
        location = response.headers.get("Location")
        if not location:
            # Without Location there is nothing to poll; LocationPolling would call it done.
            return StartedOperation(location=None, retry_after=0)
        self._check_location(location)
        return StartedOperation(location=location, retry_after=_retry_after(response.headers))

    def poll_once(self, instance: ApimResourceId, location: str) -> PollResult:
        """One ``GET`` of the operation's ``Location``; anything short of an answer is "ask again later"."""
        from azure.core.rest import HttpRequest

        self._check_location(location)
        client = self._clients.arm(instance.subscription_id)
        try:
            # ``_send_request`` is the management clients' documented raw-request entry point
            # (aka.ms/azsdk/dpcodegen/python/send_request): the client's own pipeline and
            # bearer auth. One try: the queue, not a sleep in this invocation, waits.
            response = client._send_request(HttpRequest("GET", location), retry_total=0)
        except AzureError as raw:
            e = translate(raw, AzureCall(Service.ARM, self._describe("poll_once", [instance])))
            if isinstance(e, ArmCallError):
                if e.error.retryable:
                    return PollResult("retry", e.error.retry_after or _UNREACHABLE_RETRY_AFTER, error=e.error)
                return PollResult("failed", 0, error=e.error)
            if isinstance(e, AzureUnavailableError):
                return PollResult("retry", _UNREACHABLE_RETRY_AFTER, error=ArmError(e.error_code, e.message))
            raise e from raw
        retry_after = _retry_after(response.headers)
        if response.status_code == 202:
            return PollResult("running", retry_after)
        if 200 <= response.status_code < 300:
            return PollResult("succeeded", 0, resource=_json_or_none(response))
        error = parse_arm_error(response.status_code, response.read(), retry_after=retry_after)
        if error.retryable:
            # "Not now" or transient by the error table (429, 5xx, 409 ServiceLocked): an answer about this GET,
            # not the operation's end. The worker asks again (and, if it persists, reads the instance).
            return PollResult("retry", retry_after, error=error)
        return PollResult("failed", 0, error=error)

    def get_service(self, instance: ApimResourceId) -> ServiceInfo:
        """:raises ArmCallError: e.g. ``ResourceNotFound``. :raises AzureUnavailableError: ARM unreachable."""
        client = self._clients.arm(instance.subscription_id)
        svc = client.api_management_service.get(instance.resource_group, instance.service_name)
        return _service_info(instance, svc)

    def list_tagged(self, subscription_id: str, tag: tuple[str, str]) -> list[ServiceInfo]:
        """Every instance in the subscription carrying ``tag`` (name compared case-insensitively)."""
        client = self._clients.arm(subscription_id)
        name, value = tag[0].lower(), tag[1].lower()
        found: list[ServiceInfo] = []
        for svc in client.api_management_service.list():
            tags = {k.lower(): (v or "").lower() for k, v in (svc.tags or {}).items()}
            if tags.get(name) == value:
                found.append(_service_info(ApimResourceId.parse(svc.id), svc))
        return found

    def configuration_summary(self, instance: ApimResourceId) -> ConfigurationSummary:
        """Three list calls (``Api_ListByService``, ``Product_ListByService``, ``NamedValue_ListByService``).

        The pagers follow ``nextLink`` inside this method, so a failure on any page is an
        :class:`ArmCallError` (e.g. ``AuthorizationFailed`` without ``service/apis/read``) or an
        :class:`~dr_core.kernel.errors.AzureUnavailableError`.
        """
        client = self._clients.arm(instance.subscription_id)
        rg, name = instance.resource_group, instance.service_name
        apis = sorted(str(item.name) for item in client.api.list_by_service(rg, name))
        products = sorted(str(item.name) for item in client.product.list_by_service(rg, name))
        named_values = sorted(str(item.name) for item in client.named_value.list_by_service(rg, name))
        return ConfigurationSummary(tuple(apis), tuple(products), tuple(named_values))

    def _check_location(self, location: str) -> None:
        # A Location is followed with our bearer token: only ever to the configured ARM endpoint.
        endpoint = self._clients.settings.arm_endpoint.rstrip("/").lower()
        if not location.lower().startswith(endpoint + "/"):
            raise ArmCallError(ArmError("UnexpectedLocation",
                                        f"operation URL is not under {endpoint}; refusing to send a token there"))


def _service_info(instance: ApimResourceId, svc: Any) -> ServiceInfo:
    identity = getattr(svc, "identity", None)
    uai = getattr(identity, "user_assigned_identities", None) or {}
    return ServiceInfo(
        resource_id=instance,
        sku=svc.sku.name if svc.sku else "",
        sku_capacity=svc.sku.capacity if svc.sku else None,
        location=svc.location or "",
        provisioning_state=getattr(svc, "provisioning_state", None) or "",
        identity_type=str(identity.type) if identity is not None and identity.type else None,
        user_assigned_client_ids=tuple(str(v.client_id).lower() for v in uai.values() if v and v.client_id),
        tags=dict(svc.tags or {}),
    )


def _json_or_none(response: Any) -> JsonObject | None:
    try:
        body = response.text()
        data = json.loads(body) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
