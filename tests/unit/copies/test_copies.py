"""Copies in a second region on the fakes: verification, the follower, the catch-up, the record and its lag,
the choice of the copy when the backup account is unreachable (preflight, catalog), retention of copies."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from dr_core import cli
from dr_core.catalog.entry import RecoveryPointKind
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.sidecars import COMPANION_SUFFIX, MANIFEST_SUFFIX, recovery_point_blobs, sidecar_names
from dr_core.catalog.tags import backup_tags, entry_from_tags
from dr_core.context import reset_context
from dr_core.copies.choice import RecoveryPointSources, is_unreachable
from dr_core.copies.copier import LOG_PREFIX, CopiesIncompleteError, PointOutcome
from dr_core.copies.record import CopyRecord, copy_key
from dr_core.copies.verify import Checksum, verify_copy
from dr_core.jobs.ids import JobKind, make_job_id
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import AzureUnavailableError, ConfigurationError, DrError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState
from dr_core.ports import BlobChecksum, BlobCopy, CopyOutcome
from dr_core.restore.preflight import Outcome
from dr_core.restore.request import RestoreRequest
from dr_core.retention.report import Outcome as PruneOutcome
from tests.unit.fakes import T0, World, rid, settings, world

CONTAINER = "apim-backups"
PROD, STANDBY, DEV = "apim-prod", "apim-dr", "apim-dev"
COPIES = "apimdrcopies"
UNREACHABLE = AzureUnavailableError("backup account apimdrbackups: the storage account could not be reached: "
                                    "Connection aborted", code="StorageUnreachable")
MD5 = "kLrJ4+8bZ0XbJqDqsl7Mow=="


def copy_world(instances: list[Any] | None = None, **extra: str) -> World:
    w = world(settings(instances if instances is not None else [
        {"resourceId": rid(PROD), "alias": "prod", "standby": rid(STANDBY)}, {"resourceId": rid(DEV), "copy": False}],
        APIM_DR_COPY_STORAGE_ACCOUNT=COPIES, **extra))
    for name in (PROD, STANDBY, DEV):
        w.arm.add_service(name)
    return w


def add_backup(w: World, age: timedelta, service: str = PROD, *, md5: str | None = MD5, manifest: bool = True,
               sku: str = "Standard") -> str:
    created = T0 - age
    name = backup_blob_name(service, created)
    blob = w.backups.add(CONTAINER, name, created=created, size=4096,
                         tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x",
                                          size=4096, location="West Europe"))
    blob.content_md5 = md5
    if manifest:
        w.backups.put_json(CONTAINER, name + MANIFEST_SUFFIX, {"format": "apim-dr/manifest", "apis": ["echo"]})
    return name


def succeeded_backup(w: World, name: str, service: str = PROD) -> Job:
    resource = ApimResourceId.parse(rid(service))
    return Job(job_id=make_job_id(JobKind.BACKUP, resource, T0, unique=True), kind=JobKind.BACKUP,
               instance=rid(service), service_name=service, state=JobState.SUCCEEDED, trigger=Trigger.SCHEDULE,
               slot=T0, created_at=T0, updated_at=T0, deadline=T0 + timedelta(hours=2), container=CONTAINER,
               blob_name=name, finished_at=T0)


def copy_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
            if r.getMessage().startswith(LOG_PREFIX)]


def record(w: World, service: str = PROD) -> CopyRecord | None:
    found = w.ctx.copy_records().get(copy_key(ApimResourceId.parse(rid(service))))
    return None if found is None else found.value


# -- a recovery point and its sidecars ---------------------------------------------------------------------

def test_a_point_is_its_sidecars_then_itself_by_kind():
    created = T0
    tags = backup_tags(service_name=PROD, sku="Standard", created=created, job_id="j")
    entry = entry_from_tags(CONTAINER, backup_blob_name(PROD, created), tags)
    assert entry is not None
    assert recovery_point_blobs(entry) == (entry.blob_name + MANIFEST_SUFFIX, entry.blob_name + COMPANION_SUFFIX,
                                           entry.blob_name)
    snapshot = type(entry)(**{**entry.__dict__, "kind": RecoveryPointKind.SNAPSHOT, "expires": None})
    assert sidecar_names(snapshot) == (entry.blob_name + COMPANION_SUFFIX,)


def test_the_sidecar_suffixes_are_the_features_own():
    from dr_core.backup.manifest import MANIFEST_SUFFIX as manifest
    from dr_core.companion.document import COMPANION_SUFFIX as companion

    assert (manifest, companion) == (MANIFEST_SUFFIX, COMPANION_SUFFIX)


# -- verification, table-driven -------------------------------------------------------------------------------
SRC = BlobChecksum(100, MD5, '"1"')
VERIFY_CASES = [
    ("same size and MD5", BlobCopy("b", CopyOutcome.COPIED, SRC, BlobChecksum(100, MD5), "put-blob-from-url", MD5),
     True, Checksum.MD5),
    ("present from an earlier run", BlobCopy("b", CopyOutcome.PRESENT, SRC, BlobChecksum(100, MD5)), True,
     Checksum.MD5),
    ("no source MD5: size only, the copy's MD5 kept", BlobCopy("b", CopyOutcome.COPIED, BlobChecksum(100, None),
                                                               BlobChecksum(100, "abc=")), True, Checksum.SIZE),
    ("sizes differ", BlobCopy("b", CopyOutcome.COPIED, SRC, BlobChecksum(99, MD5)), False, None),
    ("stored MD5 differs", BlobCopy("b", CopyOutcome.PRESENT, SRC, BlobChecksum(100, "other=")), False, Checksum.MD5),
    ("the service computed another MD5", BlobCopy("b", CopyOutcome.COPIED, SRC, BlobChecksum(100, MD5), "", "x="),
     False, Checksum.MD5),
    ("the copy vanished", BlobCopy("b", CopyOutcome.COPIED, SRC, None), False, None),
    ("no source", BlobCopy("b", CopyOutcome.SOURCE_MISSING, None, None), False, None),
]


@pytest.mark.parametrize(("case", "copied", "ok", "checksum"), VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_verify_copy(case, copied, ok, checksum):
    result = verify_copy(copied)
    assert (result.ok, result.checksum) == (ok, checksum), result.detail
    assert result.detail
    if ok:
        assert result.md5 is not None


# -- after a backup succeeds -------------------------------------------------------------------------------------

def test_a_succeeded_backup_is_copied_with_its_sidecars_verified_then_catalogued(caplog):
    w = copy_world()
    name = add_backup(w, timedelta(minutes=5))
    caplog.set_level(logging.INFO, logger="apim_dr.copies")
    w.ctx.copies().after(succeeded_backup(w, name))
    assert w.copier is not None and w.copies is not None
    assert w.copier.calls == [name + MANIFEST_SUFFIX, name + COMPANION_SUFFIX, name]  # sidecars first
    assert w.copies.documents[(CONTAINER, name + MANIFEST_SUFFIX)]["apis"] == ["echo"]
    copied = w.copies.blobs[(CONTAINER, name)]
    assert copied.tags == w.backups.blobs[(CONTAINER, name)].tags  # the same catalog
    assert [e.blob_name for e in w.copies.find(CONTAINER, PROD)] == [name]
    rec = record(w)
    assert rec is not None and rec.last_copied is not None and rec.error is None and rec.account == COPIES
    assert (rec.last_copied.blob_name, rec.last_copied.checksum, rec.last_copied.content_md5) == (name, "md5", MD5)
    assert rec.lag_hours(T0) == pytest.approx(5 / 60, abs=0.01)
    (line,) = copy_lines(caplog)
    assert line["outcome"] == "copied" and line["checksum"] == "md5" and line["account"] == COPIES
    assert line["blobs"][1] == {"blobName": name + COMPANION_SUFFIX, "outcome": "source-missing", "method": None}
    assert "Bearer" not in json.dumps(line)


@pytest.mark.parametrize("job_change", [
    {"state": JobState.FAILED}, {"kind": JobKind.RESTORE}, {"blob_name": ""},
])
def test_only_succeeded_backups_are_copied(job_change):
    w = copy_world()
    name = add_backup(w, timedelta(minutes=5))
    job = succeeded_backup(w, name)
    for key, value in job_change.items():
        setattr(job, key, value)
    w.ctx.copies().after(job)
    assert w.copier is not None and w.copier.calls == []


def test_an_instance_whose_copy_is_off_is_not_copied():
    w = copy_world()
    name = add_backup(w, timedelta(minutes=5), DEV)
    w.ctx.copies().after(succeeded_backup(w, name, DEV))
    assert w.copier is not None and w.copier.calls == [] and record(w, DEV) is None


def test_a_copy_that_does_not_verify_is_never_catalogued_nor_overwritten(caplog):
    w = copy_world()
    name = add_backup(w, timedelta(minutes=5))
    assert w.copier is not None and w.copies is not None
    w.copier.short.add(name)
    caplog.set_level(logging.INFO, logger="apim_dr.copies")
    w.ctx.copies().after(succeeded_backup(w, name))
    assert w.copies.blobs[(CONTAINER, name)].tags == {}  # uncatalogued: no restore can choose it
    assert w.copies.find(CONTAINER, PROD) == []
    rec = record(w)
    assert rec is not None and rec.last_copied is None and rec.error is not None
    assert rec.error.error.code == "CopyNotVerified" and "4095 bytes" in (rec.error.error.message or "")
    assert copy_lines(caplog)[0]["outcome"] == "failed"
    # The catch-up finds it missing from the copy catalog, finds the (bad) copy present and still refuses it.
    report = w.ctx.copies().catch_up()
    assert [p.outcome for p in report.instances[0].points] == [PointOutcome.FAILED]
    assert w.copies.blobs[(CONTAINER, name)].size == 4095 and report.failed


def test_a_failed_copy_is_recorded_and_the_catch_up_makes_it_later():
    w = copy_world()
    name = add_backup(w, timedelta(minutes=5))
    assert w.copier is not None and w.copies is not None
    w.copier.errors[name] = AzureUnavailableError("copy account apimdrcopies: storage answered 503 ServerBusy",
                                                  code="StorageRequestFailed")
    w.ctx.copies().after(succeeded_backup(w, name))  # never raises for the job's sake
    rec = record(w)
    assert rec is not None and rec.error is not None and rec.error.blob_name == name
    del w.copier.errors[name]
    report = w.ctx.copies().run_scheduled()
    assert [p.outcome for p in report.instances[0].points] == [PointOutcome.COPIED]
    rec = record(w)
    assert rec is not None and rec.error is None and rec.last_copied is not None


def test_the_catch_up_copies_what_is_missing_newest_first_skipping_expired_ones():
    w = copy_world()
    young, older, expired = (add_backup(w, timedelta(days=d)) for d in (1, 3, 31))
    w.ctx.copies().after(succeeded_backup(w, young))  # already there
    dry = w.ctx.copies().catch_up(dry_run=True)
    assert [(p.entry.blob_name, p.outcome) for p in dry.instances[0].points] == [(older, PointOutcome.WOULD_COPY)]
    assert dry.instances[0].present == 1
    assert w.copies is not None and (CONTAINER, older) not in w.copies.blobs
    report = w.ctx.copies().catch_up()
    assert [p.entry.blob_name for p in report.instances[0].points] == [older]
    assert {e.blob_name for e in w.copies.find(CONTAINER, PROD)} == {young, older}
    assert (CONTAINER, expired) not in w.copies.blobs
    assert [i.instance.name for i in report.instances] == [PROD]  # DEV is not copied
    rec = record(w)
    assert rec is not None and rec.last_copied is not None and rec.last_copied.blob_name == young


def test_the_catch_up_records_copies_made_before_there_was_a_record():
    w = copy_world()
    name = add_backup(w, timedelta(hours=2))
    assert w.copies is not None
    w.copies.add(CONTAINER, name, created=T0 - timedelta(hours=2), tags=dict(w.backups.blobs[(CONTAINER, name)].tags))
    w.ctx.copies().catch_up()
    rec = record(w)
    assert rec is not None and rec.last_copied is not None and rec.last_copied.blob_name == name
    assert rec.lag_hours(T0) == 2.0


def test_an_unreadable_catalog_is_an_instance_error_and_fails_the_timer():
    w = copy_world()
    add_backup(w, timedelta(hours=1))
    w.backups.outage = UNREACHABLE
    report = w.ctx.copies().catch_up()
    assert report.instances[0].error is not None and report.failed
    with pytest.raises(CopiesIncompleteError):
        w.ctx.copies().run_scheduled()


def test_copies_without_a_copy_account_are_a_configuration_error():
    w = world()
    with pytest.raises(ConfigurationError) as info:
        w.ctx.copies()
    assert "APIM_DR_COPY_STORAGE_ACCOUNT" in (info.value.remediation or "")


def test_the_worker_copies_after_the_manifest():
    w = copy_world()
    followers = [type(f).__name__ for f in w.ctx.worker()._journal._followers]
    assert followers[:2] == ["ManifestRecorder", "BackupCopies"]
    assert "BackupCopies" not in [type(f).__name__ for f in world().ctx.worker()._journal._followers]


# -- choosing the copy when the backup account is unreachable -----------------------------------------------------
@pytest.mark.parametrize(("error", "unreachable"), [
    (UNREACHABLE, True),
    (AzureUnavailableError("x: storage answered 503 ServerBusy", code="StorageRequestFailed"), True),
    (AzureUnavailableError("x: storage answered 500 InternalError", code="StorageRequestFailed"), True),
    (AzureUnavailableError("x: ServiceResponseTimeoutError: timed out", code="StorageError"), True),
    (AzureUnavailableError("x: storage answered 403 AuthorizationPermissionMismatch", code="StorageRequestFailed"),
     False),
    (AzureUnavailableError("x: storage refused the credentials (401)", code="StorageAuthenticationFailed"), False),
    (AzureUnavailableError("no token for the app's identity", code="TokenUnavailable"), False),
    (DrError("something else"), False),
])
def test_what_counts_as_unreachable(error, unreachable):
    assert is_unreachable(error) is unreachable


def test_the_sources_read_the_copy_only_when_the_backup_account_is_unreachable():
    w = copy_world()
    name = add_backup(w, timedelta(hours=1))
    w.ctx.copies().after(succeeded_backup(w, name))
    sources = w.ctx.recovery_point_sources()
    prod = w.ctx.settings.instances[0]
    found = sources.catalog(prod, CONTAINER, PROD)
    assert not found.source.is_copy and found.source.account == "apimdrbackups" and found.source.note() == ""
    w.backups.outage = UNREACHABLE
    found = sources.catalog(prod, CONTAINER, PROD)
    assert found.source.is_copy and found.source.account == COPIES and [e.blob_name for e in found.value] == [name]
    assert "the backup account apimdrbackups is unreachable" in (found.source.reason or "")
    tags = sources.tags(prod, CONTAINER, name)
    assert tags.source.is_copy and tags.value == w.backups.blobs[(CONTAINER, name)].tags
    # Not copied: the backup account's error as it is.
    dev = w.ctx.settings.instances[1]
    with pytest.raises(AzureUnavailableError) as info:
        sources.catalog(dev, CONTAINER, DEV)
    assert info.value is UNREACHABLE
    # A refusal is not an outage: no fallback hides it.
    refusal = AzureUnavailableError("x: storage answered 403 AuthorizationPermissionMismatch",
                                    code="StorageRequestFailed")
    w.backups.outage = refusal
    with pytest.raises(AzureUnavailableError) as info:
        sources.catalog(prod, CONTAINER, PROD)
    assert info.value is refusal
    # Both down: one error naming both accounts.
    w.backups.outage = UNREACHABLE
    assert w.copies is not None
    w.copies.outage = AzureUnavailableError("copy account: the storage account could not be reached: reset",
                                            code="StorageUnreachable")
    with pytest.raises(AzureUnavailableError) as info:
        sources.catalog(prod, CONTAINER, PROD)
    assert "apimdrbackups" in info.value.message and COPIES in info.value.message


def test_without_a_copy_account_the_sources_are_the_backup_account_alone():
    w = world()
    w.backups.outage = UNREACHABLE
    sources = RecoveryPointSources(primary=w.backups, primary_account="apimdrbackups")
    assert not sources.copied(None)
    with pytest.raises(AzureUnavailableError):
        sources.catalog(None, CONTAINER, PROD)


def test_the_preflight_restores_from_the_copy_when_the_backup_account_is_unreachable_and_says_so():
    w = copy_world()
    name = add_backup(w, timedelta(hours=1))
    w.ctx.copies().after(succeeded_backup(w, name))
    w.backups.outage = UNREACHABLE
    plan, job = w.ctx.restorer().start(RestoreRequest(target=STANDBY))
    assert not plan.refused, plan.checks
    assert plan.storage_account == COPIES and plan.copy_reason and "unreachable" in plan.copy_reason
    checks = {c.name: c for c in plan.checks}
    assert f"from the copy in {COPIES}" in checks["backup-exists"].message
    assert checks["backup-account-cors-disabled"].message == f"no CORS rules on {COPIES}"
    body = plan.to_json(now=T0)
    assert body["storage"]["account"] == COPIES and body["storage"]["copy"] is True
    assert job is not None and job.storage_account == COPIES and job.blob_name == name
    # A named backup is found in the copy too.
    named = w.ctx.restorer().plan(RestoreRequest(target=STANDBY, backup=name))
    assert named.storage_account == COPIES and not [c for c in named.failed_checks if c.name == "backup-exists"]


def test_the_preflight_reads_the_backup_account_while_it_answers():
    w = copy_world()
    name = add_backup(w, timedelta(hours=1))
    w.ctx.copies().after(succeeded_backup(w, name))
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    assert plan.storage_account == "apimdrbackups" and plan.copy_reason is None
    assert plan.to_json(now=T0)["storage"]["copy"] is False


def test_with_both_accounts_down_the_preflight_refuses_with_503_naming_both():
    w = copy_world()
    add_backup(w, timedelta(hours=1))
    w.backups.outage = UNREACHABLE
    assert w.copies is not None
    w.copies.outage = UNREACHABLE
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    (failed,) = [c for c in plan.checks if c.name == "backup-exists"]
    assert failed.outcome is Outcome.FAIL and failed.status == 503 and COPIES in failed.message


def test_the_catalog_lists_the_copy_during_an_outage_with_a_warning():
    w = copy_world()
    name = add_backup(w, timedelta(hours=1))
    w.ctx.copies().after(succeeded_backup(w, name))
    w.backups.outage = UNREACHABLE
    listing = w.ctx.catalog().list("prod")
    assert [b.entry.blob_name for b in listing.backups] == [name]
    assert any(f"listed from the copy in {COPIES}" in warning for warning in listing.warnings)


# -- the status document -------------------------------------------------------------------------------------------

def test_the_status_document_shows_the_copy_lag_and_whether_it_is_behind():
    w = copy_world()
    first = add_backup(w, timedelta(hours=5))
    w.ctx.copies().after(succeeded_backup(w, first))
    add_backup(w, timedelta(hours=1))  # newer, not copied yet
    document = w.ctx.posture_status().build()
    views = {v.service_name: v for v in document.instances}
    copy = views[PROD].copy
    assert copy is not None and copy.account == COPIES and copy.lag_hours == 5.0 and copy.behind
    body = views[PROD].to_json()["copy"]
    assert body["lagHours"] == 5.0 and body["behind"] is True and body["lastCopied"]["blobName"] == first
    assert views[DEV].copy is None and views[DEV].to_json()["copy"] is None
    from dr_core.posture.dashboard import render_dashboard

    page = render_dashboard(document.to_json(), now=T0)
    assert f"! copy in <bdi>{COPIES}</bdi>: lag 5 h (newest backup not copied yet)" in page.replace("\xa0", " ")


def test_without_a_copy_account_the_status_document_has_no_copy():
    w = world()
    document = w.ctx.posture_status().build()
    assert all(v.copy is None for v in document.instances)


# -- retention of copies ----------------------------------------------------------------------------------------

def test_retention_prunes_the_copies_by_the_same_rules():
    w = copy_world([{"resourceId": rid(PROD), "keepLast": 1, "maxAgeDays": 37}])
    young, old = add_backup(w, timedelta(days=1)), add_backup(w, timedelta(days=31))
    assert w.copies is not None
    for name in (young, old):
        w.copies.add(CONTAINER, name, created=w.backups.blobs[(CONTAINER, name)].created,
                     tags=dict(w.backups.blobs[(CONTAINER, name)].tags))
    w.copies.put_json(CONTAINER, old + MANIFEST_SUFFIX, {"format": "apim-dr/manifest"})
    w.clock.advance(10 * 86400)
    report = w.ctx.retention().run(dry_run=False)
    by_account = {inst.account: inst for inst in report.instances}
    assert set(by_account) == {None, COPIES}
    for inst in by_account.values():
        outcomes = {r.decision.entry.blob_name: r.outcome for r in inst.results}
        assert outcomes == {young: PruneOutcome.KEPT, old: PruneOutcome.DELETED}
    assert (CONTAINER, old) not in w.copies.blobs and (CONTAINER, old + MANIFEST_SUFFIX) not in w.copies.documents
    assert report.to_json()["instances"][1]["copyAccount"] == COPIES


# -- the CLI ----------------------------------------------------------------------------------------------------

def test_cli_copies_dry_run_then_copy(monkeypatch):
    w = copy_world()
    name = add_backup(w, timedelta(hours=3))
    reset_context(w.ctx)
    try:
        out = io.StringIO()
        assert cli.main(["copies", "--dry-run"], stdout=out) == 0
        assert f"[would-copy] {name}" in out.getvalue() and "nothing was changed" in out.getvalue()
        out = io.StringIO()
        assert cli.main(["copies", "--service", "prod"], stdout=out) == 0
        assert "1 copied and verified, 0 failed" in out.getvalue()
        out = io.StringIO()
        assert cli.main(["--json", "copies"], stdout=out) == 0
        body = json.loads(out.getvalue())
        assert body["account"] == COPIES and body["instances"][0]["alreadyCopied"] == 1
        out = io.StringIO()
        assert cli.main(["copies", "--service", DEV], stdout=out) == 0
        assert "is not copied" in out.getvalue()
    finally:
        reset_context()


def test_a_snapshot_job_is_copied_and_a_refreshed_point_re_tags_its_copy():
    w = copy_world()
    name = add_backup(w, timedelta(hours=3))
    job = succeeded_backup(w, name)
    job.kind = JobKind.SNAPSHOT
    w.ctx.copies().after(job)  # the follower takes snapshot jobs too
    assert w.copies is not None and (CONTAINER, name) in w.copies.blobs
    # The original's recovery-point time moves on (a snapshot found unchanged): the catch-up re-tags the copy.
    refreshed = backup_tags(service_name=PROD, sku="Standard", created=T0, job_id="backup-y", size=4096)
    w.backups.blobs[(CONTAINER, name)].tags = refreshed
    report = w.ctx.copies().catch_up()
    assert report.instances[0].points == [] and not report.failed
    assert w.copies.blobs[(CONTAINER, name)].tags == refreshed
    rec = record(w)
    assert rec is not None and rec.last_copied is not None and rec.last_copied.created_at == T0


def test_a_budgeted_catch_up_resumes_where_the_last_one_stopped():
    instances = [{"resourceId": rid(f"apim-{n:02d}")} for n in range(20)]
    w = copy_world(instances)
    for n in range(20):
        add_backup(w, timedelta(hours=1), f"apim-{n:02d}")
    ticks = iter(range(10_000))
    copies = w.ctx.copies()
    copies._monotonic = lambda: float(next(ticks))  # one "second" per look at the clock
    copies._parallel = 4
    reached: list[str] = []
    for _ in range(6):
        report = copies.catch_up(budget_seconds=2.5)
        reached += [i.instance.name for i in report.instances]
        if not report.not_reached:
            break
    assert sorted(set(reached)) == [f"apim-{n:02d}" for n in range(20)]  # every instance, over several runs
    assert w.copies is not None and len(w.copies.find(CONTAINER, "apim-19")) == 1
    # The status document's copy records are not confused by the cursor (same record kind).
    assert all(v.copy is not None for v in w.ctx.posture_status().build().instances)
