"""The interim /api/status builder behind the status page, on fakes; and GET /api/dashboard through the Api."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from dr_core.api import ApiResponse, guarded
from dr_core.catalog import backup_blob_name, backup_tags
from dr_core.clock import iso
from dr_core.dashboard import page_headers
from dr_core.errors import AzureUnavailableError
from dr_core.jobs import Job, JobKind, JobState
from dr_core.status_basic import rpo_state
from dr_core.store import Record, record_key
from tests.unit.fakes import SUB, T0, World, rid, settings, world

PROD, DEV, STANDBY = "apim-prod", "apim-dev", "apim-dr"
_ids = itertools.count(1)


def stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"  # the catalog's own format


def add_backup(w: World, service: str = PROD, *, age: timedelta, sku: str = "Standard") -> str:
    created = T0 - age
    name = backup_blob_name(service, created)
    w.backups.add("apim-backups", name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def add_job(w: World, kind: JobKind, state: JobState, *, service: str = PROD, ended: datetime,
            source: str | None = None, code: str | None = "BackupFailed") -> Job:
    job = Job(job_id=f"{kind.value}-{ended:%Y%m%dT%H%M%SZ}-{service}-{next(_ids):08x}", kind=kind,
              instance=rid(service), service_name=service, state=state, trigger="schedule", slot=ended,
              created_at=ended, updated_at=ended, deadline=ended + timedelta(hours=2), finished_at=ended,
              source_instance=rid(source) if source else None)
    if state in (JobState.FAILED, JobState.TIMED_OUT):
        job.error_code, job.error_message, job.remediation = code, f"{kind.value} broke", "Do the thing."
    return w.store.put(job)


def build(w: World) -> dict[str, Any]:
    return w.ctx.basic_status().build()


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["serviceName"]: i for i in report["instances"]}


@pytest.mark.parametrize(("age", "any_backup", "state"), [
    (None, False, "unknown"), (None, True, "breached"), (0.0, True, "ok"), (20.7, True, "ok"),
    (20.8, True, "at-risk"), (25.9, True, "at-risk"), (26.0, True, "breached"), (500.0, True, "breached"),
])
def test_rpo_state(age: float | None, any_backup: bool, state: str) -> None:
    assert rpo_state(age, 26, any_backup=any_backup) == state


def test_the_document_has_the_status_contract_shape() -> None:
    w = world()
    add_backup(w, age=timedelta(hours=3))
    report = build(w)
    assert set(report) == {"generatedAt", "instances", "problems"}
    assert report["generatedAt"] == iso(T0)
    prod = by_name(report)[PROD]
    assert set(prod) == {"instance", "serviceName", "alias", "rpo", "standby", "lastDrill", "openFailures",
                         "backups"}
    assert (prod["instance"], prod["alias"]) == (rid(PROD), "prod")
    assert prod["rpo"] == {"targetHours": 26, "state": "ok", "since": None, "newestRestorable": {
        "blobName": backup_blob_name(PROD, T0 - timedelta(hours=3)), "createdAt": stamp(T0 - timedelta(hours=3)),
        "ageHours": 3.0}}
    assert set(prod["backups"][0]) == {"blobName", "createdAt", "sku", "sizeBytes", "restorable",
                                       "notRestorableBecause"}
    assert prod["standby"] == {"instance": rid(STANDBY), "sync": False, "lagHours": None, "lastSucceeded": None,
                               "state": None, "error": None}
    dev = by_name(report)[DEV]
    assert dev["rpo"]["state"] == "unknown" and dev["backups"] == [] and dev["standby"] is None
    assert dev["lastDrill"] is None and dev["openFailures"] == []


def test_backups_of_the_last_30_days_newest_first_and_rpo_from_the_newest_restorable() -> None:
    w = world()
    add_backup(w, age=timedelta(days=40))
    add_backup(w, age=timedelta(days=29, hours=12))  # within the window, inside the expiry margin
    add_backup(w, age=timedelta(hours=30))
    add_backup(w, age=timedelta(hours=2), sku="Premium")
    prod = by_name(build(w))[PROD]
    assert [b["createdAt"] for b in prod["backups"]] == [
        stamp(T0 - timedelta(hours=2)), stamp(T0 - timedelta(hours=30)), stamp(T0 - timedelta(days=29, hours=12))]
    assert [b["restorable"] for b in prod["backups"]] == [True, True, False]
    assert "margin" in prod["backups"][2]["notRestorableBecause"]
    assert prod["rpo"]["state"] == "ok" and prod["rpo"]["newestRestorable"]["ageHours"] == 2.0


@pytest.mark.parametrize(("ages", "state"), [
    ([], "unknown"), ([timedelta(days=29, hours=12)], "breached"), ([timedelta(hours=22)], "at-risk"),
    ([timedelta(hours=27)], "breached"),
])
def test_rpo_computed_from_the_catalog(ages: list[timedelta], state: str) -> None:
    w = world()
    for age in ages:
        add_backup(w, age=age)
    assert by_name(build(w))[PROD]["rpo"]["state"] == state


def test_the_rpo_monitors_record_wins_and_the_age_is_recomputed() -> None:
    w = world(settings([{"resourceId": rid(PROD), "rpoHours": 12}]))
    add_backup(w, age=timedelta(hours=1))
    created = iso(T0 - timedelta(hours=5))
    w.store.put_record(Record("rpo", record_key(rid(PROD)), {
        "instance": rid(PROD), "state": "at-risk", "since": iso(T0 - timedelta(hours=1)), "targetHours": 12,
        "newestRestorable": {"blobName": "b", "createdAt": created}, "announced": "at-risk"}))
    assert by_name(build(w))[PROD]["rpo"] == {
        "targetHours": 12, "state": "at-risk", "since": iso(T0 - timedelta(hours=1)),
        "newestRestorable": {"blobName": "b", "createdAt": created, "ageHours": 5.0}}


def test_standby_sync_record_gives_the_lag() -> None:
    w = world(settings([{"resourceId": rid(PROD), "standby": rid(STANDBY), "standbySync": True}]))
    last = {"backup": "b", "backupCreatedAt": iso(T0 - timedelta(hours=6)), "finishedAt": iso(T0 - timedelta(hours=5))}
    error = {"code": "PreflightFailed", "message": "tier", "remediation": "fix"}
    w.store.put_record(Record("standby", record_key(rid(STANDBY)), {
        "primary": rid(PROD), "standby": rid(STANDBY), "jobId": "j", "state": "Failed", "lastSucceeded": last,
        "error": error}))
    assert by_name(build(w))[PROD]["standby"] == {
        "instance": rid(STANDBY), "sync": True, "lagHours": 6.0, "lastSucceeded": last, "state": "Failed",
        "error": error}


def test_the_newest_drill_of_the_instance_is_its_last_drill() -> None:
    w = world()
    for key, instance, requested, state in (("d1", PROD, 3, "passed"), ("d2", PROD, 1, "failed"),
                                            ("d3", DEV, 0, "passed"), ("d4", "not an id", 0, "passed")):
        w.store.put_record(Record("drill", key, {
            "instance": rid(instance) if instance != "not an id" else instance, "target": rid("apim-drill"),
            "jobId": key, "requestedAt": iso(T0 - timedelta(days=requested)), "finishedAt": iso(T0),
            "state": state, "rtoSeconds": 600, "rpoHoursAtDrill": 2.5, "verification": None, "error": None}))
    report = by_name(build(w))
    assert report[PROD]["lastDrill"] == {"jobId": "d2", "state": "failed", "rtoSeconds": 600, "rpoHoursAtDrill": 2.5,
                                         "finishedAt": iso(T0), "target": rid("apim-drill")}
    assert report[DEV]["lastDrill"]["jobId"] == "d3"


def test_open_failures_are_those_not_followed_by_a_success() -> None:
    w = world()
    hour = timedelta(hours=1)
    add_job(w, JobKind.BACKUP, JobState.FAILED, ended=T0 - 5 * hour, code="Old")
    add_job(w, JobKind.BACKUP, JobState.SUCCEEDED, ended=T0 - 4 * hour)
    add_job(w, JobKind.BACKUP, JobState.FAILED, ended=T0 - 3 * hour, code="First")
    add_job(w, JobKind.BACKUP, JobState.TIMED_OUT, ended=T0 - 2 * hour, code="TimedOut")
    add_job(w, JobKind.BACKUP, JobState.FAILED, service=DEV, ended=T0 - hour, code="Dev")
    add_job(w, JobKind.RESTORE, JobState.FAILED, service=STANDBY, source=PROD, ended=T0 - hour, code="Restore")
    add_job(w, JobKind.RESTORE, JobState.REFUSED, service=STANDBY, source=PROD, ended=T0, code="PreflightFailed")
    add_job(w, JobKind.BACKUP, JobState.RUNNING, ended=T0)
    report = by_name(build(w))
    prod = report[PROD]["openFailures"]
    assert [(f["kind"], f["errorCode"]) for f in prod] == [
        ("restore", "Restore"), ("backup", "TimedOut"), ("backup", "First")]
    assert prod[1] == {"jobId": prod[1]["jobId"], "kind": "backup", "state": "TimedOut", "errorCode": "TimedOut",
                       "message": "backup broke", "remediation": "Do the thing.", "at": iso(T0 - 2 * hour)}
    assert [f["errorCode"] for f in report[DEV]["openFailures"]] == ["Dev"]


def test_a_later_successful_restore_closes_a_failed_one() -> None:
    w = world()
    add_job(w, JobKind.RESTORE, JobState.FAILED, service=STANDBY, source=PROD, ended=T0 - timedelta(hours=2))
    add_job(w, JobKind.RESTORE, JobState.SUCCEEDED, service=STANDBY, source=PROD, ended=T0 - timedelta(hours=1))
    assert by_name(build(w))[PROD]["openFailures"] == []


class BrokenStore:
    """Wraps a fake store; the named parts raise as an unreachable storage account would."""

    def __init__(self, inner: Any, broken: set[str]) -> None:
        self._inner, self._broken = inner, broken

    def __getattr__(self, name: str) -> Any:
        if name in self._broken:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise AzureUnavailableError("the app's storage did not answer")
            return fail
        return getattr(self._inner, name)


@pytest.mark.parametrize(("broken", "problem"), [
    ({"records"}, "the rpo records could not be read"),
    ({"recent_jobs"}, "recent jobs could not be read"),
])
def test_an_unreadable_part_is_a_problem_and_the_rest_is_reported(broken: set[str], problem: str) -> None:
    w = world()
    add_backup(w, age=timedelta(hours=1))
    w.ctx._store = BrokenStore(w.store, broken)  # type: ignore[assignment]
    report = build(w)
    assert any(problem in p and "AzureUnavailable" in p for p in report["problems"])
    assert by_name(report)[PROD]["rpo"]["state"] == "ok"


def test_an_unreadable_catalog_is_a_problem_of_that_instance() -> None:
    w = world()
    add_backup(w, DEV, age=timedelta(hours=1))
    original = w.backups.find

    def find(container: str, service: str) -> Any:
        if service == PROD:
            raise AzureUnavailableError("backup account unreachable")
        return original(container, service)

    w.backups.find = find  # type: ignore[method-assign]
    report = build(w)
    assert report["problems"] == ["status: the backups of apim-prod could not be listed: (AzureUnavailable) "
                                  "backup account unreachable"]
    assert by_name(report)[PROD]["backups"] == [] and by_name(report)[DEV]["rpo"]["state"] == "ok"


def test_settings_problems_are_reported() -> None:
    w = world(settings([rid(PROD), "not-an-id"]))
    report = build(w)
    assert len(report["problems"]) == 1 and "APIM_DR_INSTANCES" in report["problems"][0]
    assert [i["serviceName"] for i in report["instances"]] == [PROD]


def test_no_instances() -> None:
    report = build(world(settings([], APIM_DR_DISCOVERY_SUBSCRIPTIONS=SUB)))
    assert report["instances"] == [] and report["problems"] == []


# -- GET /api/dashboard --------------------------------------------------------------------------------
def test_dashboard_answers_the_page_with_its_headers() -> None:
    w = world()
    add_backup(w, age=timedelta(hours=3))
    add_job(w, JobKind.BACKUP, JobState.FAILED, service=DEV, ended=T0 - timedelta(hours=1), code="<b>Odd</b>")
    response = guarded(lambda: w.ctx.api().dashboard())
    assert response.status == 200 and response.html is not None
    assert response.mimetype == "text/html" and response.headers == page_headers()
    body = response.content().decode("utf-8")
    assert body.startswith("<!doctype html>") and "apim-prod" in body and "&lt;b&gt;Odd&lt;/b&gt;" in body
    assert "What to do:</span> <bdi>Do the thing.</bdi>" in body


def test_a_page_with_an_unencodable_character_still_encodes() -> None:
    assert ApiResponse.page("a\ud800b", {}).content() == b"a?b"


def test_dashboard_errors_stay_json() -> None:
    w = world()
    w.ctx._store = BrokenStore(w.store, {"records", "recent_jobs"})  # type: ignore[assignment]
    w.ctx.resolver = lambda: (_ for _ in ()).throw(AzureUnavailableError("down"))  # type: ignore[method-assign]
    response = guarded(lambda: w.ctx.api().dashboard())
    assert response.status == 503 and response.html is None and response.mimetype == "application/json"
    assert isinstance(response.body, dict) and response.body["error"]["code"] == "AzureUnavailable"
