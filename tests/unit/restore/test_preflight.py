"""Every preflight check of a restore, passing and failing, on in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.inventory.resolver import UnknownInstanceError
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Trigger
from dr_core.kernel.errors import ArmError, InvalidRequestError
from dr_core.kernel.phases import JobState
from dr_core.restore.preflight import Outcome
from dr_core.restore.request import RestoreRequest, parse_restore_request
from tests.unit.fakes import T0, World, rid, settings, world

PROD, STANDBY, DEV = "apim-prod", "apim-dr", "apim-dev"


def add_backup(w: World, service: str = PROD, *, sku: str = "Standard", age: timedelta = timedelta(hours=2)) -> str:
    created = T0 - age
    name = backup_blob_name(service, created)
    w.backups.add("apim-backups", name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def ready_world() -> World:
    w = world()
    w.arm.add_service(PROD)
    w.arm.add_service(STANDBY)
    w.arm.add_service(DEV)
    add_backup(w)
    return w


def outcomes(w: World, request: RestoreRequest) -> dict[str, Outcome]:
    plan = w.ctx.restorer().plan(request)
    return {c.name: c.outcome for c in plan.checks}


def test_all_checks_pass_for_the_standby_of_a_primary() -> None:
    w = ready_world()
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    assert plan.source.service_name == PROD and plan.target.service_name == STANDBY
    assert {c.name for c in plan.checks} == {
        "backup-exists", "backup-not-expired", "target-tier-matches-backup", "target-tier-supports-restore",
        "target-idle", "target-has-identity", "target-is-not-source-or-primary", "backup-account-cors-disabled",
        "no-restore-in-progress"}
    assert all(c.outcome is Outcome.PASS for c in plan.checks), plan.checks
    assert not plan.refused


Setup = Callable[[World], None]


@pytest.mark.parametrize(("check", "setup", "status"), [
    ("backup-exists", lambda w: w.backups.blobs.clear(), 422),
    ("backup-not-expired", lambda w: (w.backups.blobs.clear(), add_backup(w, age=timedelta(days=29, hours=12))), 422),
    ("target-tier-matches-backup", lambda w: w.arm.add_service(STANDBY, sku="Premium"), 422),
    ("target-tier-supports-restore", lambda w: w.arm.add_service(STANDBY, sku="StandardV2"), 422),
    ("target-idle", lambda w: w.arm.add_service(STANDBY, state="Updating"), 409),
    ("target-has-identity", lambda w: w.arm.add_service(STANDBY, identity=None), 422),
    ("backup-account-cors-disabled", lambda w: setattr(w.backups, "cors_rules", 1), 422),
    ("no-restore-in-progress", lambda w: _running_restore(w, STANDBY), 409),
    ("target-exists", lambda w: w.arm.services.pop(STANDBY), 422),
])
def test_each_check_refuses_with_its_name_and_status(check: str, setup: Setup, status: int) -> None:
    w = ready_world()
    setup(w)
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    failed = {c.name for c in plan.failed_checks}
    assert check in failed, plan.checks
    assert plan.refused and plan.status == status
    assert all(c.remediation for c in plan.failed_checks)
    assert not [c for c in w.arm.calls if c[0] in ("backup", "restore")]


def _running_restore(w: World, target: str) -> None:
    from dr_core.jobs.job import Job
    from dr_core.kernel.ids import ApimResourceId

    job_id = f"restore-20261130T010000Z-{target}-0000abcd"
    w.store.put(Job(job_id=job_id, kind=JobKind.RESTORE, instance=rid(target), service_name=target,
                    state=JobState.RUNNING, trigger=Trigger.HTTP, slot=T0, created_at=T0, updated_at=T0,
                    deadline=T0 + timedelta(hours=3)))
    assert w.store.create_lock(ApimResourceId.parse(rid(target)), job_id)


def test_restoring_into_a_primary_needs_its_name_as_confirmation() -> None:
    w = ready_world()
    assert outcomes(w, RestoreRequest(target=PROD))["target-is-not-source-or-primary"] is Outcome.FAIL
    assert outcomes(w, RestoreRequest(target=PROD, confirm="apim-prodx"))["target-is-not-source-or-primary"] \
        is Outcome.FAIL
    assert outcomes(w, RestoreRequest(target=PROD, confirm=PROD))["target-is-not-source-or-primary"] is Outcome.PASS


def test_a_backup_of_another_tier_is_skipped_for_the_latest_restorable() -> None:
    w = ready_world()
    newest_premium = add_backup(w, sku="Premium", age=timedelta(minutes=5))
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    assert plan.backup is not None and plan.backup.blob_name != newest_premium and not plan.refused


def test_a_named_backup_of_another_service_is_refused() -> None:
    w = ready_world()
    other = add_backup(w, DEV)
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY, backup=other))
    assert "backup-exists" in {c.name for c in plan.failed_checks}


def test_reading_the_target_fails_with_a_named_check() -> None:
    w = ready_world()
    w.arm.get_errors = [ArmError("AuthorizationFailed", "no read on the target", 403)]
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    assert [c.name for c in plan.failed_checks] == ["target-exists"]
    assert "APIM DR Operator" in (plan.failed_checks[0].remediation or "")


def test_refused_restore_is_kept_as_a_refused_job_and_starts_nothing() -> None:
    w = ready_world()
    w.arm.add_service(STANDBY, state="Updating")
    plan, job = w.ctx.restorer().start(RestoreRequest(target=STANDBY))
    assert plan.refused and job is not None and job.state is JobState.REFUSED
    assert w.store.rows[job.job_id].error_code == "PreflightFailed" and w.queue.sent == [] and w.store.locks == {}


def test_dry_run_writes_nothing() -> None:
    w = ready_world()
    plan, job = w.ctx.restorer().start(RestoreRequest(target=STANDBY, dry_run=True))
    assert not plan.refused and job is None and w.store.rows == {} and w.queue.sent == [] and w.store.locks == {}


def test_a_passing_restore_takes_the_lock_and_enqueues_its_start() -> None:
    w = ready_world()
    _, job = w.ctx.restorer().start(RestoreRequest(target=STANDBY))
    assert job is not None and job.state is JobState.PLANNED and job.source_instance == rid(PROD)
    assert w.queue.ops() == [("start", 0)] and next(iter(w.store.locks.values()))[0] == job.job_id
    again, _ = w.ctx.restorer().start(RestoreRequest(target=STANDBY))
    assert again.refused and "no-restore-in-progress" in {c.name for c in again.failed_checks}


@pytest.mark.parametrize(("reference", "error"), [
    ("nope", UnknownInstanceError),
    ("/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/a", InvalidRequestError),
    ("x" * 401, InvalidRequestError),
])
def test_bad_targets_name_the_field(reference: str, error: type[Exception]) -> None:
    w = ready_world()
    with pytest.raises(error) as caught:
        w.ctx.restorer().plan(RestoreRequest(target=reference))
    assert "target" in str(caught.value)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "target"),
    ({"target": ""}, "target"),
    ({"target": 5}, "target"),
    ({"target": "a", "dryRun": "yes"}, "dryRun"),
    ({"target": "a", "backup": "../../etc/passwd"}, "backup"),
    ({"target": "a", "confirm": "x" * 101}, "confirm"),
    ({"target": "a", "extra": 1}, "extra"),
])
def test_request_fields_are_validated_by_name(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_restore_request(body)
    assert field in caught.value.fields


def test_a_primary_without_a_standby_restores_its_own_backup() -> None:
    w = world(settings([rid(PROD)]))
    w.arm.add_service(PROD)
    add_backup(w)
    plan = w.ctx.restorer().plan(RestoreRequest(target=PROD, confirm=PROD))
    assert plan.source == plan.target and not plan.refused


def test_backups_labelled_before_the_catalog_tag_are_named_with_what_to_do_and_nothing_is_written() -> None:
    w = ready_world()
    w.backups.blobs.clear()
    older = add_backup(w)
    blob = w.backups.blobs[("apim-backups", older)]
    blob.tags = {k: v for k, v in blob.tags.items() if k != "apimdr_catalog"}  # labelled by an older version
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    (check,) = [c for c in plan.failed_checks if c.name == "backup-exists"]
    assert "1 backup(s) of apim-prod were labelled by an older apim-dr version" in (check.remediation or "")
    assert "apim-dr backups relabel --service apim-prod" in (check.remediation or "")
    assert "set_tags" not in w.backups.calls  # a preflight changes nothing
    w.backups.blobs.clear()
    plan = w.ctx.restorer().plan(RestoreRequest(target=STANDBY))
    (check,) = [c for c in plan.failed_checks if c.name == "backup-exists"]
    assert (check.remediation or "").startswith("Start a backup of the source first")
