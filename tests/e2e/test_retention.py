"""Retention end to end: real backups aged on the shared clock, pruned through the blob front.

The backup account is reached through the blob front (emulator/blobfront), so immutability is Azure's
(a 409 ``BlobImmutableDueToPolicy`` refuses the delete) and so is RBAC: the Function App holds the
roles infra/ grants it, read from the Bicep (tests/e2e/conftest.py), and one test takes the retention
role away.

Ages: the backups are taken one after another while the shared clock (the emulator's, which the app
follows) moves on by days; the catalog dates a backup when ARM accepted it, on that clock.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from dr_core import cli
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import TAG_JOB, TAG_SIZE, backup_tags
from dr_core.context import get_context
from dr_core.kernel.phases import JobState
from dr_core.retention.pruner import LOG_PREFIX
from emulator.stack import LocalAzure
from tests.infra.bicep_model import Infra
from tests.infra.rbac_model import BACKUP_STORAGE, grants

from .conftest import E2E, PROD, backup_account_roles, eventually

pytestmark = pytest.mark.e2e

DAY = 86400
CONTAINER = "apim-backups"
RETENTION_ROLE = "customRoles.outputs.backupRetentionRoleId"


@pytest.fixture
def e2e(e2e: E2E) -> E2E:
    """The shared harness (backup account behind the blob front, infra's roles enforced), prod with keepLast 2."""
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "keepLast": 2, "maxAgeDays": 37}])
    return e2e


def container(e2e: E2E) -> ContainerClient:
    """The backup container with the account key (Shared Key: never subject to RBAC, as in Azure)."""
    assert e2e.stack.front is not None
    conn = e2e.stack.front.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client(CONTAINER)


def names(e2e: E2E) -> set[str]:
    return {b.name for b in container(e2e).list_blobs()}


def take_backup(e2e: E2E) -> str:
    """An on-demand backup of prod, dated now on the shared clock."""
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    # Settled: its follow-ups (manifest, RPO check) have run too, so none of their writes lands in a count later.
    (job,) = e2e.wait_settled([response.json()["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    return job.blob_name


def aged_backups(e2e: E2E) -> list[str]:
    """Five backups, newest first, 0, 10, 20, 40 and 50 days old on the shared clock."""
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


def roles_without_retention(stack: LocalAzure) -> dict[str, list[dict[str, Any]]]:
    """The role table infra/ grants (conftest), with the Function App's APIM DR Backup Retention role taken out."""
    table = backup_account_roles(stack)
    retention = grants_by_ref()[RETENTION_ROLE]
    mine = table[stack.function_app_principal_id]
    kept = [a for a in mine if a["dataActions"] != list(retention.data_actions) or a["scope"] != stack.backup_account]
    assert len(kept) == len(mine) - 1, "the retention role is among the roles infra grants"
    return {**table, stack.function_app_principal_id: kept}


def grants_by_ref() -> dict[str, Any]:
    return {g.role_ref: g.role for g in grants(Infra.from_disk()) if g.scope == BACKUP_STORAGE}


def test_prune_dry_run_then_deletes_only_what_retention_allows(e2e: E2E, caplog: pytest.LogCaptureFixture):
    front = e2e.stack.front
    assert front is not None
    account = e2e.stack.backup_account
    newest, young, twenty, forty, fifty = aged_backups(e2e)
    # Each backup got its manifest (a sidecar) when it succeeded; blobs that are no catalog backups.
    backups = (newest, young, twenty, forty, fifty)
    eventually(lambda: all(get_context().backups.get_json(CONTAINER, b + ".manifest.json") for b in backups))
    untagged = backup_blob_name(PROD, datetime.now(UTC) - timedelta(days=90))
    container(e2e).upload_blob(untagged, b"{}")
    container(e2e).upload_blob("notes/readme.txt", b"not a backup")
    # The oldest is under a blob-level time-based policy (WORM) for another day.
    front.admin.set_blob_policy(account, CONTAINER, fifty, datetime.now(UTC) + timedelta(days=1))
    before = names(e2e)

    code, plan = prune_cli("--dry-run")
    assert code == 0, plan
    assert decisions(plan) == {
        newest: ("kept", "keep-last"), young: ("kept", "keep-last"), twenty: ("kept", "within-max-age"),
        forty: ("would-delete", "past-max-age"), fifty: ("would-delete", "past-max-age"),
    }
    assert names(e2e) == before, "a dry run deletes nothing"
    assert front.admin.requests(method="DELETE") == []

    # The roles infra grants, but the retention role taken away: every delete is refused (403).
    front.admin.set_roles(roles_without_retention(e2e.stack))
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
    front.admin.set_roles(backup_account_roles(e2e.stack))
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
    assert names(e2e) == before - {forty, forty + ".manifest.json", fifty, fifty + ".manifest.json"}
    assert {newest, young, twenty, untagged, "notes/readme.txt"} <= names(e2e)


def test_the_newest_restorable_backup_outlives_max_age(e2e: E2E):
    """keepLast 1, maxAgeDays 1: the newest is of a tier that cannot restore, so the next one stays as well.

    No tier that backs up lacks restore, so the tier change is written into the newest backup's tags.
    """
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


def test_backups_labelled_before_the_catalog_tag_are_relabelled_through_infra_roles(e2e: E2E):
    """An upgrade: backups whose labels predate the catalog tag are invisible to the catalog until relabelled,
    by the CLI or by the daily retention run, with the Function App's roles (RBAC enforced by the front), also
    under a time-based immutability policy (Azure allows tag changes there)."""
    from dr_core.catalog.tags import TAG_CATALOG

    front = e2e.stack.front
    assert front is not None
    older = take_backup(e2e)
    e2e.admin.advance_clock(DAY)
    newest = take_backup(e2e)
    front.admin.set_blob_policy(e2e.stack.backup_account, CONTAINER, older, datetime.now(UTC) + timedelta(days=1))

    def listed() -> list[str]:
        response = e2e.http("GET", "/api/backups", params={"service": "prod"})
        assert response.status_code == 200, response.text
        return [b["blobName"] for b in response.json()["backups"]]

    def strip_catalog_tag() -> None:
        blob = container(e2e).get_blob_client(older)
        blob.set_blob_tags({k: v for k, v in blob.get_blob_tags().items() if k != TAG_CATALOG})

    strip_catalog_tag()
    assert listed() == [newest]
    # The backups' follow-ups (their manifests, written after the jobs ended) were done before take_backup returned.
    assert all(get_context().backups.get_json(CONTAINER, b + ".manifest.json") for b in (older, newest))
    front.admin.clear_requests()
    out = io.StringIO()
    assert cli.main(["backups", "relabel", "--service", "prod"], stdout=out) == 0, out.getvalue()
    assert f"[relabelled] {older}" in out.getvalue()
    assert listed() == [newest, older]
    assert front.admin.requests(decision="refused-rbac") == []
    puts = front.admin.requests(method="PUT")
    assert len(puts) == 1, puts  # one Set Blob Tags, with the app's identity; nothing else
    (tagged,) = puts
    assert tagged["operation"] == "SetBlobTags" and tagged["path"].endswith(older) and tagged["status"] == 204
    assert tagged["principal"] == e2e.stack.function_app_principal_id

    strip_catalog_tag()
    assert e2e.host is not None
    record = e2e.host.fire_timer("prune_backups")
    assert record.succeeded, record.error
    assert listed() == [newest, older]
