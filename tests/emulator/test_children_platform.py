"""Platform rules around the child resources: ARM's read throttle, what each tier lacks, api-versions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models as m
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from emu_support import (
    ACCOUNT,
    ACCOUNT_KEY,
    CONSUMPTION,
    CONTAINER,
    PROD,
    PROD_RG,
    SEED_PATH,
    SERVICE_RGS,
    SUB,
    V2,
    RawArm,
    StaticTokenCredential,
    error_of,
    key_body,
    make_token,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator
from emulator.apim.operations import Engine
from emulator.apim.seed import read_seed
from emulator.apim.state import Store

S = service_path(PROD)


@pytest.fixture(autouse=True)
def anyone_may_write(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)


# -- ARM's read throttle ---------------------------------------------------------------------------
def test_reads_are_not_throttled_by_default(raw: RawArm) -> None:
    statuses = {raw.request("GET", f"{S}/apis").status_code for _ in range(300)}
    assert statuses == {200}


def test_the_read_bucket_empties_and_refills_per_principal(raw: RawArm, emu: ApimEmulator) -> None:
    emu.admin.set_read_throttling(burst=5, refill_per_second=2)
    remaining = [raw.request("GET", f"{S}/apis").headers["x-ms-ratelimit-remaining-subscription-reads"]
                 for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = raw.request("GET", f"{S}/apis/echo-api")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert error["message"].startswith(f"Number of 'read' requests for subscription '{SUB}' actor ")
    assert int(refused.headers["Retry-After"]) >= 1
    # Writes have their own bucket; another principal its own read bucket.
    assert raw.request("PUT", f"{S}/tags/t", body={"properties": {"displayName": "T"}}).status_code == 201
    other = make_token(oid="7c9b5f0e-1d2a-4b3c-8d4e-5f6a7b8c9d0e")
    assert raw.request("GET", f"{S}/apis", token=other).status_code == 200
    time.sleep(1.1)  # 2 tokens per second
    assert raw.request("GET", f"{S}/apis").status_code == 200


def test_the_official_client_waits_out_the_read_throttle(
    client: ApiManagementClient, emu: ApimEmulator
) -> None:
    emu.admin.set_page_size(1)
    emu.admin.set_read_throttling(burst=2, refill_per_second=2)
    started = time.monotonic()
    listed = [a.name for a in client.api.list_by_service(PROD_RG, PROD)]
    assert listed == ["orders-api", "customers-api", "echo-api"]
    throttled = [r for r in emu.admin.requests(method="GET", path_contains="/apis") if r["status"] == 429]
    assert throttled, "the bucket (2 tokens) must have run dry for 3 pages + retries"
    assert time.monotonic() - started >= 0.5  # azure-core slept Retry-After before retrying


def test_read_throttling_can_come_from_the_seed(tmp_path: Path) -> None:
    seed = read_seed(SEED_PATH) | {"settings": {"readThrottling": {"enabled": True, "burst": 50}}}
    engine = Engine(Store(tmp_path / "state.sqlite"), None, op_duration=0)  # type: ignore[arg-type]
    engine.initialize(seed, reset=True)
    assert engine.settings()["readThrottling"] == {"enabled": True, "burst": 50, "refillPerSecond": 25}
    with pytest.raises(ValueError, match="readThrottling"):
        engine.update_settings({"readThrottling": {"burst": 0}})


# -- what each tier lacks --------------------------------------------------------------------------
def test_consumption_lacks_the_developer_portal_groups_users_and_azure_monitor(raw: RawArm) -> None:
    consumption = service_path(CONSUMPTION)
    for method, path, body in (
        ("GET", "groups", None),
        ("PUT", "groups/g", {"properties": {"displayName": "G"}}),
        ("PUT", "products/unlimited/groups/developers", None),
        ("GET", "contentTypes", None),
        ("PUT", "loggers/azuremonitor", {"properties": {"loggerType": "azureMonitor"}}),
    ):
        answer = raw.request(method, f"{consumption}/{path}", body=body)
        assert answer.status_code == 400, path
        assert answer.json()["error"] == {"code": "MethodNotAllowedInPricingTier", "message":
                                          "Method not allowed in Consumption pricing tier",
                                          "details": None, "innerError": None}, path
    owned = raw.request("PUT", f"{consumption}/subscriptions/s", body={"properties": {
        "scope": "/apis", "displayName": "s", "ownerId": "/users/1"}})
    assert owned.status_code == 400 and owned.json()["error"]["details"][0]["target"] == "ownerId"
    # Application Insights request logs exist in Consumption.
    assert raw.request("PUT", f"{consumption}/loggers/ai", body={"properties": {
        "loggerType": "applicationInsights",
        "credentials": {"instrumentationKey": "11111111-2222-3333-4444-555555555555"}}}).status_code == 201


def test_v2_tiers_have_groups_and_the_portal(raw: RawArm) -> None:
    v2 = service_path(V2)
    groups = raw.request("GET", f"{v2}/groups")
    assert groups.status_code == 200
    assert {g["name"] for g in groups.json()["value"]} == {"administrators", "developers", "guests"}
    assert raw.request("GET", f"{v2}/contentTypes").status_code == 200


# -- api-versions (issue 18) -----------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2021-08-01", "2022-08-01", "2024-05-01", "2019-12-01", "2023-09-01-preview"])
def test_child_resources_answer_in_the_versions_that_define_them(raw: RawArm, version: str) -> None:
    assert raw.request("GET", f"{S}/apis/echo-api", api_version=version).status_code == 200
    assert raw.request("PUT", f"{S}/tags/t", body={"properties": {"displayName": "T"}},
                       api_version=version).status_code in (200, 201)


def test_policy_fragments_do_not_exist_before_their_api_version(raw: RawArm) -> None:
    old = raw.request("GET", f"{S}/policyFragments", api_version="2021-08-01")
    assert old.status_code == 400
    assert old.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "for type 'service/policyFragments'" in old.json()["error"]["message"]
    assert raw.request("GET", f"{S}/policyFragments", api_version="2022-08-01").status_code == 200


def test_before_2021_04_01_preview_backup_takes_an_access_key_only(raw: RawArm, emu: ApimEmulator) -> None:
    identity = {"storageAccount": ACCOUNT, "containerName": CONTAINER, "backupName": unique(),
                "accessType": "SystemAssignedManagedIdentity"}
    for version in ("2019-12-01", "2020-06-01-preview", "2020-12-01", "2021-01-01-preview"):
        refused = raw.start("backup", PROD, identity, api_version=version)
        assert refused.status_code == 400, version
        message = refused.json()["error"]["message"]
        assert message == "Invalid parameter: Value cannot be null.\r\nParameter name: accessKey"
    for version in ("2021-04-01-preview", "2021-08-01"):
        assert raw.start("backup", "apim-contoso-dev", identity | {"accessType": "AccessKey", "accessKey": ACCOUNT_KEY},
                         api_version=version).status_code == 202
        emu.admin.advance_clock(60)
        assert raw.start("backup", PROD, identity | {"backupName": unique()}, api_version=version).status_code == 202
        emu.admin.advance_clock(60)
    # An access-key body works in the old versions (accessType, when sent, is not part of their contract).
    assert raw.start("backup", PROD, key_body(unique()), api_version="2020-12-01").status_code == 202


def test_the_official_client_backs_up_with_an_old_api_version(emu: ApimEmulator, arm_token: str) -> None:
    with ApiManagementClient(StaticTokenCredential(arm_token), SUB, base_url=emu.arm_url,
                             connection_verify=str(emu.ca_bundle), api_version="2020-12-01") as old:
        params = Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name=unique(),
                        access_key=ACCOUNT_KEY)
        result = old.api_management_service.begin_backup(PROD_RG, PROD, params, polling_interval=1).result()
        assert result.name == PROD
        with pytest.raises(HttpResponseError) as refused:
            old.api_management_service.begin_backup(PROD_RG, PROD, Params(
                storage_account=ACCOUNT, container_name=CONTAINER, backup_name=unique(),
                access_type="SystemAssignedManagedIdentity"), polling=False)
        assert error_of(refused.value).code == "InvalidParameters"
        # Child resources answer in 2020-12-01 too (its spec has them).
        assert [t.name for t in old.tag.list_by_service(PROD_RG, PROD)] == ["public", "partner"]
        old.tag.create_or_update(PROD_RG, PROD, "t", m.TagCreateUpdateParameters(display_name="T"))
        assert SERVICE_RGS[PROD] == PROD_RG


# -- concurrent writers ----------------------------------------------------------------------------
def test_concurrent_writers_on_one_service_keep_it_consistent(raw: RawArm, emu: ApimEmulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    raw.request("PUT", f"{S}/apis/busy", body={"properties": {"displayName": "Busy", "path": "busy"}})

    def create(i: int) -> int:
        return raw.request("PUT", f"{S}/apis/busy/operations/op{i}", body={"properties": {
            "displayName": f"op {i}", "method": "GET", "urlTemplate": f"/op/{i}"}}).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(create, range(64))) == {201}
    listed = raw.request("GET", f"{S}/apis/busy/operations?api-version=2024-05-01&$top=100", api_version=None)
    assert listed.json()["count"] == 64

    # Two writers holding the same ETag: exactly one wins, the other gets 412.
    etag = raw.request("GET", f"{S}/apis/busy").headers["ETag"]

    def patch(i: int) -> int:
        return raw.request("PATCH", f"{S}/apis/busy", body={"properties": {"description": f"writer {i}"}},
                           headers={"If-Match": etag}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(patch, range(8)))
    assert statuses == [200] + [412] * 7
    # Two creators of the same operation name: one 201, the rest 200 (replaced), one row.
    with ThreadPoolExecutor(8) as pool:
        created = sorted(pool.map(lambda _: raw.request("PUT", f"{S}/apis/busy/operations/same", body={
            "properties": {"displayName": "same", "method": "POST", "urlTemplate": "/same"}}).status_code, range(8)))
    assert created == [200] * 7 + [201]


def test_backend_reconnect(raw: RawArm) -> None:
    raw.request("PUT", f"{S}/backends/b", body={"properties": {"url": "https://b.example.com", "protocol": "http"}})
    assert raw.request("POST", f"{S}/backends/b/reconnect").status_code == 202
    assert raw.request("POST", f"{S}/backends/none/reconnect").status_code == 404
