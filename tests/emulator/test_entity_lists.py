"""APIs, products and named values of a service, listed as ARM does (for restore drills, issue 11).

Served from the service's emulated ``configuration``; read here through the official client
unchanged, and raw, with every body checked against the SDK's generated models and, where
../shared/apim-spec holds the entity contracts, against the specification.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from emu_support import (
    ACCOUNT,
    CONTAINER,
    DR,
    DR_RG,
    PROD,
    PROD_RG,
    SEED,
    RawArm,
    SpecValidator,
    error_of,
    sdk_model_problems,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator

PROD_SEED = next(s for s in SEED["services"] if s["name"] == PROD)["configuration"]
COLLECTIONS = [("apis", "ApiCollection"), ("products", "ProductCollection"), ("namedValues", "NamedValueCollection")]


def name_of(model: Any) -> str:
    """A listed model's name. (The SDK's ``__init__`` sets read-only ``name = None``, so mypy types it ``None``.)"""
    assert isinstance(model.name, str), model
    return model.name


@pytest.fixture(autouse=True)
def anyone_may_read(emu: ApimEmulator) -> None:
    # The seed's role table mirrors the app's operator role, which has no entity reads (yet):
    # authorisation of these lists is tested in test_arm_rbac.py.
    emu.admin.set_arm_roles(None)


def test_official_client_lists_apis_products_and_named_values(client: ApiManagementClient) -> None:
    apis = list(client.api.list_by_service(PROD_RG, PROD))
    assert [a.name for a in apis] == [a["id"] for a in PROD_SEED["apis"]]
    orders = apis[0]
    assert orders.id == f"{service_path(PROD)}/apis/orders-api"
    assert orders.type == "Microsoft.ApiManagement/service/apis"
    assert (orders.display_name, orders.path, orders.service_url) == (
        "Orders API", "orders", "https://orders.internal.contoso.com")
    assert orders.protocols == ["https"] and orders.api_revision == "3" and orders.is_current is True
    assert orders.description == "Place, track and cancel orders."
    assert apis[1].api_version == "v1"

    products = list(client.product.list_by_service(PROD_RG, PROD))
    assert [(p.name, p.display_name, p.state) for p in products] == [
        ("starter", "Starter", "published"), ("partners", "Partners", "published")]
    assert products[0].subscriptions_limit == 1 and products[1].approval_required is True
    assert products[1].terms == "Partner agreement 2024 applies."

    named = {name_of(n): n for n in client.named_value.list_by_service(PROD_RG, PROD)}
    assert set(named) == {"orders-backend-url", "partner-signing-key", "legacy-basic-auth", "appinsights-key"}
    assert named["orders-backend-url"].value == "https://orders.internal.contoso.com"
    assert named["orders-backend-url"].tags == ["orders", "backend"]
    # Secrets never come back from a list, whether stored in APIM or referenced in Key Vault.
    assert named["legacy-basic-auth"].secret is True and named["legacy-basic-auth"].value is None
    assert named["partner-signing-key"].value is None
    key_vault = named["partner-signing-key"].key_vault
    assert key_vault is not None and key_vault.secret_identifier is not None
    assert key_vault.secret_identifier.endswith("/secrets/partner-signing-key")


def test_secret_values_are_not_in_the_raw_answer(raw: RawArm) -> None:
    answer = raw.request("GET", f"{service_path(PROD)}/namedValues")
    assert answer.status_code == 200
    assert "emulator-only-not-a-real-secret" not in answer.text


@pytest.mark.parametrize(("collection", "model"), COLLECTIONS)
def test_bodies_match_the_sdk_models(raw: RawArm, emu: ApimEmulator, collection: str, model: str) -> None:
    for svc in emu.admin.services():
        body = raw.request("GET", f"{service_path(svc['name'])}/{collection}").json()
        assert sdk_model_problems(body, model) == [], svc["name"]
        assert body["count"] == len(body["value"]) == len(svc["configuration"][collection])


def test_the_model_check_catches_broken_bodies() -> None:
    good = {"value": [{"id": "x", "type": "t", "name": "n", "properties": {"displayName": "d", "path": "p"}}]}
    assert sdk_model_problems(good, "ApiCollection") == []
    assert sdk_model_problems({"value": [{"properties": {"dispayName": "typo"}}]}, "ApiCollection")
    assert sdk_model_problems({"value": [{"properties": {"isCurrent": "yes"}}]}, "ApiCollection")
    assert sdk_model_problems({"value": {"not": "a list"}}, "ProductCollection")
    assert sdk_model_problems({"value": [{"properties": {"keyVault": "x"}}]}, "NamedValueCollection")


@pytest.mark.parametrize(("collection", "model"), COLLECTIONS)
def test_bodies_match_the_spec(raw: RawArm, spec: SpecValidator, collection: str, model: str) -> None:
    if not spec.has(model):
        pytest.skip(spec.missing_reason(model))
    spec.validate(raw.request("GET", f"{service_path(PROD)}/{collection}").json(), model)


def test_pages_follow_next_link(client: ApiManagementClient, emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_page_size(2)
    assert len(list(client.api.list_by_service(PROD_RG, PROD))) == 3
    pages = emu.admin.requests(method="GET", path_contains=f"/service/{PROD}/apis")
    assert len(pages) == 2 and "skip=2" in pages[1]["query"]

    first = raw.request("GET", f"{service_path(PROD)}/apis").json()
    assert [a["name"] for a in first["value"]] == ["orders-api", "customers-api"] and first["count"] == 3
    next_link = urlsplit(first["nextLink"])
    assert next_link.path == f"{service_path(PROD)}/apis"
    assert parse_qs(next_link.query)["$skip"] == ["2"] and parse_qs(next_link.query)["api-version"]
    last = raw.request("GET", first["nextLink"], api_version=None).json()
    assert [a["name"] for a in last["value"]] == ["echo-api"] and "nextLink" not in last


def test_top_and_skip(raw: RawArm, client: ApiManagementClient) -> None:
    one = raw.request("GET", f"{service_path(PROD)}/apis?api-version=2024-05-01&$top=1&$skip=1", api_version=None)
    body = one.json()
    assert [a["name"] for a in body["value"]] == ["customers-api"] and body["count"] == 3
    assert parse_qs(urlsplit(body["nextLink"]).query) == {
        "api-version": ["2024-05-01"], "$top": ["1"], "$skip": ["2"]}
    assert [p.name for p in client.product.list_by_service(PROD_RG, PROD, skip=1)] == ["partners"]
    beyond = raw.request("GET", f"{service_path(PROD)}/apis?api-version=2024-05-01&$skip=10", api_version=None)
    assert beyond.json() == {"value": [], "count": 3}


@pytest.mark.parametrize("query", ["$top=0", "$top=x", "$skip=-1", "$filter=name eq 'echo-api'"])
def test_unsupported_or_invalid_query_is_refused(raw: RawArm, query: str) -> None:
    answer = raw.request("GET", f"{service_path(PROD)}/apis?api-version=2024-05-01&{query}", api_version=None)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ValidationError"


def test_unknown_service_and_empty_collections(client: ApiManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        list(client.api.list_by_service(PROD_RG, "apim-nope"))
    assert error_of(caught.value).code == "ResourceNotFound"
    assert list(client.named_value.list_by_service(DR_RG, DR)) == []
    with pytest.raises(HttpResponseError) as wrong_group:
        list(client.product.list_by_service(DR_RG, PROD))  # PROD lives in another resource group
    assert wrong_group.value.status_code == 404


def test_a_restore_drill_reads_back_what_it_restored(client: ApiManagementClient, emu: ApimEmulator) -> None:
    def snapshot(rg: str, name: str) -> dict[str, Any]:
        return {
            "apis": sorted((a.name, a.display_name, a.path) for a in client.api.list_by_service(rg, name)),
            "products": sorted((p.name, p.display_name) for p in client.product.list_by_service(rg, name)),
            "namedValues": sorted((n.name, n.secret) for n in client.named_value.list_by_service(rg, name)),
        }

    assert snapshot(DR_RG, DR) != snapshot(PROD_RG, PROD)
    params = Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name=unique(),
                    access_type="SystemAssignedManagedIdentity")
    client.api_management_service.begin_backup(PROD_RG, PROD, params, polling_interval=1).result()
    client.api_management_service.begin_restore(DR_RG, DR, params, polling_interval=1).result()
    assert snapshot(DR_RG, DR) == snapshot(PROD_RG, PROD)
