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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.wire import JsonObject
from dr_core.ports import ConfigPage

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.mgmt.apimanagement import ApiManagementClient

    from .clients import AzureClients

__all__ = ["ApimConfigurationReader"]

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
