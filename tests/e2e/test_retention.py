"""Retention end to end: real backups aged on the shared clock, pruned through the blob front.

The backup account is reached through the blob front (emulator/blobfront), so immutability is Azure's
(a 409 ``BlobImmutableDueToPolicy`` refuses the delete) and, once a role table is set, so is RBAC: the
roles are the ones infra/ grants the Function App, read from the Bicep.

Ages: APIM (the emulator) writes each backup at a moment of the shared clock, and apim-dr stamps its
catalog tags with the blob's creation time. Azurite stamps creation on the real clock, which the tests
cannot move, so after each backup the test re-stamps its tags with the moment APIM wrote it (the
``createdAt`` inside the emulator's backup). Everything else (catalog query, decisions, deletes,
refusals) is the real path.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from dr_core import cli
from dr_core.catalog import TAG_JOB, TAG_LOCATION, TAG_SIZE, TAG_SKU, backup_blob_name, backup_tags
from dr_core.context import get_context, reset_context
from dr_core.jobs import JobState
from dr_core.retention import LOG_PREFIX
from emulator.funchost import FunctionsHost
from emulator.stack import LocalAzure
from emulator.webhook import Webhook
from tests.infra.bicep_model import Infra
from tests.infra.rbac_model import BACKUP_STORAGE, grants

from .conftest import E2E, PROD, PROJECT_ROOT, make_harness

pytestmark = pytest.mark.e2e

DAY = 86400
CONTAINER = "apim-backups"
RETENTION_ROLE = "customRoles.outputs.backupRetentionRoleId"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzure]:
    """This module's own local Azure, with the blob front before the backup account."""
    local = LocalAzure(tmp_path_factory.mktemp("local-azure-front"), retry_after=1, op_duration=1.0,
                       blob_front=True)
    local.start()
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    assert local.tls is not None
    os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
    yield local
    local.stop()
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="module")
def host(stack: LocalAzure, webhook: Webhook) -> Iterator[FunctionsHost]:
    harness = E2E(stack, None, webhook)
    functions_host = FunctionsHost(PROJECT_ROOT, harness.settings(), run_timers=False, run_queues=True,
                                   http_port=0, queue_lease=30)
    functions_host.start()
    yield functions_host
    functions_host.stop()
    reset_context()


@pytest.fixture
def e2e(stack: LocalAzure, host: FunctionsHost, webhook: Webhook) -> E2E:
    assert stack.front is not None
    stack.front.admin.reset()
    harness = make_harness(stack, host, webhook)
    harness.configure([{"resourceId": stack.resource_id(PROD), "alias": "prod", "keepLast": 2, "maxAgeDays": 37}])
    return harness


def container(e2e: E2E) -> ContainerClient:
    """The backup container with the account key (Shared Key: never subject to RBAC, as in Azure)."""
    assert e2e.stack.front is not None
    conn = e2e.stack.front.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client(CONTAINER)


def names(e2e: E2E) -> set[str]:
    return {b.name for b in container(e2e).list_blobs()}


def take_backup(e2e: E2E) -> str:
    """An on-demand backup of prod, re-stamped with the shared-clock moment APIM wrote it."""
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    blob = container(e2e).get_blob_client(job.blob_name)
    written = json.loads(blob.download_blob().readall())["createdAt"]
    created = datetime.strptime(written[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    tags = blob.get_blob_tags()
    blob.set_blob_tags(backup_tags(service_name=PROD, sku=tags[TAG_SKU], created=created, job_id=tags[TAG_JOB],
                                   size=int(tags[TAG_SIZE]), location=tags.get(TAG_LOCATION, "")))
    return job.blob_name


def aged_backups(e2e: E2E) -> list[str]:
    """Five backups, newest first, 0, 10, 30, 40 and 50 days old on the shared clock."""
    taken = []
    for days_after in (10, 20, 10, 10, 0):
        taken.append(take_backup(e2e))
        e2e.admin.advance_clock(days_after * DAY)
    return list(reversed(taken))


def prune_cli(*argv: str) -> tuple[int, dict[str, Any]]:
    """The operator CLI, in this process: it shares the app's clock (the emulator's), as the host does."""
    out = io.StringIO()
    code = cli.main(["--json", "prune", *argv], stdout=out)
    return code, json.loads(out.getvalue())


def decisions(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    (instance,) = body["instances"]
    return {b["blobName"]: (b["outcome"], b["reason"]) for b in instance["backups"]}


def retention_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
            if r.getMessage().startswith(LOG_PREFIX)]


def infra_roles(account: str, *, with_retention: bool) -> list[dict[str, Any]]:
    """The roles infra/ grants the Function App on the backup account, as the front's inline custom roles."""
    granted = [g for g in grants(Infra.from_disk()) if g.scope == BACKUP_STORAGE and g.role is not None]
    assert RETENTION_ROLE in {g.role_ref for g in granted}
    return [{"actions": list(g.role.actions), "dataActions": list(g.role.data_actions), "scope": account}
            for g in granted if g.role is not None and (with_retention or g.role_ref != RETENTION_ROLE)]


def test_prune_dry_run_then_deletes_only_what_retention_allows(e2e: E2E, caplog: pytest.LogCaptureFixture):
    front = e2e.stack.front
    assert front is not None
    account = e2e.stack.backup_account
    newest, young, thirty, forty, fifty = aged_backups(e2e)
    # A drill's sidecar next to one doomed backup; blobs that are no catalog backups.
    get_context().backups.put_json(CONTAINER, forty + ".manifest.json", {"apis": ["echo"]})
    untagged = backup_blob_name(PROD, datetime.now(UTC) - timedelta(days=90))
    container(e2e).upload_blob(untagged, b"{}")
    container(e2e).upload_blob("notes/readme.txt", b"not a backup")
    # The oldest is under a blob-level time-based policy (WORM) for another day.
    front.admin.set_blob_policy(account, CONTAINER, fifty, datetime.now(UTC) + timedelta(days=1))
    before = names(e2e)

    code, plan = prune_cli("--dry-run")
    assert code == 0, plan
    assert decisions(plan) == {
        newest: ("kept", "keep-last"), young: ("kept", "keep-last"), thirty: ("kept", "within-max-age"),
        forty: ("would-delete", "past-max-age"), fifty: ("would-delete", "past-max-age"),
    }
    assert names(e2e) == before, "a dry run deletes nothing"
    assert front.admin.requests(method="DELETE") == []

    # With the roles infra grants, but the retention role taken away: every delete is refused (403).
    app_principal = e2e.stack._seed["functionApp"]["userAssignedIdentities"][0]["principalId"]
    front.admin.set_roles({app_principal: infra_roles(account, with_retention=False)})
    caplog.set_level(logging.INFO, logger="apim_dr.retention")
    assert e2e.host is not None
    record = e2e.host.fire_timer("prune_backups")
    assert not record.succeeded and "RetentionIncomplete" in (record.error or ""), record.error
    assert names(e2e) == before
    refused = front.admin.requests(method="DELETE", decision="refused-rbac")
    assert {r["path"].split(f"/{CONTAINER}/", 1)[1] for r in refused} == {forty, fifty}
    failed = [line for line in retention_lines(caplog) if line["outcome"] == "failed"]
    assert {line["blobName"] for line in failed} == {forty, fifty}
    assert all("AuthorizationPermissionMismatch" in line["detail"] and "APIM DR Backup Retention" in line["detail"]
               for line in failed)

    # With the retention role as well: the 40-day backup and its sidecar go; the WORM one is skipped, and said so.
    front.admin.set_roles({app_principal: infra_roles(account, with_retention=True)})
    front.admin.clear_requests()
    caplog.clear()
    record = e2e.host.fire_timer("prune_backups")
    assert record.succeeded, record.error
    assert names(e2e) == before - {forty, forty + ".manifest.json"}
    (worm,) = front.admin.requests(method="DELETE", decision="refused-immutability")
    assert worm["path"].endswith(fifty) and worm["status"] == 409 and worm["errorCode"] == "BlobImmutableDueToPolicy"
    lines = retention_lines(caplog)
    (deleted,) = [line for line in lines if line["outcome"] == "deleted"]
    assert deleted["blobName"] == forty and deleted["reason"] == "past-max-age" and "40.0 days old" in deleted["why"]
    assert deleted["sidecarsDeleted"] == [forty + ".manifest.json"]
    (skipped,) = [line for line in lines if line["outcome"] == "skipped-immutable"]
    assert skipped["blobName"] == fifty and "immutability policy or legal hold" in skipped["detail"]
    summary = lines[-1]
    assert summary["outcome"] == "summary" and summary["deleted"] == 1 and summary["skippedImmutable"] == 1

    # The CLI reports the skip again; once the policy is gone, the next run deletes it.
    code, report = prune_cli()
    assert code == 0 and decisions(report)[fifty] == ("skipped-immutable", "past-max-age")
    front.admin.clear_blob_policy(account, CONTAINER, fifty)
    code, report = prune_cli("--service", "prod")
    assert code == 0 and decisions(report)[fifty] == ("deleted", "past-max-age")
    assert names(e2e) == before - {forty, forty + ".manifest.json", fifty}
    assert {newest, young, thirty, untagged, "notes/readme.txt"} <= names(e2e)


def test_the_newest_restorable_backup_outlives_max_age(e2e: E2E):
    """keepLast 1, maxAgeDays 1: the newest is a tier that cannot restore, so the next one stays as well."""
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "keepLast": 1, "maxAgeDays": 1}])
    older = take_backup(e2e)
    e2e.admin.advance_clock(5 * DAY)
    old = take_backup(e2e)
    e2e.admin.advance_clock(5 * DAY)
    # The instance moved to a tier with no backup after its last one: its newest backup says StandardV2.
    newest = take_backup(e2e)
    blob = container(e2e).get_blob_client(newest)
    tags = blob.get_blob_tags()
    created = datetime.strptime(tags["apimdr_created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    blob.set_blob_tags(backup_tags(service_name=PROD, sku="StandardV2", created=created, job_id=tags[TAG_JOB],
                                   size=int(tags[TAG_SIZE])))
    e2e.admin.advance_clock(2 * DAY)
    code, report = prune_cli()
    assert code == 0
    assert decisions(report) == {newest: ("kept", "keep-last"), old: ("kept", "newest-restorable"),
                                 older: ("deleted", "past-max-age")}
    assert older not in names(e2e) and {old, newest} <= names(e2e)


@pytest.mark.parametrize(("argv", "code"), [
    (("--service", "apim-nope"), 5),
    (("--service", "/subscriptions/x/resourceGroups/y"), 2),
    (("--service", "a" * 4000), 2),
])
def test_cli_refuses_bad_services_and_deletes_nothing(e2e: E2E, argv, code):
    assert prune_cli_exit(*argv) == code
    assert e2e.stack.front is not None and e2e.stack.front.admin.requests(method="DELETE") == []


def prune_cli_exit(*argv: str) -> int:
    return cli.main(["prune", *argv], stdout=io.StringIO())
