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


@dataclass(frozen=True)
class _Write:
    """How one kind is written: its operation group and methods (the names follow ``rg, service``)."""

    group: str
    get: str = "get"
    put: str = "create_or_update"
    delete: str = "delete"
    policy: bool = False  # a policy: the fixed policy ID follows the names
    link: bool = False  # a link: no body, no ETag (exists or not)
    lro_put: bool = False  # begin_create_or_update: may answer 202 + Location
    lro_delete: bool = False


_WRITES: dict[str, _Write] = {
    "certificates": _Write("certificate"),
    "named-values": _Write("named_value", lro_put=True),
    "backends": _Write("backend"),
    "loggers": _Write("logger"),
    "tags": _Write("tag"),
    "groups": _Write("group"),
    "api-version-sets": _Write("api_version_set"),
    "schemas": _Write("global_schema", lro_put=True),
    "policy-fragments": _Write("policy_fragment", lro_put=True),
    "diagnostics": _Write("diagnostic"),
    "apis": _Write("api", lro_put=True, delete="delete", lro_delete=True),
    "api-schemas": _Write("api_schema", lro_put=True),
    "api-operations": _Write("api_operation"),
    "api-tags": _Write("tag", get="get_by_api", put="assign_to_api", delete="detach_from_api", link=True),
    "api-operation-tags": _Write("tag", get="get_by_operation", put="assign_to_operation",
                                 delete="detach_from_operation", link=True),
    "api-diagnostics": _Write("api_diagnostic"),
    "products": _Write("product"),
    "product-apis": _Write("product_api", get="check_entity_exists", link=True),
    "product-groups": _Write("product_group", get="check_entity_exists", link=True),
    "product-tags": _Write("tag", get="get_by_product", put="assign_to_product", delete="detach_from_product",
                           link=True),
    "api-policies": _Write("api_policy", policy=True),
    "api-operation-policies": _Write("api_operation_policy", policy=True),
    "product-policies": _Write("product_policy", policy=True),
    "policy": _Write("policy", policy=True),
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

    def _operation(self, instance: ApimResourceId, kind: str) -> tuple[_Write, Any]:
        how = _WRITES[kind]
        return how, getattr(self._clients.arm(instance.subscription_id), how.group)

    def get(self, instance: ApimResourceId, kind: str, names: tuple[str, ...]) -> LiveEntity | None:
        how, group = self._operation(instance, kind)
        args = _args(instance, names, how)
        try:
            if how.get == "check_entity_exists":
                return LiveEntity({}, None) if getattr(group, how.get)(*args) else None
            model, etag = getattr(group, how.get)(*args, cls=_etag_and_model)
        except ResourceNotFoundError:
            return None
        return LiveEntity({} if how.link else _body(model), etag)

    def put(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], body: JsonObject, *,
            if_match: str | None) -> WriteOutcome:
        how, group = self._operation(instance, kind)
        args = _args(instance, names, how)
        if how.link:
            getattr(group, how.put)(*args)
            return WriteOutcome()
        content = io.BytesIO(json.dumps(body, separators=(",", ":")).encode())
        if not how.lro_put:
            getattr(group, how.put)(*args, content, if_match=if_match)
            return WriteOutcome()
        poller = getattr(group, f"begin_{how.put}")(*args, content, if_match=if_match, polling=False,
                                                    cls=_pipeline_response)
        return _started(poller.result().http_response)

    def delete(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, if_match: str) -> WriteOutcome:
        how, group = self._operation(instance, kind)
        args = _args(instance, names, how)
        try:
            if how.link:
                getattr(group, how.delete)(*args)
            elif how.lro_delete:
                poller = getattr(group, f"begin_{how.delete}")(*args, if_match, polling=False, cls=_pipeline_response)
                return _started(poller.result().http_response)
            else:
                getattr(group, how.delete)(*args, if_match)
        except ResourceNotFoundError:
            return WriteOutcome()  # gone already: what a delete wants
        return WriteOutcome()

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


def _args(instance: ApimResourceId, names: tuple[str, ...], how: _Write) -> tuple[str, ...]:
    return (instance.resource_group, instance.service_name, *names, *((_POLICY,) if how.policy else ()))


def _started(response: Any) -> WriteOutcome:
    if response.status_code == 202 and response.headers.get("Location"):
        return WriteOutcome(done=False, location=response.headers["Location"],
                            retry_after=retry_after_of(response) or 1.0)
    return WriteOutcome()
