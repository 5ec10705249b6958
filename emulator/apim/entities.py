"""APIM configuration entities as ARM lists them: APIs, products and named values of a service.

They are served from the service's emulated ``configuration`` (the JSON that backup snapshots and
restore replaces), so a restore drill can read back what it restored. Bodies follow the 2024-05-01
contracts ``ApiContract``, ``ProductContract`` and ``NamedValueContract`` (specification files
``apimapis.json``, ``apimproducts.json``, ``apimnamedvalues.json`` and ``definitions.json``) and the
shape of their ``*_ListByService`` examples: ``{"value": [...], "count": <total>, "nextLink"?}``.

Configuration items are free-form; each is rendered from the keys the contract knows, with the
defaults APIM reports, and keys it does not know are left out. A secret named value never returns
its value (``null``), as APIM only reveals it through ``listValue``.
"""

from __future__ import annotations

from typing import Any

# path segment (lower case) -> (configuration collection, ARM type segment)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "apis": ("apis", "apis"),
    "products": ("products", "products"),
    "namedvalues": ("namedValues", "namedValues"),
}

# Optional properties copied from a configuration item when present (ApiContractProperties and the
# ApiEntityBaseContract it extends; ProductContractProperties; NamedValueContractProperties).
_API_OPTIONAL = (
    "description",
    "apiVersion",
    "apiVersionDescription",
    "apiRevisionDescription",
    "apiVersionSetId",
    "termsOfServiceUrl",
    "contact",
    "license",
    "sourceApiId",
)
_PRODUCT_OPTIONAL = ("description", "terms", "approvalRequired", "subscriptionsLimit")


def item_name(item: dict[str, Any], index: int) -> str:
    """The entity's ARM name: ``name`` or ``id`` of the item (admin-written items may have neither)."""
    for key in ("name", "id"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value.rsplit("/", 1)[-1]
    return f"item-{index}"


def render(collection: str, service_resource_id: str, item: dict[str, Any], index: int) -> dict[str, Any]:
    """One entity of ``collection`` (``apis`` | ``products`` | ``namedValues``) as ARM returns it."""
    name = item_name(item, index)
    type_segment = {"apis": "apis", "products": "products", "namedValues": "namedValues"}[collection]
    properties = {"apis": _api, "products": _product, "namedValues": _named_value}[collection](item, name)
    return {
        "id": f"{service_resource_id}/{type_segment}/{name}",
        "type": f"Microsoft.ApiManagement/service/{type_segment}",
        "name": name,
        "properties": properties,
    }


def _api(item: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "displayName": str(item.get("displayName") or name),
        "apiRevision": str(item.get("apiRevision") or "1"),
        "subscriptionRequired": bool(item.get("subscriptionRequired", True)),
        "serviceUrl": item.get("serviceUrl"),
        "path": str(item.get("path") or ""),
        "protocols": list(item.get("protocols") or ["https"]),
        "authenticationSettings": {"oAuth2": None, "openid": None},
        "subscriptionKeyParameterNames": {"header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"},
        "isCurrent": bool(item.get("isCurrent", True)),
    }
    if item.get("type"):
        properties["type"] = str(item["type"])
    properties.update({key: item[key] for key in _API_OPTIONAL if key in item})
    return properties


def _product(item: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "displayName": str(item.get("displayName") or name),
        "subscriptionRequired": bool(item.get("subscriptionRequired", True)),
        "state": str(item.get("state") or "notPublished"),
    }
    properties.update({key: item[key] for key in _PRODUCT_OPTIONAL if key in item})
    return properties


def _named_value(item: dict[str, Any], name: str) -> dict[str, Any]:
    secret = bool(item.get("secret", False))
    properties: dict[str, Any] = {
        "displayName": str(item.get("displayName") or name),
        # Secrets are never returned by GET/list (APIM's listValue action reveals them).
        "value": None if secret or "keyVault" in item else item.get("value"),
        "secret": secret,
        "tags": list(item.get("tags") or []),
    }
    key_vault = item.get("keyVault")
    if isinstance(key_vault, dict):
        properties["keyVault"] = {
            "secretIdentifier": key_vault.get("secretIdentifier"),
            "identityClientId": key_vault.get("identityClientId"),
            "lastStatus": None,
        }
    return properties


def page(
    items: list[dict[str, Any]], *, top: int | None, skip: int, page_size: int
) -> tuple[list[dict[str, Any]], int | None]:
    """The items of one page and the ``$skip`` of the next page (None when this is the last)."""
    size = min(top, page_size) if top is not None else page_size
    chosen = items[skip : skip + size]
    following = skip + len(chosen)
    return chosen, (following if following < len(items) and chosen else None)
