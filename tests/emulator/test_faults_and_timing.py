"""Fault injection, throttling, operation duration, Retry-After and the movable clock."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from azure.storage.blob import BlobServiceClient
from emu_support import ACCOUNT, CONTAINER, DR, PROD, PROD_RG, SUB, RawArm, key_body, service_path, unique

from emulator.apim import ApimEmulator
from emulator.apim.state import parse_iso


def _mi(name: str) -> Params:
    return Params(
        storage_account=ACCOUNT, container_name=CONTAINER, backup_name=name, access_type="SystemAssignedManagedIdentity"
    )


def _times(entries: list[dict[str, object]]) -> list[float]:
    return [parse_iso(str(e["time"])) for e in entries]


def test_429_carries_retry_after_and_azure_core_honours_it(
    emu: ApimEmulator, raw: RawArm, client: ApiManagementClient
) -> None:
    emu.admin.throttle(on="get", retry_after=7)
    throttled = raw.request("GET", service_path(PROD))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    oid = emu.admin.requests()[-1]["principal"]
    assert throttled.json()["error"] == {
        "code": "SubscriptionRequestsThrottled",
        "message": f"Number of 'read' requests for subscription '{SUB}' actor '{oid}' exceeded. Please try again "
        "after '7' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
    }
    # The SDK retries any status with Retry-After, even a POST, after waiting that long.
    emu.admin.clear_requests()
    emu.admin.throttle(on="backup", retry_after=1)
    poller = client.api_management_service.begin_backup(PROD_RG, PROD, _mi(unique()), polling_interval=1)
    poller.result()
    posts = emu.admin.requests(method="POST", path_contains="/backup")
    assert [p["status"] for p in posts] == [429, 202]
    first, second = _times(posts)
    assert second - first >= 0.95


def test_5xx_on_start_is_retried_by_the_sdk(emu: ApimEmulator, client: ApiManagementClient) -> None:
    emu.admin.set_fault("http", on="start", status=503, count=1)
    client.api_management_service.begin_backup(PROD_RG, PROD, _mi(unique()), polling_interval=1).result()
    posts = emu.admin.requests(method="POST", path_contains="/backup")
    assert [p["status"] for p in posts] == [503, 202]
    assert len(emu.admin.operations(service=PROD)) == 1


def test_5xx_on_poll_n_times(emu: ApimEmulator, client: ApiManagementClient) -> None:
    emu.admin.set_fault("http", on="poll", status=500, count=2)
    result = client.api_management_service.begin_backup(PROD_RG, PROD, _mi(unique()), polling_interval=1).result()
    assert result.name == PROD
    polls = [e["status"] for e in emu.admin.requests(method="GET", path_contains="/operationresults/")]
    assert polls[:2] == [500, 500] and polls[-1] == 200
    assert emu.admin.faults() == []


def test_fault_limited_to_one_service(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_fault("http", on="get", status=502, count=None, service=DR)
    assert raw.request("GET", service_path(PROD)).status_code == 200
    assert raw.request("GET", service_path(DR)).status_code == 502
    assert raw.request("GET", service_path(DR)).status_code == 502  # count=None: until cleared
    emu.admin.clear_faults()
    assert raw.request("GET", service_path(DR)).status_code == 200


def test_injected_operation_failure(
    emu: ApimEmulator, raw: RawArm, client: ApiManagementClient, blobs: BlobServiceClient
) -> None:
    emu.admin.fail_next_operation(PROD, code="BackupFailed", message="Injected: the storage account is unreachable.")
    name = unique()
    poller = client.api_management_service.begin_backup(PROD_RG, PROD, _mi(name), polling_interval=1)
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert caught.value.status_code == 400
    assert "BackupFailed" in str(caught.value) and "Injected: the storage account is unreachable." in str(caught.value)
    assert not blobs.get_blob_client(CONTAINER, name).exists()
    assert emu.admin.service(PROD)["resource"]["properties"]["provisioningState"] == "Succeeded"
    # Only the next operation fails.
    assert raw.run("backup", PROD, key_body(unique())).status_code == 200


def test_operation_duration_per_service_and_default(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_op_duration(120, service=PROD)
    emu.admin.set_op_duration(30)
    slow = raw.start("backup", PROD, key_body(unique()))
    default = raw.start("backup", DR, key_body(unique()))
    emu.admin.advance_clock(29)
    assert raw.poll(slow.headers["Location"]).status_code == 202
    assert raw.poll(default.headers["Location"]).status_code == 202
    emu.admin.advance_clock(2)
    assert raw.poll(default.headers["Location"]).status_code == 200
    assert raw.poll(slow.headers["Location"]).status_code == 202
    emu.admin.advance_clock(90)
    assert raw.poll(slow.headers["Location"]).status_code == 200


def test_operations_complete_in_real_time_without_polling(
    emu: ApimEmulator, raw: RawArm, blobs: BlobServiceClient
) -> None:
    # Seeded duration 0.5 s; the background ticker finishes the operation and writes the blob.
    name = unique()
    started = raw.start("backup", PROD, key_body(name))
    deadline = time.monotonic() + 5
    while not blobs.get_blob_client(CONTAINER, name).exists():
        assert time.monotonic() < deadline, "the ticker did not complete the backup"
        time.sleep(0.1)
    assert emu.admin.operations(service=PROD)[0]["status"] == "Succeeded"
    assert raw.poll(started.headers["Location"]).status_code == 200


def test_retry_after_is_configurable(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_op_duration(600)
    assert raw.start("backup", PROD, key_body(unique())).headers["Retry-After"] == "1"
    emu.admin.set_retry_after(60)
    started = raw.start("backup", DR, key_body(unique()))
    assert started.headers["Retry-After"] == "60"
    assert raw.poll(started.headers["Location"]).headers["Retry-After"] == "60"


def test_clock_moves_forward_only(emu: ApimEmulator) -> None:
    before = emu.admin.clock()
    after = emu.admin.advance_clock(86400)
    assert after["offsetSeconds"] == pytest.approx(before["offsetSeconds"] + 86400)
    assert after["epoch"] - before["epoch"] >= 86400
    with pytest.raises(Exception, match="only moves forward"):
        emu.admin.advance_clock(-1)


def test_write_token_bucket(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_write_throttling(True, burst=2, refill_per_second=0.5)
    emu.admin.set_op_duration(0)
    first = raw.start("backup", PROD, key_body(unique()))
    assert first.headers["x-ms-ratelimit-remaining-subscription-writes"] == "1"
    assert raw.start("backup", DR, key_body(unique())).status_code == 202
    emu.admin.tick()
    throttled = raw.start("backup", PROD, key_body(unique()))
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 2
    # Reads are not in the write bucket.
    assert raw.request("GET", service_path(PROD)).status_code == 200
    emu.admin.set_write_throttling(False)
    assert raw.start("backup", PROD, key_body(unique())).status_code == 202


def test_request_log_counts_calls(emu: ApimEmulator, raw: RawArm) -> None:
    raw.request("GET", service_path(PROD))
    raw.start("backup", PROD, key_body(unique()))
    raw.start("backup", PROD, key_body(unique()))  # 409: still logged
    posts = emu.admin.requests(method="POST", path_contains=f"/service/{PROD}/backup")
    assert [p["status"] for p in posts] == [202, 409]
    entry = posts[0]
    assert set(entry) >= {"method", "path", "query", "status", "principal", "time"}
    assert entry["query"] == "api-version=2024-05-01" and entry["principal"]
    assert not emu.admin.requests(path_contains="/_emulator")


def test_fault_target_aliases(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_fault("http", on="backup_start", status=503)
    assert emu.admin.faults()[0]["on"] == "backup"
    assert raw.start("restore", PROD, key_body(unique())).status_code == 202
    assert raw.start("backup", DR, key_body(unique())).status_code == 503
    with pytest.raises(Exception, match="on must be one of"):
        emu.admin.set_fault("http", on="somewhere")
