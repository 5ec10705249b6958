"""Copies in a second region, end to end: the host stand-in, the APIM emulator, Azurite with both accounts behind
the blob front (infra's roles enforced on both), the official SDKs.

- A backup that succeeds is copied server-side (Put Blob From URL with the app's token, nothing read by the app),
  verified, and catalogued in the copy account with the original's tags; the status document shows the lag.
- With the backup account's endpoint unreachable (a regional storage outage: the front closes every request to it
  and API Management cannot reach it either), the restore preflight reads the copy and says so, and APIM restores
  from the copy account.
"""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient

from dr_core.kernel.phases import JobState

from .conftest import DEV, E2E, PROD, STANDBY, eventually

pytestmark = pytest.mark.e2e

CONTAINER = "apim-backups"


def account(e2e: E2E, name: str) -> BlobServiceClient:
    assert e2e.stack.azurite is not None
    return BlobServiceClient.from_connection_string(e2e.stack.azurite.connection_string(name))


def copies_on(e2e: E2E, instances: list | None = None) -> str:
    stack = e2e.stack
    assert stack.copy_account is not None
    stack.create_containers(stack.copy_account, [CONTAINER])  # as infra/ does
    e2e.configure(instances if instances is not None else [
        {"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY)},
        {"resourceId": e2e.rid(DEV), "alias": "dev", "copy": False}], **stack.copy_settings())
    return stack.copy_account


def backed_up_and_copied(e2e: E2E, copies: str) -> str:
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    copied = account(e2e, copies).get_blob_client(CONTAINER, job.blob_name)
    # The copy follows the job's end (the worker's follower): catalogued once verified.
    eventually(lambda: copied.exists() and "apimdr_catalog" in copied.get_blob_tags(), timeout=30)
    return job.blob_name


def test_a_backup_is_copied_server_side_verified_and_catalogued(e2e: E2E):
    copies = copies_on(e2e)
    name = backed_up_and_copied(e2e, copies)
    original = account(e2e, e2e.stack.backup_account).get_blob_client(CONTAINER, name)
    copied = account(e2e, copies).get_blob_client(CONTAINER, name)
    assert copied.download_blob().readall() == original.download_blob().readall()
    assert copied.get_blob_tags() == original.get_blob_tags()  # the same catalog
    props = copied.get_blob_properties()
    assert props.content_settings.content_md5 == original.get_blob_properties().content_settings.content_md5
    manifest = account(e2e, copies).get_blob_client(CONTAINER, name + ".manifest.json")
    eventually(manifest.exists, timeout=10)
    # Server-side: the copy account read the backup (as the app's token); the app itself never read its bytes.
    assert e2e.stack.front is not None
    app = e2e.stack.function_app_principal_id
    puts = [r for r in e2e.stack.front.admin.requests(operation="PutBlobFromURL") if r["path"].endswith(name)]
    assert [(r["principal"], r["decision"], r["status"]) for r in puts] == [(app, "forwarded", 201)]
    assert not [r for r in e2e.stack.front.admin.requests(operation="GetBlob") if r["principal"] == app
                and r["path"].endswith(name)]
    # The status document: the copy's lag, nothing behind.
    status = e2e.http("GET", "/api/status?service=prod").json()["instances"][0]
    assert status["copy"]["account"] == copies and status["copy"]["behind"] is False
    assert status["copy"]["lastCopied"]["blobName"] == name and status["copy"]["lagHours"] < 1
    assert status["copy"]["error"] is None
    dev = e2e.http("GET", "/api/status?service=dev").json()["instances"][0]
    assert dev["copy"] is None


def test_the_restore_reads_the_copy_when_the_backup_account_is_unreachable(e2e: E2E):
    copies = copies_on(e2e)
    name = backed_up_and_copied(e2e, copies)
    at_backup = e2e.admin.service(PROD)["configuration"]
    e2e.stack.storage_outage(e2e.stack.backup_account)
    try:
        # The app cannot reach the backup account any more (the front closes every request to it) ...
        listing = e2e.http("GET", "/api/backups?service=prod")
        assert listing.status_code == 200, listing.text
        assert [b["blobName"] for b in listing.json()["backups"]] == [name]
        assert any(f"listed from the copy in {copies}" in w for w in listing.json()["warnings"])
        # ... and the restore preflight chooses the copy, and says so.
        response = e2e.http("POST", "/api/restores", json={"target": STANDBY})
        assert response.status_code == 202, response.text
        plan = response.json()["plan"]
        assert plan["storage"]["account"] == copies and plan["storage"]["copy"] is True
        assert "unreachable" in plan["storage"]["copyReason"]
        checks = {c["name"]: c for c in plan["preflight"]}
        assert f"from the copy in {copies}" in checks["backup-exists"]["message"]
        assert checks["backup-account-cors-disabled"]["outcome"] == "pass"
        (job,) = e2e.wait_terminal([response.json()["operation"]["id"]], timeout=120)
        assert job.state is JobState.SUCCEEDED, job.error_message
        assert job.storage_account == copies and job.blob_name == name
        # APIM read the copy account (the restore body named it) with the standby's identity.
        (operation,) = [op for op in e2e.admin.operations(service=STANDBY) if op["kind"] == "restore"]
        assert operation["parameters"]["storageAccount"] == copies
        restored = e2e.admin.service(STANDBY)["configuration"]
        assert [a["id"] for a in restored["apis"]] == [a["id"] for a in at_backup["apis"]]
        # An instance whose backups are not copied gets the outage as it is: 503, nothing started.
        refused = e2e.http("POST", "/api/restores", json={"target": "dev", "confirm": DEV, "dryRun": True})
        failed = {c["name"]: c for c in refused.json()["plan"]["preflight"] if c["outcome"] == "fail"}
        assert "backup-exists" in failed and refused.json()["plan"]["storage"]["copy"] is False
    finally:
        e2e.stack.storage_outage(e2e.stack.backup_account, down=False)


def test_while_the_backup_account_is_down_apim_cannot_restore_from_it(e2e: E2E):
    """The outage is real for APIM too: a restore body naming the backup account fails (what the copy avoids)."""
    copies = copies_on(e2e)
    name = backed_up_and_copied(e2e, copies)
    e2e.stack.storage_outage(e2e.stack.backup_account)
    try:
        from azure.identity import DefaultAzureCredential
        from azure.mgmt.apimanagement import ApiManagementClient
        from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

        assert e2e.stack.apim is not None
        client = ApiManagementClient(DefaultAzureCredential(), e2e.stack.subscription_id,
                                     base_url=e2e.stack.apim.arm_url)
        rg = e2e.rid(STANDBY).split("/")[4]
        poller = client.api_management_service.begin_restore(rg, STANDBY, ApiManagementServiceBackupRestoreParameters(
            storage_account=e2e.stack.backup_account, container_name=CONTAINER, backup_name=name,
            access_type="SystemAssignedManagedIdentity"), polling_interval=0.5)
        with pytest.raises(Exception, match="could not be reached"):
            poller.result(timeout=60)
    finally:
        e2e.stack.storage_outage(e2e.stack.backup_account, down=False)
