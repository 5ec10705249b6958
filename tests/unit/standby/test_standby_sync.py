"""Standby sync on in-memory fakes: every branch of the follower, the record, announcements and the catch-up."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dr_core.jobs.job import Trigger
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import ArmError
from dr_core.kernel.phases import JobState
from dr_core.ports import PollResult, RecordKind
from dr_core.records import record_key
from dr_core.restore.request import RestoreRequest
from dr_core.standby.record import StandbyRecord
from tests.unit.continuity_support import (
    CONTAINER,
    PROD_CONFIG,
    STANDBY,
    add_backup,
    continuity_world,
    drive_restore,
    restore_jobs,
    succeed_backup,
)
from tests.unit.fakes import T0, World, rid

KEY = record_key(rid(STANDBY))


def record(w: World) -> dict:
    saved = w.store.get_record(RecordKind.STANDBY, KEY)
    assert saved is not None, "no standby record"
    return saved.data


def test_a_successful_backup_is_restored_into_the_standby_and_the_record_follows_it() -> None:
    w = continuity_world()
    backup = succeed_backup(w)
    (sync,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    assert sync.instance == rid(STANDBY) and sync.source_instance == rid("apim-prod")
    assert sync.blob_name == backup.blob_name and sync.state is JobState.PLANNED
    data = record(w)
    assert data["lastSucceeded"] is None and data["state"] == "Planned" and data["jobId"] == sync.job_id
    assert data["backup"] == backup.blob_name and data["backupCreatedAt"] == iso(T0)
    assert data["primary"] == rid("apim-prod") and data["standby"] == rid(STANDBY) and data["error"] is None
    # The manifest was written first, from the source's configuration.
    manifest = w.backups.get_json(CONTAINER, backup.blob_name + ".manifest.json")
    assert manifest is not None and manifest["apis"] == list(PROD_CONFIG.apis)

    w.clock.advance(3600)
    ended = drive_restore(w, sync.job_id)
    assert ended.state is JobState.SUCCEEDED and ended.finished_at is not None
    data = record(w)
    assert data["state"] == "Succeeded" and data["finishedAt"] == iso(ended.finished_at)
    assert data["lastSucceeded"] == {"backup": backup.blob_name, "backupCreatedAt": iso(T0),
                                     "finishedAt": iso(ended.finished_at)}
    assert StandbyRecord.from_json("k", data).lag_hours(w.clock.now()) == pytest.approx(1 + 600 / 3600, abs=0.01)
    assert w.notifier.events == [] and w.notifier.announced == []


def test_without_opt_in_nothing_is_restored() -> None:
    w = continuity_world(sync=False)
    succeed_backup(w)
    assert restore_jobs(w) == [] and w.store.get_record(RecordKind.STANDBY, KEY) is None


def test_the_follower_is_idempotent() -> None:
    w = continuity_world()
    backup = succeed_backup(w)
    sync = w.ctx.standby_sync()  # the worker ran it once already (succeed_backup): the follower again, twice
    w.store.locks.clear()  # not the restore lock's doing: the record says this backup is already on its way
    sync.after(backup)
    sync.after(backup)
    assert len(restore_jobs(w, Trigger.STANDBY_SYNC)) == 1
    assert sync.sync(w.ctx.settings.instances[0], backup=backup.blob_name).outcome == "already"
    assert record(w)["lastSkipped"] is None  # never "busy": the record said it was on its way


def test_a_standby_that_is_a_primary_is_refused_by_name_and_announced_once() -> None:
    # Discovery makes the standby a protected instance after the settings were checked.
    w = continuity_world(discover=True)
    w.arm.add_service(STANDBY, tags={"apim-dr:backup": "true"})
    succeed_backup(w)
    assert restore_jobs(w) == [] and ("restore", STANDBY) not in w.arm.calls
    data = record(w)
    assert data["state"] == "Refused" and data["error"]["code"] == "StandbyIsPrimary"
    assert STANDBY in data["error"]["message"] and data["jobId"] is None
    (event,) = w.notifier.events
    assert event.kind == "standby-sync-refused" and "StandbyIsPrimary" in event.text
    # The next backup is refused too, without a second announcement.
    w.clock.advance(86400)
    succeed_backup(w)
    assert record(w)["state"] == "Refused" and len(w.notifier.events) == 1
    w.ctx.standby_sync().catch_up()
    assert len(w.notifier.events) == 1


def test_a_preflight_refusal_is_recorded_with_its_checks() -> None:
    w = continuity_world()
    w.arm.add_service(STANDBY, sku="Premium")
    succeed_backup(w)
    (refused,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    assert refused.state is JobState.REFUSED
    data = record(w)
    assert data["state"] == "Refused" and data["jobId"] == refused.job_id
    assert data["error"]["code"] == "PreflightFailed" and "target-tier-matches-backup" in data["error"]["message"]
    assert data["error"]["remediation"] and data["lastSucceeded"] is None
    assert [e.kind for e in w.notifier.events] == ["standby-sync-refused"]


def test_a_busy_standby_skips_the_backup_with_a_reason() -> None:
    w = continuity_world()
    first = succeed_backup(w)
    (running,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    w.clock.advance(3600)
    second = succeed_backup(w)
    assert second.blob_name != first.blob_name
    assert len(restore_jobs(w, Trigger.STANDBY_SYNC)) == 1  # no second restore piled up behind the first
    data = record(w)
    assert data["state"] == "Planned" and data["backup"] == first.blob_name
    assert data["lastSkipped"]["backup"] == second.blob_name and running.job_id in data["lastSkipped"]["reason"]
    # Once the first sync ended, the hourly catch-up syncs the newest backup.
    drive_restore(w, running.job_id)
    outcome, = w.ctx.standby_sync().catch_up()
    assert outcome.outcome == "started"
    assert record(w)["backup"] == second.blob_name and len(restore_jobs(w, Trigger.STANDBY_SYNC)) == 2


def test_an_operator_restore_into_the_standby_also_counts_as_busy() -> None:
    w = continuity_world()
    backup = add_backup(w)
    _, job = w.ctx.restorer().start(RestoreRequest(target=STANDBY))
    assert job is not None and job.state is JobState.PLANNED
    outcome = w.ctx.standby_sync().sync(w.ctx.settings.instances[0], backup=backup)
    assert outcome.outcome == "busy" and outcome.job_id == job.job_id
    assert restore_jobs(w) == [w.store.rows[job.job_id]]


def test_a_failed_sync_keeps_what_the_standby_last_got_and_is_not_retried_for_that_backup() -> None:
    w = continuity_world()
    first = succeed_backup(w)
    (sync,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    drive_restore(w, sync.job_id)
    w.clock.advance(86400)
    second = succeed_backup(w)
    retry = next(j for j in restore_jobs(w, Trigger.STANDBY_SYNC) if j.job_id != sync.job_id)
    failed = drive_restore(w, retry.job_id, outcome=PollResult(
        "failed", 0, error=ArmError("RestoreFailed", "Cannot restore: storage unreachable", 400)))
    assert failed.state is JobState.FAILED
    data = record(w)
    assert data["state"] == "Failed" and data["backup"] == second.blob_name
    assert data["error"]["code"] == "RestoreFailed" and data["lastSucceeded"]["backup"] == first.blob_name
    assert w.notifier.announced == [retry.job_id] and w.notifier.events == []  # the job's own announcement
    assert w.ctx.standby_sync().catch_up() == []
    assert len(restore_jobs(w, Trigger.STANDBY_SYNC)) == 2


def test_catch_up_syncs_a_standby_whose_follower_never_ran_and_follows_its_job() -> None:
    w = continuity_world()
    newest = add_backup(w, age=timedelta(hours=1))
    add_backup(w, age=timedelta(hours=30))
    sync = w.ctx.standby_sync()
    (outcome,) = sync.catch_up()
    assert outcome.outcome == "started"
    (job,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    assert job.blob_name == newest
    # Still running: the catch-up waits for it, and starts nothing else.
    assert [o.outcome for o in sync.catch_up()] == ["busy"]
    # The restore ends, but its follower is lost (a crash): the catch-up moves the record along.
    saved = w.store.rows[job.job_id]
    saved.begin_start(w.clock.now())
    saved.record_started(w.clock.now(), location="https://management.example/op/x", delay=5)
    saved.succeed(w.clock.now())
    w.store.rows[job.job_id] = saved
    w.store.locks.clear()
    assert sync.catch_up() == []
    data = record(w)
    assert data["state"] == "Succeeded" and data["lastSucceeded"]["backup"] == newest
    assert sync.catch_up() == [] and len(restore_jobs(w)) == 1


def test_catch_up_marks_a_record_whose_job_vanished() -> None:
    w = continuity_world()
    succeed_backup(w)
    (job,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    del w.store.rows[job.job_id]
    w.store.locks.clear()
    w.ctx.standby_sync().catch_up()
    data = record(w)
    assert data["state"] == "Failed" and data["error"]["code"] == "SyncJobMissing"


def test_a_refusal_announcement_that_failed_is_retried_by_the_catch_up() -> None:
    w = continuity_world()
    w.arm.add_service(STANDBY, sku="Premium")
    w.notifier.fail = True
    succeed_backup(w)
    assert record(w)["state"] == "Refused" and not record(w).get("announced")
    w.notifier.fail = False
    w.ctx.standby_sync().catch_up()
    assert len(w.notifier.events) == 1 and record(w)["announced"] == "Refused"
    w.ctx.standby_sync().catch_up()
    assert len(w.notifier.events) == 1


def test_a_success_after_refusals_re_arms_the_announcement() -> None:
    w = continuity_world()
    w.arm.add_service(STANDBY, sku="Premium")
    succeed_backup(w)
    w.arm.add_service(STANDBY)
    w.clock.advance(3600)
    succeed_backup(w)
    sync = next(j for j in restore_jobs(w, Trigger.STANDBY_SYNC) if j.state is JobState.PLANNED)
    drive_restore(w, sync.job_id)
    assert record(w)["state"] == "Succeeded" and record(w)["announced"] is None
    w.arm.add_service(STANDBY, sku="Premium")
    w.clock.advance(3600)
    succeed_backup(w)
    assert [e.kind for e in w.notifier.events] == ["standby-sync-refused"] * 2


@pytest.mark.parametrize(("data", "expected"), [
    ({}, None),
    ({"lastSucceeded": None}, None),
    ({"lastSucceeded": {"backupCreatedAt": "not a time"}}, None),
    ({"lastSucceeded": {"backupCreatedAt": iso(T0 - timedelta(hours=30))}}, 30.0),
    ({"lastSucceeded": {"backupCreatedAt": iso(T0 + timedelta(hours=1))}}, 0.0),  # clock skew: never negative
])
def test_lag_is_the_age_of_the_backup_last_restored(data: dict, expected: float | None) -> None:
    record = StandbyRecord.from_json("k", data)
    assert record.lag_hours(T0) == expected
    assert record.view_json(T0)["lagHours"] == expected


def test_the_standbys_view_lists_each_record_with_its_lag() -> None:
    w = continuity_world()
    succeed_backup(w)
    (sync,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    drive_restore(w, sync.job_id)
    (record,) = w.ctx.standby_sync().standbys()
    view = record.view_json(w.clock.now())
    assert view["standby"] == rid(STANDBY) and view["state"] == "Succeeded" and view["lagHours"] is not None
    assert "announced" not in view


def test_each_record_change_is_one_structured_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from dr_core.standby.sync import LOG_FIELDS, LOG_PREFIX

    w = continuity_world()
    caplog.set_level("INFO", logger="apim_dr.events")
    succeed_backup(w)
    (sync,) = restore_jobs(w, Trigger.STANDBY_SYNC)
    drive_restore(w, sync.job_id)
    lines = [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
             if r.getMessage().startswith(LOG_PREFIX)]
    assert [line["state"] for line in lines] == ["Planned", "Succeeded"]
    assert all(set(line) == set(LOG_FIELDS) and line["jobId"] == sync.job_id for line in lines)
    # The last line carries what the workbook computes the lag from.
    assert lines[-1]["lastSucceeded"]["backupCreatedAt"] == record(w)["lastSucceeded"]["backupCreatedAt"]
