"""APIM's backup/restore rules, one test per rule (sync answers on the POST, async ones on the poll)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from azure.storage.blob import BlobServiceClient, CorsRule
from emu_support import (
    ACCOUNT,
    CONTAINER,
    DEV,
    DR,
    DR_RG,
    DR_UA_CLIENT_ID,
    PREMIUM,
    PROD,
    PROD_RG,
    V2,
    RawArm,
    error_of,
    key_body,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator

DAY = 24 * 3600


def _error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


def _mi_body(name: str, access_type: str = "SystemAssignedManagedIdentity", **extra: str) -> dict[str, Any]:
    return {
        "storageAccount": ACCOUNT,
        "containerName": CONTAINER,
        "backupName": name,
        "accessType": access_type,
        **extra,
    }


# -- provisioning state and locking ---------------------------------------------------------------
def test_service_is_updating_while_an_operation_runs(raw: RawArm, emu: ApimEmulator) -> None:
    emu.admin.set_op_duration(600, service=PROD)
    before = raw.request("GET", service_path(PROD)).json()
    assert (before["properties"]["provisioningState"], before["properties"]["targetProvisioningState"]) == (
        "Succeeded",
        "",
    )
    started = raw.start("backup", PROD, key_body(unique()))
    during = raw.request("GET", service_path(PROD)).json()
    assert during["properties"]["provisioningState"] == "Updating"
    assert during["properties"]["targetProvisioningState"] == "Succeeded"
    assert during["etag"] != before["etag"]
    emu.admin.advance_clock(601)
    assert raw.poll(started.headers["Location"]).status_code == 200
    after = raw.request("GET", service_path(PROD)).json()
    assert (after["properties"]["provisioningState"], after["properties"]["targetProvisioningState"]) == (
        "Succeeded",
        "",
    )


def test_second_operation_on_a_busy_service_is_locked(
    raw: RawArm, emu: ApimEmulator, client: ApiManagementClient
) -> None:
    emu.admin.set_op_duration(600, service=PROD)
    assert raw.start("backup", PROD, key_body(unique())).status_code == 202
    message = f"The API Service {PROD} is transitioning at this time. Please try the request again later."
    for kind in ("backup", "restore"):
        locked = raw.start(kind, PROD, key_body(unique()))
        assert locked.status_code == 409
        assert _error(locked) == {"code": "ServiceLocked", "message": message, "details": None, "innerError": None}
    # The SDK maps it to ResourceExistsError (apim-arm.md §2.2).
    with pytest.raises(ResourceExistsError) as caught:
        client.api_management_service.begin_backup(
            PROD_RG,
            PROD,
            Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name=unique(), access_key="k"),
        )
    assert error_of(caught.value).code == "ServiceLocked"
    # Other services are not affected.
    assert raw.start("backup", DR, key_body(unique())).status_code == 202


def test_a_service_in_a_transitional_state_is_locked(raw: RawArm, emu: ApimEmulator) -> None:
    emu.admin.update_service(PROD, provisioningState="Activating")
    assert raw.request("GET", service_path(PROD)).json()["properties"]["provisioningState"] == "Activating"
    assert _error(raw.start("backup", PROD, key_body(unique())))["code"] == "ServiceLocked"
    emu.admin.update_service(PROD, provisioningState="Succeeded")
    assert raw.start("backup", PROD, key_body(unique())).status_code == 202


# -- tiers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("tier", ["Developer", "Basic", "Standard", "Premium"])
def test_supported_tiers_accept_backup_and_restore(raw: RawArm, emu: ApimEmulator, tier: str) -> None:
    emu.admin.update_service(DEV, sku={"name": tier, "capacity": 1})
    assert raw.start("backup", DEV, key_body(unique())).status_code == 202
    emu.admin.advance_clock(60)
    assert raw.start("restore", DEV, key_body(unique())).status_code == 202


@pytest.mark.parametrize("tier", ["Consumption", "BasicV2", "StandardV2", "Isolated"])
def test_other_tiers_refuse_backup_and_restore(raw: RawArm, emu: ApimEmulator, tier: str) -> None:
    emu.admin.update_service(DEV, sku={"name": tier, "capacity": 0 if tier == "Consumption" else 1})
    for kind in ("backup", "restore"):
        refused = raw.start(kind, DEV, key_body(unique()))
        assert refused.status_code == 400
        assert _error(refused)["code"] == "MethodNotAllowedInPricingTier"
        assert _error(refused)["message"] == f"Method not allowed in {tier} pricing tier"
    assert not emu.admin.operations(service=DEV)


def test_seeded_standard_v2_instance_is_refused(raw: RawArm) -> None:
    assert _error(raw.start("backup", V2, _mi_body(unique())))["code"] == "MethodNotAllowedInPricingTier"


# -- restore failures (asynchronous, on the poll) ----------------------------------------------
def test_restore_into_another_tier_fails_on_poll(raw: RawArm, emu: ApimEmulator) -> None:
    name = unique()
    assert raw.run("backup", PREMIUM, _mi_body(name)).status_code == 200
    before = emu.admin.service(DR)["configuration"]
    started = raw.start("restore", DR, _mi_body(name))
    assert started.status_code == 202  # accepted: the tier check needs the backup, so it is asynchronous
    emu.admin.advance_clock(60)
    failed = raw.poll(started.headers["Location"])
    assert failed.status_code == 400
    assert _error(failed) == {
        "code": "RestoreFailed",
        "message": "Cannot restore: current SKU is 'Standard', backup SKU is 'Premium'",
        "details": None,
        "innerError": None,
    }
    assert emu.admin.service(DR)["configuration"] == before
    assert emu.admin.service(DR)["resource"]["properties"]["provisioningState"] == "Succeeded"


def test_backups_expire_after_30_days(raw: RawArm, emu: ApimEmulator) -> None:
    name = unique()
    assert raw.run("backup", PROD, _mi_body(name)).status_code == 200
    emu.admin.advance_clock(29 * DAY)
    assert raw.run("restore", DR, _mi_body(name)).status_code == 200  # still valid at 29 days
    emu.admin.advance_clock(2 * DAY)  # 31 days (and a bit) after the backup
    expired = raw.run("restore", DR, _mi_body(name))
    assert expired.status_code == 400
    assert _error(expired)["code"] == "RestoreFailed"
    assert _error(expired)["message"] == "Cannot restore: backup expired"


@pytest.mark.parametrize("container", [CONTAINER, "no-such-container"])
def test_restore_from_a_missing_blob_fails_on_poll(raw: RawArm, container: str) -> None:
    body = _mi_body(unique("never-written")) | {"containerName": container}
    started = raw.start("restore", DR, body)
    assert started.status_code == 202
    failed = raw.run("restore", PROD, body)
    assert failed.status_code == 400
    assert _error(failed)["code"] == "RestoreFailed"
    assert "was not found" in _error(failed)["message"]
    assert body["backupName"] in _error(failed)["message"]


def test_restore_from_a_corrupt_blob_fails_on_poll(raw: RawArm, blobs: BlobServiceClient, emu: ApimEmulator) -> None:
    name = unique("corrupt")
    with contextlib.suppress(ResourceExistsError):
        blobs.create_container(CONTAINER)
    before = emu.admin.service(DR)["configuration"]
    for content in (b"\x00\x01 not json", json.dumps({"format": "something-else"}).encode()):
        blobs.get_blob_client(CONTAINER, name).upload_blob(content, overwrite=True)
        failed = raw.run("restore", DR, _mi_body(name))
        assert failed.status_code == 400
        assert _error(failed)["code"] == "RestoreFailed"
        assert "is not a valid API Management backup" in _error(failed)["message"]
    assert emu.admin.service(DR)["configuration"] == before


# -- storage access ------------------------------------------------------------------------------
def test_access_key_must_match_the_account_key(raw: RawArm, blobs: BlobServiceClient) -> None:
    good, bad = unique("good"), unique("bad")
    assert raw.run("backup", DEV, key_body(good)).status_code == 200
    assert blobs.get_blob_client(CONTAINER, good).exists()
    wrong = raw.start("backup", DEV, key_body(bad, key="d3Jvbmcta2V5"))
    assert wrong.status_code == 202  # accepted; Azure Storage refuses the key later
    raw.emu.admin.advance_clock(60)
    failed = raw.poll(wrong.headers["Location"])
    assert failed.status_code == 400
    assert _error(failed)["code"] == "BackupFailed"
    assert "rejected the access key" in _error(failed)["message"]
    assert not blobs.get_blob_client(CONTAINER, bad).exists()


def test_system_identity_needs_a_blob_data_role(raw: RawArm, emu: ApimEmulator, blobs: BlobServiceClient) -> None:
    allowed = unique("mi-ok")
    assert raw.run("backup", PROD, _mi_body(allowed)).status_code == 200
    assert blobs.get_blob_client(CONTAINER, allowed).exists()
    prod_principal = emu.admin.service(PROD)["identity"]["principalId"]
    assignments = emu.admin.storage_account(ACCOUNT)["roleAssignments"]
    emu.admin.set_storage_role_assignments(ACCOUNT, [a for a in assignments if a["principalId"] != prod_principal])
    denied = unique("mi-denied")
    failed = raw.run("backup", PROD, _mi_body(denied))
    assert failed.status_code == 400
    assert _error(failed)["code"] == "BackupFailed"
    assert prod_principal in _error(failed)["message"]
    assert "Storage Blob Data Contributor" in _error(failed)["message"]
    assert not blobs.get_blob_client(CONTAINER, denied).exists()
    # A read-only data role is enough to restore, not to back up.
    emu.admin.set_storage_role_assignments(
        ACCOUNT, [*assignments, {"principalId": prod_principal, "role": "Storage Blob Data Reader"}][1:]
    )
    assert raw.run("restore", PROD, _mi_body(allowed)).status_code == 200
    assert raw.run("backup", PROD, _mi_body(unique())).status_code == 400


def test_system_identity_must_be_enabled_on_the_service(raw: RawArm) -> None:
    refused = raw.start("backup", DEV, _mi_body(unique()))  # the Developer instance has no identity
    assert refused.status_code == 400
    assert _error(refused)["code"] == "InvalidParameters"
    assert "System assigned managed identity is not enabled" in _error(refused)["message"]


def test_user_assigned_identity_by_client_id(raw: RawArm, emu: ApimEmulator) -> None:
    ok = raw.run("backup", DR, _mi_body(unique(), "UserAssignedManagedIdentity", clientId=DR_UA_CLIENT_ID))
    assert ok.status_code == 200
    unknown = raw.start(
        "backup", DR, _mi_body(unique(), "UserAssignedManagedIdentity", clientId="11111111-2222-3333-4444-555555555555")
    )
    assert unknown.status_code == 400
    assert _error(unknown)["code"] == "InvalidParameters"
    assert _error(unknown)["message"].endswith("\r\nParameter name: clientId")
    # Known identity, no data role: asynchronous failure.
    ua_principal = next(iter(emu.admin.service(DR)["identity"]["userAssignedIdentities"].values()))["principalId"]
    assignments = emu.admin.storage_account(ACCOUNT)["roleAssignments"]
    emu.admin.set_storage_role_assignments(ACCOUNT, [a for a in assignments if a["principalId"] != ua_principal])
    failed = raw.run("backup", DR, _mi_body(unique(), "UserAssignedManagedIdentity", clientId=DR_UA_CLIENT_ID))
    assert failed.status_code == 400 and ua_principal in _error(failed)["message"]


def test_cors_on_the_blob_service_is_refused(raw: RawArm, blobs: BlobServiceClient) -> None:
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
    blobs.set_service_properties(cors=[CorsRule(["https://portal.contoso.com"], methods)])
    try:
        for kind in ("backup", "restore"):
            refused = raw.start(kind, PROD, _mi_body(unique()))
            assert refused.status_code == 400
            assert _error(refused) == {
                "code": "InvalidParameters",
                "message": "Invalid parameter: Requested value 'GET,HEAD,POST,PUT,DELETE,OPTIONS,PATCH' was not found."
                "\r\nParameter name: backupStorageAccount",
                "details": None,
                "innerError": None,
            }
    finally:
        blobs.set_service_properties(cors=[])
    assert raw.start("backup", PROD, _mi_body(unique())).status_code == 202


def test_unknown_storage_account_fails_on_poll(raw: RawArm) -> None:
    body = _mi_body(unique()) | {"storageAccount": "nosuchaccount"}
    failed = raw.run("backup", PROD, body)
    assert failed.status_code == 400
    assert "nosuchaccount" in _error(failed)["message"]


# -- request validation ----------------------------------------------------------------------------
BAD_BODIES: list[tuple[str, Any, str]] = [
    ("no storageAccount", {"containerName": CONTAINER, "backupName": "b"}, "Parameter name: backupStorageAccount"),
    (
        "no containerName",
        {"storageAccount": ACCOUNT, "backupName": "b", "accessKey": "k"},
        "Parameter name: backupContainerName",
    ),
    (
        "no backupName",
        {"storageAccount": ACCOUNT, "containerName": CONTAINER, "accessKey": "k"},
        "Parameter name: backupName",
    ),
    (
        "AccessKey without key",
        {"storageAccount": ACCOUNT, "containerName": CONTAINER, "backupName": "b"},
        "Parameter name: accessKey",
    ),
    (
        "user identity without clientId",
        _mi_body("b", "UserAssignedManagedIdentity"),
        "Parameter name: clientId",
    ),
    ("unknown accessType", _mi_body("b", "Sas"), "Requested value 'Sas' was not found.\r\nParameter name: accessType"),
    (
        "storageAccount with capitals",
        key_body("b") | {"storageAccount": "ApimBackups"},
        "Parameter name: backupStorageAccount",
    ),
    ("storageAccount not a string", key_body("b") | {"storageAccount": 42}, "Parameter name: backupStorageAccount"),
    ("backupName with a NUL", key_body("b\x00c"), "Parameter name: backupName"),
    ("backupName too long", key_body("b" * 1025), "Parameter name: backupName"),
    ("JSON array", [key_body("b")], "Parameter name: parameters"),
    ("JSON string", "backup please", "Parameter name: parameters"),
    ("null", None, "Parameter name: parameters"),
]
BAD_CONTAINER = (
    "Invalid parameter: The specifed resource name contains invalid characters.\r\nParameter name: backupContainerName"
)


@pytest.mark.parametrize(("label", "body", "expected"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_invalid_bodies_are_refused_synchronously(raw: RawArm, label: str, body: Any, expected: str) -> None:
    data = json.dumps(body).encode()
    refused = raw.request(
        "POST", f"{service_path(PROD)}/backup", data=data, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, label
    assert _error(refused)["code"] == "InvalidParameters"
    assert _error(refused)["message"].startswith("Invalid parameter: ")
    assert expected in _error(refused)["message"]
    assert _error(refused)["details"] is None and _error(refused)["innerError"] is None


@pytest.mark.parametrize("container", [["backups"], "Backups", "ab", "a--b", "-ab", "x" * 64, {"name": "b"}])
def test_invalid_container_names_get_apims_message(raw: RawArm, container: Any) -> None:
    refused = raw.start("restore", PROD, key_body("b") | {"containerName": container})
    assert refused.status_code == 400
    assert _error(refused)["message"] == BAD_CONTAINER


HOSTILE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"storageAccount=apimdrbackups"),
    ("truncated JSON", b'{"storageAccount": "apimdrbackups", "containerName": '),
    ("invalid UTF-8", b'{"storageAccount": "\xff\xfe"}'),
    ("deeply nested", b"[" * 200_000 + b"]" * 200_000),
    ("huge number", b'{"storageAccount": ' + b"9" * 100_000 + b"}"),
    ("1 MiB of JSON", json.dumps(key_body("b") | {"padding": "x" * (1 << 20)}).encode()),
    ("NaN", b'{"storageAccount": NaN}'),
]


@pytest.mark.parametrize(("label", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_400_never_500(raw: RawArm, label: str, data: bytes) -> None:
    refused = raw.request(
        "POST", f"{service_path(PROD)}/backup", data=data, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, (label, refused.text[:200])
    assert _error(refused)["code"] == "InvalidParameters"
    # The server is still healthy afterwards.
    assert raw.request("GET", service_path(PROD)).status_code == 200


def test_chunked_body_is_accepted(raw: RawArm) -> None:
    chunks = iter([b'{"storageAccount": "apimdrbackups", ', json.dumps(key_body(unique()))[1:].encode()])
    started = raw.session.post(
        raw.url(f"{service_path(PROD)}/backup"),
        data=chunks,
        headers={"Authorization": f"Bearer {raw.token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert started.status_code == 202, started.text


def test_access_type_defaults_to_access_key(raw: RawArm, blobs: BlobServiceClient) -> None:
    name = unique()
    body = {
        "storageAccount": ACCOUNT,
        "containerName": CONTAINER,
        "backupName": name,
        "accessKey": key_body(name)["accessKey"],
    }
    assert raw.run("backup", DEV, body).status_code == 200
    assert blobs.get_blob_client(CONTAINER, name).exists()


def test_backup_creates_the_container_and_keeps_the_exact_blob_name(raw: RawArm, blobs: BlobServiceClient) -> None:
    container = f"fresh-{uuid.uuid4().hex[:10]}"
    name = "apim-contoso-prod/2026/11/22/apim-contoso-prod-20261122T030000Z.apimbackup"
    assert raw.run("backup", PROD, _mi_body(name) | {"containerName": container}).status_code == 200
    assert [b.name for b in blobs.get_container_client(container).list_blobs()] == [name]


def test_sdk_surfaces_async_failures_with_code_and_message(client: ApiManagementClient) -> None:
    poller = client.api_management_service.begin_restore(
        DR_RG,
        DR,
        Params(
            storage_account=ACCOUNT,
            container_name=CONTAINER,
            backup_name=unique("missing"),
            access_type="SystemAssignedManagedIdentity",
        ),
        polling_interval=1,
    )
    started = time.monotonic()
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert time.monotonic() - started < 10
    assert caught.value.status_code == 400
    assert "RestoreFailed" in str(caught.value) and "was not found" in str(caught.value)


def test_bodies_over_the_hard_limit_are_not_read(raw: RawArm, emu: ApimEmulator) -> None:
    # A client announcing 100 MB gets its 400 at once; the emulator does not wait for (or buffer) the body.
    context = ssl.create_default_context(cafile=str(emu.ca_bundle))
    chunks = []
    with (
        socket.create_connection(("127.0.0.1", emu.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            f"POST {service_path(PROD)}/backup?api-version=2024-05-01 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{emu.port}\r\nAuthorization: Bearer {raw.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{".encode()
        )
        while chunk := tls.recv(65536):  # the server closes the connection after answering
            chunks.append(chunk)
    answer = b"".join(chunks).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 400")
    assert "Connection: close" in answer and "InvalidParameters" in answer
    assert raw.request("GET", service_path(PROD)).status_code == 200
