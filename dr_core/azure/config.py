"""An instance's configuration read through ``azure-mgmt-apimanagement``, one ARM request per call.

Each snapshot item kind maps to the SDK's operation for it (``Api_ListByService``, ``ApiOperation_ListByApi``,
``ApiPolicy_Get`` ...; spec: ../shared/apim-spec/apim*.json, api-version 2024-05-01). A list is read one
page at a time (the pager's ``by_page`` with the previous page's continuation, which is ARM's
``nextLink``), so a snapshot can stop between any two requests and resume in another invocation. Each
entity comes back as its REST body without read-only fields (the model's ``serialize(keep_readonly=False)``:
no ``id``, ``name``, ``type``, ``provisioningState``); a link (a product's API, an API's tag) is only a name.
The ARM client never retries an answer (429, 5xx): the snapshot job waits on the queue instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from dr_core.kernel.errors import ArmCallError, ArmError, parse_arm_error
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.wire import JsonObject
from dr_core.ports import ConfigPage, LiveEntity, WriteOutcome

from .errors import Service, retry_after_of, translates

if TYPE_CHECKING:
    from azure.mgmt.apimanagement import ApiManagementClient

    from .clients import AzureClients

__all__ = ["ApimConfigurationReader", "ApimConfigurationWriter"]

_POLICY = "policy"


@dataclass(frozen=True)
class _Read:
    """How one kind is read: ``call(client, rg, service, *names)`` returns a pager (list) or a model (single)."""

    call: Callable[..., Any]
    link: bool = False  # a link: only its name is kept

    def __call__(self, client: ApiManagementClient, rg: str, service: str, names: tuple[str, ...]) -> Any:
        return self.call(client, rg, service, *names)


# The pseudo-kind "api-revisions" lists an API's revisions (ApiRevision_ListByService).
_LISTS: dict[str, _Read] = {
    "certificates": _Read(lambda c, rg, s: c.certificate.list_by_service(rg, s)),
    "named-values": _Read(lambda c, rg, s: c.named_value.list_by_service(rg, s)),
    "backends": _Read(lambda c, rg, s: c.backend.list_by_service(rg, s)),
    "loggers": _Read(lambda c, rg, s: c.logger.list_by_service(rg, s)),
    "tags": _Read(lambda c, rg, s: c.tag.list_by_service(rg, s)),
    "groups": _Read(lambda c, rg, s: c.group.list_by_service(rg, s)),
    "api-version-sets": _Read(lambda c, rg, s: c.api_version_set.list_by_service(rg, s)),
    "schemas": _Read(lambda c, rg, s: c.global_schema.list_by_service(rg, s)),
    "policy-fragments": _Read(lambda c, rg, s: c.policy_fragment.list_by_service(rg, s)),
    "diagnostics": _Read(lambda c, rg, s: c.diagnostic.list_by_service(rg, s)),
    "apis": _Read(lambda c, rg, s: c.api.list_by_service(rg, s)),
    "products": _Read(lambda c, rg, s: c.product.list_by_service(rg, s)),
    "api-schemas": _Read(lambda c, rg, s, api: c.api_schema.list_by_api(rg, s, api)),
    "api-operations": _Read(lambda c, rg, s, api: c.api_operation.list_by_api(rg, s, api)),
    "api-tags": _Read(lambda c, rg, s, api: c.tag.list_by_api(rg, s, api), link=True),
    "api-operation-tags": _Read(lambda c, rg, s, api, op: c.tag.list_by_operation(rg, s, api, op), link=True),
    "api-diagnostics": _Read(lambda c, rg, s, api: c.api_diagnostic.list_by_service(rg, s, api)),
    "product-apis": _Read(lambda c, rg, s, product: c.product_api.list_by_product(rg, s, product), link=True),
    "product-groups": _Read(lambda c, rg, s, product: c.product_group.list_by_product(rg, s, product), link=True),
    "product-tags": _Read(lambda c, rg, s, product: c.tag.list_by_product(rg, s, product), link=True),
    "api-revisions": _Read(lambda c, rg, s, api: c.api_revision.list_by_service(rg, s, api)),
}
_SINGLES: dict[str, _Read] = {
    "policy": _Read(lambda c, rg, s: c.policy.get(rg, s, _POLICY)),
    "api-policies": _Read(lambda c, rg, s, api: c.api_policy.get(rg, s, api, _POLICY)),
    "api-operation-policies": _Read(lambda c, rg, s, api, op: c.api_operation_policy.get(rg, s, api, op, _POLICY)),
    "product-policies": _Read(lambda c, rg, s, product: c.product_policy.get(rg, s, product, _POLICY)),
    "apis": _Read(lambda c, rg, s, api: c.api.get(rg, s, api)),
}


@translates(Service.ARM)
class ApimConfigurationReader:
    """:class:`~dr_core.ports.ConfigurationReader` through the official client (one client per subscription)."""

    def __init__(self, clients: AzureClients) -> None:
        self._clients = clients

    def _describe(self, method: str, args: Any) -> str:
        instance, kind = (args[0], args[1]) if len(args) >= 2 else (None, "?")
        name = instance.service_name if isinstance(instance, ApimResourceId) else "?"
        return f"read the {kind} of {name}"

    def read(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, page: str | None = None,
             single: bool = False) -> ConfigPage:
        client = self._clients.arm(instance.subscription_id)
        rg, service = instance.resource_group, instance.service_name
        if single:
            how = _SINGLES[kind]
            try:
                model = how(client, rg, service, names)
            except ResourceNotFoundError:
                return ConfigPage()  # no such item (an API without a policy)
            return ConfigPage(((_name(model, names[-1] if names else _POLICY), _body(model)),))
        how = _LISTS[kind]
        pages: Iterator[Any] = how(client, rg, service, names).by_page(continuation_token=page)
        first = next(pages, None)
        if first is None:
            return ConfigPage()
        if kind == "api-revisions":  # every field of a revision is read-only: read them as such
            entries = tuple((_revision_name(model), {"isCurrent": getattr(model, "is_current", None) is True})
                            for model in first)
        else:
            entries = tuple((_name(model, ""), {} if how.link else _body(model)) for model in first)
        return ConfigPage(tuple((n, b) for n, b in entries if n), getattr(pages, "continuation_token", None))


def _name(model: Any, default: str) -> str:
    name = getattr(model, "name", None)
    return str(name) if name else default


def _body(model: Any) -> JsonObject:
    body = model.serialize(keep_readonly=False)
    return body if isinstance(body, dict) else {}


def _revision_name(model: Any) -> str:
    """``echo-api;rev=2`` from a revision's ``apiId`` (``/apis/echo-api;rev=2``)."""
    api_id = getattr(model, "api_id", None)
    return api_id.rsplit("/", 1)[-1] if isinstance(api_id, str) else ""


# The writes of each kind, spelled out call by call (not built from names), so that the RBAC check
# (tests/infra/test_rbac_coverage.py) sees every SDK method and the action ARM derives for it.
# get(c, rg, s, names) -> (model, etag) | bool; put(c, rg, s, names, body | None, if_match) -> model | poller;
# delete(c, rg, s, names, if_match) -> None | poller. P is the policy ID every policy kind takes.
P = _POLICY


@dataclass(frozen=True)
class _Write:
    get: Callable[..., Any]
    put: Callable[..., Any]
    delete: Callable[..., Any]
    link: bool = False  # a link: no body, no ETag (exists or not)
    lro_put: bool = False  # the put is begin_*: may answer 202 + Location
    lro_delete: bool = False


def _e(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of a GET that also returns the ETag."""
    return {"cls": _etag_and_model, **kwargs}


def _lro(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of a long-running write sent without polling: the first answer comes back."""
    return {"polling": False, "cls": _pipeline_response, **kwargs}


_WRITES: dict[str, _Write] = {
    "certificates": _Write(
        lambda c, rg, s, n: c.certificate.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.certificate.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.certificate.delete(rg, s, *n, m)),
    "named-values": _Write(
        lambda c, rg, s, n: c.named_value.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.named_value.begin_create_or_update(rg, s, *n, b, if_match=m, **_lro()),
        lambda c, rg, s, n, m: c.named_value.delete(rg, s, *n, m), lro_put=True),
    "backends": _Write(
        lambda c, rg, s, n: c.backend.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.backend.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.backend.delete(rg, s, *n, m)),
    "loggers": _Write(
        lambda c, rg, s, n: c.logger.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.logger.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.logger.delete(rg, s, *n, m)),
    "tags": _Write(
        lambda c, rg, s, n: c.tag.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.tag.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.tag.delete(rg, s, *n, m)),
    "groups": _Write(
        lambda c, rg, s, n: c.group.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.group.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.group.delete(rg, s, *n, m)),
    "api-version-sets": _Write(
        lambda c, rg, s, n: c.api_version_set.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.api_version_set.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.api_version_set.delete(rg, s, *n, m)),
    "schemas": _Write(
        lambda c, rg, s, n: c.global_schema.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.global_schema.begin_create_or_update(rg, s, *n, b, if_match=m, **_lro()),
        lambda c, rg, s, n, m: c.global_schema.delete(rg, s, *n, m), lro_put=True),
    "policy-fragments": _Write(
        lambda c, rg, s, n: c.policy_fragment.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.policy_fragment.begin_create_or_update(rg, s, *n, b, if_match=m, **_lro()),
        lambda c, rg, s, n, m: c.policy_fragment.delete(rg, s, *n, m), lro_put=True),
    "diagnostics": _Write(
        lambda c, rg, s, n: c.diagnostic.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.diagnostic.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.diagnostic.delete(rg, s, *n, m)),
    "apis": _Write(
        lambda c, rg, s, n: c.api.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.api.begin_create_or_update(rg, s, *n, b, if_match=m, **_lro()),
        lambda c, rg, s, n, m: c.api.begin_delete(rg, s, *n, m, **_lro()), lro_put=True, lro_delete=True),
    "api-schemas": _Write(
        lambda c, rg, s, n: c.api_schema.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.api_schema.begin_create_or_update(rg, s, *n, b, if_match=m, **_lro()),
        lambda c, rg, s, n, m: c.api_schema.delete(rg, s, *n, m), lro_put=True),
    "api-operations": _Write(
        lambda c, rg, s, n: c.api_operation.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.api_operation.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.api_operation.delete(rg, s, *n, m)),
    "api-tags": _Write(
        lambda c, rg, s, n: c.tag.get_by_api(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.tag.assign_to_api(rg, s, *n),
        lambda c, rg, s, n, m: c.tag.detach_from_api(rg, s, *n), link=True),
    "api-operation-tags": _Write(
        lambda c, rg, s, n: c.tag.get_by_operation(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.tag.assign_to_operation(rg, s, *n),
        lambda c, rg, s, n, m: c.tag.detach_from_operation(rg, s, *n), link=True),
    "api-diagnostics": _Write(
        lambda c, rg, s, n: c.api_diagnostic.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.api_diagnostic.create_or_update(rg, s, *n, b, if_match=m),
        lambda c, rg, s, n, m: c.api_diagnostic.delete(rg, s, *n, m)),
    "products": _Write(
        lambda c, rg, s, n: c.product.get(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.product.create_or_update(rg, s, *n, b, if_match=m),
        # Never deleteSubscriptions: a product that has subscriptions is refused by APIM, and the restore says so.
        lambda c, rg, s, n, m: c.product.delete(rg, s, *n, m)),
    "product-apis": _Write(
        lambda c, rg, s, n: c.product_api.check_entity_exists(rg, s, *n),
        lambda c, rg, s, n, b, m: c.product_api.create_or_update(rg, s, *n),
        lambda c, rg, s, n, m: c.product_api.delete(rg, s, *n), link=True),
    "product-groups": _Write(
        lambda c, rg, s, n: c.product_group.check_entity_exists(rg, s, *n),
        lambda c, rg, s, n, b, m: c.product_group.create_or_update(rg, s, *n),
        lambda c, rg, s, n, m: c.product_group.delete(rg, s, *n), link=True),
    "product-tags": _Write(
        lambda c, rg, s, n: c.tag.get_by_product(rg, s, *n, **_e()),
        lambda c, rg, s, n, b, m: c.tag.assign_to_product(rg, s, *n),
        lambda c, rg, s, n, m: c.tag.detach_from_product(rg, s, *n), link=True),
    "api-policies": _Write(
        lambda c, rg, s, n: c.api_policy.get(rg, s, *n, P, **_e()),
        lambda c, rg, s, n, b, m: c.api_policy.create_or_update(rg, s, *n, P, b, if_match=m),
        lambda c, rg, s, n, m: c.api_policy.delete(rg, s, *n, P, m)),
    "api-operation-policies": _Write(
        lambda c, rg, s, n: c.api_operation_policy.get(rg, s, *n, P, **_e()),
        lambda c, rg, s, n, b, m: c.api_operation_policy.create_or_update(rg, s, *n, P, b, if_match=m),
        lambda c, rg, s, n, m: c.api_operation_policy.delete(rg, s, *n, P, m)),
    "product-policies": _Write(
        lambda c, rg, s, n: c.product_policy.get(rg, s, *n, P, **_e()),
        lambda c, rg, s, n, b, m: c.product_policy.create_or_update(rg, s, *n, P, b, if_match=m),
        lambda c, rg, s, n, m: c.product_policy.delete(rg, s, *n, P, m)),
    "policy": _Write(
        lambda c, rg, s, n: c.policy.get(rg, s, P, **_e()),
        lambda c, rg, s, n, b, m: c.policy.create_or_update(rg, s, P, b, if_match=m),
        lambda c, rg, s, n, m: c.policy.delete(rg, s, P, m)),
}


def _etag_and_model(_response: Any, model: Any, headers: Any) -> tuple[Any, str | None]:
    return model, (headers or {}).get("ETag")


def _pipeline_response(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    return pipeline_response


@translates(Service.ARM)
class ApimConfigurationWriter:
    """:class:`~dr_core.ports.ConfigurationWriter` through the official client: one conditional request per call.

    A long-running create (APIs, named values, schemas, fragments) is sent with polling off: a ``202``
    comes back as a ``Location`` to poll in a later step (:meth:`poll`), never waited on here.
    """

    def __init__(self, clients: AzureClients) -> None:
        self._clients = clients

    def _describe(self, method: str, args: Any) -> str:
        instance = args[0] if args else None
        what = "/".join((args[1], *args[2])) if len(args) >= 3 and isinstance(args[2], tuple) else method
        name = instance.service_name if isinstance(instance, ApimResourceId) else "?"
        return f"{method} {what} of {name}"

    def _target(self, instance: ApimResourceId) -> tuple[Any, str, str]:
        return self._clients.arm(instance.subscription_id), instance.resource_group, instance.service_name

    def get(self, instance: ApimResourceId, kind: str, names: tuple[str, ...]) -> LiveEntity | None:
        how = _WRITES[kind]
        client, rg, service = self._target(instance)
        try:
            found = how.get(client, rg, service, names)
        except ResourceNotFoundError:
            return None
        if isinstance(found, bool):  # a link's existence check (HEAD)
            return LiveEntity({}, None) if found else None
        model, etag = found
        return LiveEntity({} if how.link else _body(model), etag)

    def put(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], body: JsonObject, *,
            if_match: str | None) -> WriteOutcome:
        how = _WRITES[kind]
        client, rg, service = self._target(instance)
        content = None if how.link else io.BytesIO(json.dumps(body, separators=(",", ":")).encode())
        answer = how.put(client, rg, service, names, content, if_match)
        return _started(answer.result().http_response) if how.lro_put else WriteOutcome()

    def delete(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, if_match: str) -> WriteOutcome:
        how = _WRITES[kind]
        client, rg, service = self._target(instance)
        try:
            answer = how.delete(client, rg, service, names, if_match)
        except ResourceNotFoundError:
            return WriteOutcome()  # gone already: what a delete wants
        return _started(answer.result().http_response) if how.lro_delete else WriteOutcome()

    def poll(self, instance: ApimResourceId, location: str) -> WriteOutcome:
        from azure.core.rest import HttpRequest

        endpoint = self._clients.settings.arm_endpoint.rstrip("/").lower()
        if not location.lower().startswith(endpoint + "/"):
            raise ArmCallError(ArmError("UnexpectedLocation",
                                        f"operation URL is not under {endpoint}; refusing to send a token there"))
        client = self._clients.arm(instance.subscription_id)
        response = client._send_request(HttpRequest("GET", location), retry_total=0)
        if response.status_code == 202:
            return WriteOutcome(done=False, location=location, retry_after=retry_after_of(response) or 1.0)
        if 200 <= response.status_code < 300:
            return WriteOutcome()
        raise ArmCallError(parse_arm_error(response.status_code, response.read(), retry_after=retry_after_of(response)))


def _started(response: Any) -> WriteOutcome:
    if response.status_code == 202 and response.headers.get("Location"):
        return WriteOutcome(done=False, location=response.headers["Location"],
                            retry_after=retry_after_of(response) or 1.0)
    return WriteOutcome()
