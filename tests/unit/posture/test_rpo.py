"""The RPO monitor on in-memory fakes: every state boundary, the record, and announcements exactly once."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags, entry_from_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import AzureUnavailableError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState, RpoState
from dr_core.kernel.settings import Posture, ProtectedInstance, StorageAccessType
from dr_core.ports import RecordKind, StoredRecord
from dr_core.posture.record import rpo_key
from dr_core.posture.rpo import LOG_PREFIX, RpoFollower, RpoMonitor, assess
from tests.unit.fakes import T0, World, rid, settings, world

PROD, DEV = "apim-prod", "apim-dev"
TARGET = timedelta(hours=26)


def instance(name: str = PROD, *, rpo_hours: int = 26) -> ProtectedInstance:
    return ProtectedInstance(ApimResourceId.parse(rid(name)), "apim-backups", StorageAccessType.SYSTEM_ASSIGNED,
                             posture=Posture(rpo_hours=rpo_hours))


def add_backup(w: World, service: str = PROD, *, created: datetime, sku: str = "Standard") -> str:
    name = backup_blob_name(service, created)
    w.backups.add("apim-backups", name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def entry(created: datetime, *, sku: str = "Standard", service: str = PROD):
    name = backup_blob_name(service, created)
    found = entry_from_tags("apim-backups", name, backup_tags(service_name=service, sku=sku, created=created,
                                                               job_id="backup-x"))
    assert found is not None
    return found


def monitor(w: World) -> RpoMonitor:
    return w.ctx.rpo_monitor()


def record(w: World, name: str = PROD) -> dict[str, Any]:
    found = w.store.get_record(RecordKind.RPO, rpo_key(ApimResourceId.parse(rid(name))))
    assert found is not None, f"no rpo record of {name}"
    return found.data


def rpo_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
            if r.getMessage().startswith(LOG_PREFIX)]


# -- state boundaries ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fraction", "state"), [
    (0.0, RpoState.OK), (0.5, RpoState.OK), (0.799, RpoState.OK), (0.8, RpoState.AT_RISK),
    (0.999, RpoState.AT_RISK), (1.0, RpoState.BREACHED), (1.5, RpoState.BREACHED),
])
@pytest.mark.parametrize("rpo_hours", [26, 5, 696])
def test_age_against_the_target(fraction: float, state: RpoState, rpo_hours: int) -> None:
    now = T0 + timedelta(hours=rpo_hours) * fraction
    result = assess(instance(rpo_hours=rpo_hours), [entry(T0)], now=now, margin=timedelta(0), watched_since=now)
    assert result.state is state, result.reason
    if now - T0 < timedelta(days=30):  # 696 h x 1.5 is past the 30 days: breached for lack of a restorable one
        assert result.newest is not None and result.newest.created == T0
        assert f"target {rpo_hours} h" in result.reason


@pytest.mark.parametrize(("boundary", "below", "at"), [
    (timedelta(hours=20, minutes=48), RpoState.OK, RpoState.AT_RISK),  # 80 % of 26 h
    (TARGET, RpoState.AT_RISK, RpoState.BREACHED),
])
def test_boundaries_to_the_second(boundary: timedelta, below: RpoState, at: RpoState) -> None:
    def state_at(age: timedelta) -> RpoState:
        return assess(instance(), [entry(T0)], now=T0 + age, margin=timedelta(0), watched_since=T0).state

    assert (state_at(boundary - timedelta(seconds=1)), state_at(boundary)) == (below, at)


def test_since_is_when_the_age_crossed_the_threshold() -> None:
    created = T0 - timedelta(hours=30)
    assert assess(instance(), [entry(created)], now=T0, margin=timedelta(0), watched_since=T0).since == \
        created + TARGET
    created = T0 - timedelta(hours=21)
    assert assess(instance(), [entry(created)], now=T0, margin=timedelta(0), watched_since=T0).since == \
        created + timedelta(hours=20, minutes=48)


def test_no_backup_ever_is_at_risk_for_one_target_then_breached() -> None:
    watched = T0 - TARGET + timedelta(seconds=1)
    fresh = assess(instance(), [], now=T0, margin=timedelta(0), watched_since=watched)
    assert fresh.state is RpoState.AT_RISK and "no backup yet" in fresh.reason and fresh.newest is None
    late = assess(instance(), [], now=T0, margin=timedelta(0), watched_since=T0 - TARGET)
    assert late.state is RpoState.BREACHED and "no backup at all" in late.reason


@pytest.mark.parametrize(("entries", "why"), [
    ([entry(T0 - timedelta(days=31)), entry(T0 - timedelta(days=40))], "expired"),
    ([entry(T0 - timedelta(days=29, hours=12))], "within the configured margin"),
    ([entry(T0 - timedelta(hours=1), sku="Consumption")], "Consumption tier cannot be restored"),
    ([entry(T0 - timedelta(hours=1), sku="")], "unrecorded tier cannot be restored"),
])
def test_no_restorable_backup_is_breached_and_says_why(entries: list[Any], why: str) -> None:
    result = assess(instance(), entries, now=T0, margin=timedelta(hours=24), watched_since=T0)
    assert result.state is RpoState.BREACHED and result.newest is None
    assert why in result.reason and f"{len(entries)} backups" in result.reason


def test_the_newest_restorable_backup_counts_not_the_newest() -> None:
    older = T0 - timedelta(hours=2)
    result = assess(instance(), [entry(T0 - timedelta(minutes=5), sku="StandardV2"), entry(older)], now=T0,
                    margin=timedelta(0), watched_since=T0)
    assert result.state is RpoState.OK and result.newest is not None and result.newest.created == older


def test_a_backup_from_the_future_counts_as_new() -> None:
    result = assess(instance(), [entry(T0 + timedelta(minutes=3))], now=T0, margin=timedelta(0), watched_since=T0)
    assert result.state is RpoState.OK and "0.0 h old" in result.reason


# -- the monitor: records, log lines ----------------------------------------------------------------------

def test_first_run_writes_the_record_contract_and_one_log_line_per_instance(
        caplog: pytest.LogCaptureFixture) -> None:
    w = world()
    name = add_backup(w, created=T0 - timedelta(hours=3))
    with caplog.at_level(logging.INFO, logger="apim_dr.rpo"):
        report = monitor(w).check_all()
    assert {r.state for r in report.results} == {RpoState.OK, RpoState.AT_RISK}
    data = record(w)
    assert data == {
        "instance": rid(PROD), "state": "ok", "since": iso(T0 - timedelta(hours=3)), "targetHours": 26,
        "newestRestorable": {"blobName": name, "createdAt": iso(T0 - timedelta(hours=3))},
        "announced": None, "watchedSince": iso(T0),
    }
    dev = record(w, DEV)
    assert dev["state"] == "at-risk" and dev["newestRestorable"] is None and dev["since"] == iso(T0)
    lines = {line["serviceName"]: line for line in rpo_lines(caplog)}
    assert set(lines) == {PROD, DEV}
    assert lines[PROD]["state"] == "ok" and lines[PROD]["previous"] is None and lines[PROD]["ageHours"] == 3.0
    assert lines[DEV]["newestRestorable"] is None and "no backup yet" in lines[DEV]["reason"]
    assert w.notifier.events == []


def test_nothing_is_written_or_logged_when_nothing_changed(caplog: pytest.LogCaptureFixture) -> None:
    w = world()
    add_backup(w, created=T0 - timedelta(hours=3))
    add_backup(w, DEV, created=T0 - timedelta(hours=3))
    monitor(w).check_all()
    puts = w.store.record_puts
    w.clock.advance(3600)
    with caplog.at_level(logging.INFO, logger="apim_dr.rpo"):
        monitor(w).check_all()
    assert w.store.record_puts == puts and rpo_lines(caplog) == []


def test_each_state_change_is_logged_with_its_previous_state(caplog: pytest.LogCaptureFixture) -> None:
    w = world(settings([rid(PROD)]))
    add_backup(w, created=T0)
    with caplog.at_level(logging.INFO, logger="apim_dr.rpo"):
        for hours in (0, 21, 22, 27, 28):
            w.clock.set(T0 + timedelta(hours=hours))
            monitor(w).check_all()
    lines = rpo_lines(caplog)
    assert [(line["previous"], line["state"]) for line in lines] == [
        (None, "ok"), ("ok", "at-risk"), ("at-risk", "breached")]
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith(LOG_PREFIX)]
    assert levels == [logging.INFO, logging.INFO, logging.WARNING]
    assert record(w)["since"] == iso(T0 + TARGET)


def test_per_instance_targets_apply() -> None:
    w = world(settings([{"resourceId": rid(PROD), "rpoHours": 4}, rid(DEV)]))
    add_backup(w, created=T0 - timedelta(hours=5))
    add_backup(w, DEV, created=T0 - timedelta(hours=5))
    monitor(w).check_all()
    assert (record(w)["state"], record(w)["targetHours"]) == ("breached", 4)
    assert (record(w, DEV)["state"], record(w, DEV)["targetHours"]) == ("ok", 26)


# -- announcements -----------------------------------------------------------------------------------------

def breach_world() -> World:
    w = world(settings([{"resourceId": rid(PROD), "alias": "prod"}]))
    add_backup(w, created=T0)
    monitor(w).check_all()
    w.clock.set(T0 + timedelta(hours=27))
    return w


def test_a_breach_is_announced_once_and_a_recovery_once() -> None:
    w = breach_world()
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached"]
    event = w.notifier.events[0]
    assert event.severe and "apim-prod" in event.text and "27.0 h old (target 26 h)" in event.text
    details = event.payload()["apimDr"]
    assert details["event"] == "rpo-breached" and details["instance"] == rid(PROD) and details["alias"] == "prod"
    assert details["ageHours"] == 27.0 and "apim-dr backup start --instance prod" in details["remediation"]
    assert record(w)["announced"] == "breached" and "announcing" not in record(w)
    # Later runs, still breached: nothing new.
    for _ in range(3):
        w.clock.advance(15 * 60)
        monitor(w).check_all()
    assert len(w.notifier.events) == 1
    # A new backup: recovered, announced once.
    add_backup(w, created=w.clock.now())
    monitor(w).check_all()
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached", "rpo-recovered"]
    assert not w.notifier.events[1].severe and record(w)["announced"] == "ok"
    # Ok -> at-risk -> ok is never announced; a second breach is.
    w.clock.advance(22 * 3600)
    monitor(w).check_all()
    assert record(w)["state"] == "at-risk" and len(w.notifier.events) == 2
    w.clock.advance(5 * 3600)
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events][-1] == "rpo-breached" and len(w.notifier.events) == 3


def test_recovery_to_at_risk_is_announced_too() -> None:
    w = breach_world()
    monitor(w).check_all()
    add_backup(w, created=w.clock.now() - timedelta(hours=23))  # restorable but already over 80 %
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached", "rpo-recovered"]
    assert record(w)["announced"] == "at-risk" and "(at-risk)" in w.notifier.events[1].text


def test_an_instance_breached_when_first_seen_is_announced() -> None:
    w = world(settings([rid(PROD)]))
    add_backup(w, created=T0 - timedelta(days=3))
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached"]


def test_a_failed_announcement_is_retried_on_the_next_run_and_then_made_once() -> None:
    w = breach_world()
    w.notifier.fail = True
    report = monitor(w).check_all()
    assert w.notifier.events == [] and report.announced == []
    assert record(w)["state"] == "breached" and record(w)["announced"] is None
    assert "announcing" not in record(w), "a failed announcement releases its claim"
    w.notifier.fail = False
    w.clock.advance(15 * 60)
    monitor(w).check_all()
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached"]


def test_a_failed_recovery_announcement_is_retried() -> None:
    w = breach_world()
    monitor(w).check_all()
    add_backup(w, created=w.clock.now())
    w.notifier.fail = True
    monitor(w).check_all()
    assert record(w)["state"] == "ok" and record(w)["announced"] == "breached"
    w.notifier.fail = False
    monitor(w).check_all()
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached", "rpo-recovered"]


def test_another_runner_announcing_is_left_alone_until_its_claim_lapses() -> None:
    w = breach_world()
    key = rpo_key(ApimResourceId.parse(rid(PROD)))
    current = w.store.get_record(RecordKind.RPO, key)
    assert current is not None
    current.data["announcing"] = {"state": "breached", "until": iso(w.clock.now() + timedelta(minutes=2))}
    w.store.put_record(current)
    monitor(w).check_all()
    assert w.notifier.events == [] and "announcing" in record(w)
    w.clock.advance(3 * 60)
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached"] and "announcing" not in record(w)


def test_unknown_announces_nothing_keeps_the_last_known_backup_and_does_not_reset_a_breach(
        caplog: pytest.LogCaptureFixture) -> None:
    w = breach_world()
    monitor(w).check_all()
    before = record(w)
    w.backups.find_errors[PROD] = AzureUnavailableError("the backup account could not be reached")
    with caplog.at_level(logging.INFO, logger="apim_dr.rpo"):
        report = monitor(w).check_all()
    assert report.results[0].state is RpoState.UNKNOWN and report.errors == []
    after = record(w)
    assert after["state"] == "unknown" and after["newestRestorable"] == before["newestRestorable"]
    assert after["announced"] == "breached"
    line = rpo_lines(caplog)[-1]
    assert line["state"] == "unknown" and "could not be reached" in line["reason"]
    del w.backups.find_errors[PROD]
    monitor(w).check_all()
    assert record(w)["state"] == "breached" and len(w.notifier.events) == 1


def test_a_conflicting_write_reads_again_and_never_announces_twice() -> None:
    w = breach_world()
    w.store.conflict_next_record_put = True
    monitor(w).check_all()
    assert [e.kind for e in w.notifier.events] == ["rpo-breached"] and record(w)["announced"] == "breached"
    assert w.backups.calls.count("find") == 3  # first run, then this run twice (the catalog is read again)


def test_a_conflict_after_the_announcement_still_records_it() -> None:
    w = breach_world()
    mon = monitor(w)
    real_announce = w.notifier.announce_event

    def announce_then_conflict(event: Any) -> None:
        real_announce(event)
        w.store.conflict_next_record_put = True

    w.notifier.announce_event = announce_then_conflict  # type: ignore[method-assign]
    mon.check_all()
    assert record(w)["announced"] == "breached"
    monitor(w).check_all()
    assert len(w.notifier.events) == 1


def test_one_failing_instance_does_not_stop_the_others() -> None:
    w = world()
    add_backup(w, DEV, created=T0)
    w.backups.find_errors[PROD] = RuntimeError("a defect")
    report = monitor(w).check_all()
    by_name = {r.instance: r for r in report.results}
    assert by_name[rid(PROD)].error == "RuntimeError" and by_name[rid(PROD)].state is RpoState.UNKNOWN
    assert by_name[rid(DEV)].state is RpoState.OK and record(w, DEV)["state"] == "ok"


def test_records_unreadable_fails_the_run() -> None:
    w = world()
    w.store.record_errors[RecordKind.RPO] = AzureUnavailableError("jobs table unreachable")
    with pytest.raises(AzureUnavailableError):
        monitor(w).check_all()


def test_inventory_problems_are_reported() -> None:
    w = world(settings([rid(PROD), "not-a-resource-id"]))
    report = monitor(w).check_all()
    assert len(report.results) == 1 and "APIM_DR_INSTANCES[1]" in report.problems[0]


def test_many_instances_checked_in_parallel_each_once() -> None:
    names = [f"apim-{i:03d}" for i in range(40)]
    w = world(settings([rid(n) for n in names]))
    for n in names[::2]:
        add_backup(w, n, created=T0)
    report = monitor(w).check_all()
    assert len(report.results) == 40 and w.backups.calls.count("find") == 40
    assert report.count(RpoState.OK) == 20 and report.count(RpoState.AT_RISK) == 20


# -- the follower ----------------------------------------------------------------------------------------

def backup_job(w: World, name: str, *, service: str = PROD, state: JobState = JobState.SUCCEEDED,
               kind: JobKind = JobKind.BACKUP) -> Job:
    now = w.clock.now()
    return Job(job_id=f"{kind.value}-20261130T020000Z-{service}-0000abcd", kind=kind, instance=rid(service),
               service_name=service, state=state, trigger=Trigger.SCHEDULE, slot=now, created_at=now, updated_at=now,
               deadline=now, container="apim-backups", blob_name=name)


def test_the_follower_announces_a_recovery_at_once_even_before_the_tag_index_sees_the_backup() -> None:
    w = breach_world()
    monitor(w).check_all()
    name = add_backup(w, created=w.clock.now())
    w.backups.unindexed.add(name)
    follower = RpoFollower(monitor(w), w.ctx.settings)
    follower.after(backup_job(w, name))
    assert [e.kind for e in w.notifier.events] == ["rpo-breached", "rpo-recovered"]
    assert record(w)["newestRestorable"]["blobName"] == name
    follower.after(backup_job(w, name))  # idempotent
    assert len(w.notifier.events) == 2


@pytest.mark.parametrize(("state", "kind"), [(JobState.FAILED, JobKind.BACKUP), (JobState.TIMED_OUT, JobKind.BACKUP),
                                             (JobState.SUCCEEDED, JobKind.RESTORE)])
def test_the_follower_ignores_other_jobs(state: JobState, kind: JobKind) -> None:
    w = breach_world()
    calls, puts = list(w.backups.calls), w.store.record_puts
    RpoFollower(monitor(w), w.ctx.settings).after(backup_job(w, "x", state=state, kind=kind))
    assert (w.backups.calls, w.store.record_puts, w.notifier.events) == (calls, puts, [])


def test_the_follower_checks_a_discovered_instance_with_the_default_target() -> None:
    w = world(settings([rid(PROD)], APIM_DR_DISCOVERY_SUBSCRIPTIONS="00000000-0000-0000-0000-0000000000cc",
                       APIM_DR_RPO_HOURS="10"))
    name = add_backup(w, "apim-tagged", created=T0 - timedelta(hours=9))
    RpoFollower(monitor(w), w.ctx.settings).after(backup_job(w, name, service="apim-tagged"))
    data = record(w, "apim-tagged")
    assert (data["state"], data["targetHours"]) == ("at-risk", 10)
    assert w.arm.calls == [], "the follower makes no ARM call"


def test_the_worker_runs_the_follower_after_a_backup_succeeds() -> None:
    from dr_core.ports import PollResult

    w = breach_world()
    monitor(w).check_all()
    job, _ = w.ctx.planner().request_backup("prod")
    worker = w.ctx.worker()
    w.arm.add_service(PROD)
    worker.handle(w.queue.take()[0][0].encode())
    w.backups.add("apim-backups", job.blob_name, created=w.clock.now())
    w.arm.poll_answers.append(PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}}))
    for message, _ in w.queue.take():
        worker.handle(message.encode())
    assert w.store.rows[job.job_id].state is JobState.SUCCEEDED
    assert [e.kind for e in w.notifier.events] == ["rpo-breached", "rpo-recovered"]


def test_record_written_by_an_older_version_is_read_defensively() -> None:
    w = world(settings([rid(PROD)]))
    add_backup(w, created=T0 - timedelta(hours=1))
    key = rpo_key(ApimResourceId.parse(rid(PROD)))
    w.store.put_record(StoredRecord(RecordKind.RPO, key, {"state": 7, "since": "yesterday", "watchedSince": [],
                                                 "announced": {"x": 1}, "newestRestorable": "b"}))
    monitor(w).check_all()
    data = record(w)
    assert data["state"] == "ok" and data["announced"] is None and data["watchedSince"] == iso(T0)


def test_the_rpo_line_carries_exactly_the_fields_the_workbook_and_alert_read(caplog) -> None:
    from tests.infra.bicep_model import LOG_LINE_FIELDS

    w = world()
    add_backup(w, created=T0 - timedelta(hours=3))  # so newestRestorable is an object, its fields checked too
    with caplog.at_level(logging.INFO):
        w.ctx.rpo_monitor().check_all()
    lines = [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records
             if r.getMessage().startswith("APIMDR_RPO ")]
    assert lines
    flat = set()
    for line in lines:
        for key, value in line.items():
            flat.add(key)
            if isinstance(value, dict):
                flat.update(f"{key}.{k}" for k in value)
    assert flat <= LOG_LINE_FIELDS["APIMDR_RPO"]
    assert {"instance", "state", "since", "targetHours", "newestRestorable.createdAt"} <= flat


# -- backups labelled before the catalog tag (upgrades) ------------------------------------------------

def test_backups_labelled_before_the_catalog_tag_are_relabelled_instead_of_a_false_breach() -> None:
    w = world(settings([{"resourceId": rid(PROD), "alias": "prod"}]))
    name = add_backup(w, created=w.clock.now() - timedelta(hours=3))
    blob = w.backups.blobs[("apim-backups", name)]
    blob.tags = {k: v for k, v in blob.tags.items() if k != "apimdr_catalog"}  # labelled by an older version
    assert w.backups.find("apim-backups", PROD) == []
    # Without the relabel: "no backup at all", at risk now and breached after one target's grace.
    report = monitor(w).check_all()
    assert report.count(RpoState.OK) == 1 and w.notifier.events == []
    assert record(w)["state"] == "ok" and record(w)["newestRestorable"]["blobName"] == name
    assert [e.blob_name for e in w.backups.find("apim-backups", PROD)] == [name]
    assert w.backups.calls.count("set_tags") == 1
    # From now on the catalog query finds it; an instance that reads ok never pays for the older query.
    monitor(w).check_all()
    assert w.backups.calls.count("set_tags") == 1 and w.backups.calls.count("finished_names") == 1


def test_an_instance_that_stays_breached_looks_for_older_backups_once() -> None:
    w = breach_world()
    w.backups.calls.clear()
    for _ in range(3):
        monitor(w).check_all()
        w.clock.advance(15 * 60)
    assert record(w)["state"] == "breached"
    assert w.backups.calls.count("finished_names") == 1 and w.backups.calls.count("find") == 3
