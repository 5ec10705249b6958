"""``GET /api/status`` and ``apim-dr status`` on in-memory fakes: the contract, open failures, other features'
records read defensively, hostile inputs, exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from dr_core.api.http import ApiResponse, guarded
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.context import reset_context
from dr_core.jobs.ids import JobKind, make_job_id
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import AzureUnavailableError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState
from dr_core.ports import RecordKind, StoredRecord
from dr_core.posture.status import MAX_BACKUPS_LISTED, open_failures
from dr_core.records import record_key
from tests.unit.fakes import T0, World, rid, settings, world

PROD, DEV, STANDBY = "apim-prod", "apim-dev", "apim-dr"
INSTANCE_KEYS = {"instance", "serviceName", "alias", "rpo", "standby", "lastDrill", "openFailures", "backups",
                 "copy"}


def add_backup(w: World, service: str = PROD, *, created: datetime, sku: str = "Standard") -> str:
    name = backup_blob_name(service, created)
    w.backups.add("apim-backups", name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def status(w: World, service: str | None = None) -> ApiResponse:
    api = w.ctx.api()
    return guarded(lambda: api.get_status(service))


def body_of(w: World, service: str | None = None) -> dict[str, Any]:
    response = status(w, service)
    assert response.status == 200, response.body
    assert isinstance(response.body, dict)
    json.dumps(response.body)  # the body is JSON as it is
    return response.body


def view_of(w: World, name: str = PROD) -> dict[str, Any]:
    return next(v for v in body_of(w)["instances"] if v["serviceName"] == name)


def job(kind: JobKind, service: str, state: JobState, *, at: datetime, source: str | None = None,
        code: str | None = None) -> Job:
    rid_ = ApimResourceId.parse(rid(service))
    return Job(job_id=make_job_id(kind, rid_, at, unique=True), kind=kind, instance=rid(service),
               service_name=service, state=state, trigger=Trigger.SCHEDULE, slot=at, created_at=at, updated_at=at,
               deadline=at + timedelta(hours=2), finished_at=at + timedelta(minutes=5) if state.terminal else None,
               source_instance=rid(source) if source else None, error_code=code,
               error_message=f"{code} happened" if code else None, remediation=f"fix {code}" if code else None)


# -- the contract --------------------------------------------------------------------------------------

def test_the_body_follows_the_contract() -> None:
    w = world()
    name = add_backup(w, created=T0 - timedelta(hours=3))
    body = body_of(w)
    assert set(body) == {"generatedAt", "instances", "problems"} and body["generatedAt"] == iso(T0)
    assert [v["serviceName"] for v in body["instances"]] == [PROD, DEV] and body["problems"] == []
    prod = body["instances"][0]
    assert set(prod) == INSTANCE_KEYS
    assert (prod["instance"], prod["alias"]) == (rid(PROD), "prod")
    assert prod["rpo"] == {"targetHours": 26, "state": "ok", "since": iso(T0 - timedelta(hours=3)),
                           "newestRestorable": {"blobName": name, "createdAt": iso(T0 - timedelta(hours=3)),
                                                "ageHours": 3.0},
                           "reason": "newest restorable backup is 3.0 h old (target 26 h)"}
    assert prod["standby"] == {"instance": rid(STANDBY), "sync": False, "lagHours": None, "lastSucceeded": None,
                               "state": None, "error": None}
    assert prod["lastDrill"] is None and prod["openFailures"] == []
    assert prod["backups"] == [{"blobName": name, "createdAt": iso(T0 - timedelta(hours=3)), "sku": "Standard",
                                "sizeBytes": 10, "restorable": True, "notRestorableBecause": None}]
    dev = body["instances"][1]
    assert dev["standby"] is None and dev["rpo"]["state"] == "at-risk" and dev["rpo"]["newestRestorable"] is None


def test_status_writes_nothing() -> None:
    w = world()
    add_backup(w, created=T0 - timedelta(days=3))
    body_of(w)
    assert w.store.record_puts == 0 and w.notifier.events == [] and w.store.rows == {}


def test_rpo_uses_the_record_history() -> None:
    w = world()
    add_backup(w, created=T0 - timedelta(hours=30))
    w.ctx.rpo_monitor().check_all()
    w.clock.advance(3600)
    rpo = view_of(w)["rpo"]
    assert rpo["state"] == "breached" and rpo["since"] == iso(T0 - timedelta(hours=4))
    # Dev has no backup: monitoring began at T0, so it is at risk since then, breached at T0 + 26 h.
    assert view_of(w, DEV)["rpo"]["since"] == iso(T0)
    w.clock.advance(26 * 3600)
    assert view_of(w, DEV)["rpo"]["state"] == "breached"


def test_backups_of_the_last_30_days_newest_first_with_restorability() -> None:
    w = world(settings([rid(PROD)]))
    fresh = add_backup(w, created=T0 - timedelta(hours=1))
    v2 = add_backup(w, created=T0 - timedelta(hours=2), sku="StandardV2")
    margin = add_backup(w, created=T0 - timedelta(days=29, hours=6))
    add_backup(w, created=T0 - timedelta(days=31))
    listed = view_of(w)["backups"]
    assert [b["blobName"] for b in listed] == [fresh, v2, margin]
    assert [b["restorable"] for b in listed] == [True, False, False]
    assert "StandardV2 tier" in listed[1]["notRestorableBecause"]
    assert "margin" in listed[2]["notRestorableBecause"]


def test_a_long_catalog_is_cut_and_says_so() -> None:
    w = world(settings([rid(PROD)]))
    for i in range(MAX_BACKUPS_LISTED + 5):
        add_backup(w, created=T0 - timedelta(hours=1 + i))
    view = view_of(w)
    assert len(view["backups"]) == MAX_BACKUPS_LISTED and view["backupsOmitted"] == 5


def test_an_unreadable_catalog_is_unknown_with_the_reason_and_the_rest_is_answered() -> None:
    w = world()
    add_backup(w, created=T0 - timedelta(hours=3))
    w.ctx.rpo_monitor().check_all()
    w.backups.find_errors[PROD] = AzureUnavailableError("backup account unreachable")
    prod = view_of(w)
    assert prod["rpo"]["state"] == "unknown" and "backup account unreachable" in prod["rpo"]["reason"]
    assert prod["rpo"]["newestRestorable"]["ageHours"] == 3.0, "the last known backup is still shown"
    assert prod["backups"] == []
    assert view_of(w, DEV)["rpo"]["state"] == "at-risk"


@pytest.mark.parametrize("kind", list(RecordKind)[:3])
def test_unreadable_records_are_a_problem_not_a_failure(kind: RecordKind) -> None:
    w = world()
    w.store.record_errors[kind] = AzureUnavailableError("jobs table unreachable")
    body = body_of(w)
    assert len(body["instances"]) == 2
    assert any(kind in p and "jobs table unreachable" in p for p in body["problems"])


def test_unreadable_jobs_are_a_problem() -> None:
    w = world()

    def broken(*args: Any, **kwargs: Any) -> list[Job]:
        raise AzureUnavailableError("jobs table unreachable")

    w.store.recent_jobs = broken  # type: ignore[method-assign]
    body = body_of(w)
    assert any("open failures unknown" in p for p in body["problems"])


def test_inventory_problems_are_listed() -> None:
    w = world(settings([rid(PROD), {"resourceId": "nope"}]))
    body = body_of(w)
    assert len(body["instances"]) == 1 and "APIM_DR_INSTANCES[1]" in body["problems"][0]


def test_discovered_instances_are_included() -> None:
    w = world(settings([rid(PROD)], APIM_DR_DISCOVERY_SUBSCRIPTIONS="00000000-0000-0000-0000-0000000000cc"))
    w.arm.add_service("apim-tagged", tags={"apim-dr:backup": "true"})
    assert [v["serviceName"] for v in body_of(w)["instances"]] == [PROD, "apim-tagged"]


# -- ?service= ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["prod", PROD, rid(PROD), rid(PROD).upper(), f"  {PROD} "])
def test_service_selects_one_instance(service: str) -> None:
    body = body_of(world(), service)
    assert [v["serviceName"] for v in body["instances"]] == [PROD]


@pytest.mark.parametrize(("service", "status_code", "code"), [
    ("", 400, "BadRequest"), ("   ", 400, "BadRequest"), ("x" * 401, 400, "BadRequest"),
    ("/subscriptions/bad", 400, "BadRequest"), ("nope", 404, "NotFound"), (STANDBY, 404, "NotFound"),
    ("'; DROP TABLE apimdrjobs; --", 404, "NotFound"), ("\x00\n<script>", 404, "NotFound"),
    ("../../etc/passwd", 404, "NotFound"), ("ünïcødé", 404, "NotFound"),
])
def test_bad_service_values_are_refused_by_name(service: str, status_code: int, code: str) -> None:
    w = world()
    response = status(w, service)
    assert response.status == status_code, response.body
    assert isinstance(response.body, dict) and response.body["error"]["code"] == code
    assert len(json.dumps(response.body)) < 2000, "a hostile value is never echoed at length"
    if status_code == 400:
        assert "service" in response.body["error"]["message"]


def test_an_ambiguous_name_is_a_400() -> None:
    w = world(settings([rid(PROD), rid(PROD, rg="rg-other")]))
    response = status(w, PROD)
    assert response.status == 400 and isinstance(response.body, dict)
    assert response.body["error"]["fields"]["service"]


# -- open failures -------------------------------------------------------------------------------------------

def test_open_failures_are_failures_not_followed_by_a_success_of_the_same_kind() -> None:
    closed = job(JobKind.BACKUP, PROD, JobState.FAILED, at=T0 - timedelta(days=2), code="BackupFailed")
    success = job(JobKind.BACKUP, PROD, JobState.SUCCEEDED, at=T0 - timedelta(days=1))
    still_open = job(JobKind.BACKUP, PROD, JobState.TIMED_OUT, at=T0 - timedelta(hours=2), code="TimedOut")
    restore_failed = job(JobKind.RESTORE, STANDBY, JobState.FAILED, at=T0 - timedelta(days=3), source=PROD,
                         code="RestoreFailed")
    refused = job(JobKind.RESTORE, STANDBY, JobState.REFUSED, at=T0 - timedelta(hours=1), source=PROD)
    running = job(JobKind.BACKUP, PROD, JobState.RUNNING, at=T0)
    found = open_failures([closed, success, still_open, restore_failed, refused, running])
    assert [f.job_id for f in found] == [still_open.job_id, restore_failed.job_id]
    assert found[0].to_json() == {
        "jobId": still_open.job_id, "kind": "backup", "state": "TimedOut", "errorCode": "TimedOut",
        "message": "TimedOut happened", "remediation": "fix TimedOut",
        "at": iso(T0 - timedelta(hours=2) + timedelta(minutes=5))}


def test_a_restore_success_closes_only_restores_into_the_same_target() -> None:
    failed = job(JobKind.RESTORE, STANDBY, JobState.FAILED, at=T0 - timedelta(days=1), source=PROD, code="X")
    other_target = job(JobKind.RESTORE, "apim-drill", JobState.SUCCEEDED, at=T0, source=PROD)
    backup_ok = job(JobKind.BACKUP, PROD, JobState.SUCCEEDED, at=T0)
    assert [f.job_id for f in open_failures([failed, other_target, backup_ok])] == [failed.job_id]
    same_target = job(JobKind.RESTORE, STANDBY, JobState.SUCCEEDED, at=T0, source=PROD)
    assert open_failures([failed, same_target]) == []


def test_open_failures_in_the_view_come_from_the_job_store() -> None:
    w = world()
    failed = w.store.put(job(JobKind.BACKUP, PROD, JobState.FAILED, at=T0 - timedelta(hours=5), code="BackupFailed"))
    w.store.put(job(JobKind.BACKUP, DEV, JobState.SUCCEEDED, at=T0 - timedelta(hours=5)))
    w.store.put(job(JobKind.RESTORE, STANDBY, JobState.FAILED, at=T0 - timedelta(hours=4), source=PROD, code="X"))
    w.store.put(job(JobKind.BACKUP, PROD, JobState.FAILED, at=T0 - timedelta(days=8), code="Old"))
    prod = view_of(w)
    assert [f["errorCode"] for f in prod["openFailures"]] == ["X", "BackupFailed"]
    assert prod["openFailures"][1]["jobId"] == failed.job_id
    assert view_of(w, DEV)["openFailures"] == []


# -- standby and drill records (written by other features) --------------------------------------------------

def standby_record(w: World, data: dict[str, Any], *, key: str | None = None) -> None:
    w.store.put_record(StoredRecord(RecordKind.STANDBY, key or record_key(rid(STANDBY)), data))


def test_the_standby_record_gives_state_and_lag() -> None:
    w = world()
    standby_record(w, {
        "primary": rid(PROD), "standby": rid(STANDBY), "jobId": "restore-x", "state": "Failed",
        "backup": "b", "backupCreatedAt": iso(T0 - timedelta(hours=1)), "requestedAt": iso(T0),
        "finishedAt": iso(T0),
        "lastSucceeded": {"backup": "a", "backupCreatedAt": iso(T0 - timedelta(hours=25)),
                          "finishedAt": iso(T0 - timedelta(hours=24))},
        "error": {"code": "RestoreFailed", "message": "no", "remediation": "do"},
    })
    assert view_of(w)["standby"] == {
        "instance": rid(STANDBY), "sync": False, "lagHours": 25.0,
        "lastSucceeded": {"backup": "a", "backupCreatedAt": iso(T0 - timedelta(hours=25)),
                          "finishedAt": iso(T0 - timedelta(hours=24))},
        "state": "Failed", "error": {"code": "RestoreFailed", "message": "no", "remediation": "do"},
    }


def test_the_standby_record_is_found_whatever_its_key_and_case() -> None:
    w = world(settings([{"resourceId": rid(PROD), "standby": rid(STANDBY), "standbySync": True}]))
    standby_record(w, {"standby": rid(STANDBY).lower(), "state": "Succeeded",
                       "lastSucceeded": {"backupCreatedAt": iso(T0 - timedelta(hours=2))}}, key="whatever")
    standby = view_of(w)["standby"]
    assert standby["sync"] is True and standby["lagHours"] == 2.0 and standby["state"] == "Succeeded"


@pytest.mark.parametrize("data", [
    {}, {"standby": rid(STANDBY), "state": 5, "lastSucceeded": "yesterday", "error": "bad"},
    {"standby": rid(STANDBY), "lastSucceeded": {"backupCreatedAt": "not a time", "backup": ["x"]},
     "error": {"code": 1, "message": "m" * 10_000}},
    {"standby": "not a resource id"}, {"standby": None},
])
def test_a_malformed_standby_record_never_breaks_the_view(data: dict[str, Any]) -> None:
    w = world()
    standby_record(w, data)
    standby = view_of(w)["standby"]
    assert standby["instance"] == rid(STANDBY) and standby["lagHours"] is None
    assert standby["state"] in (None,) and (standby["lastSucceeded"] is None
                                            or standby["lastSucceeded"]["backupCreatedAt"] is None)
    if standby["error"]:
        assert standby["error"]["code"] is None and len(standby["error"]["message"]) == 2000


def drill(w: World, job_id: str, data: dict[str, Any]) -> None:
    w.store.put_record(StoredRecord(RecordKind.DRILL, job_id,
                                    {"instance": rid(PROD), "target": rid("apim-drill"), **data}))


def test_the_last_drill_is_the_newest_drill_record_of_the_instance() -> None:
    w = world()
    drill(w, "restore-old", {"jobId": "restore-old", "state": "passed", "requestedAt": iso(T0 - timedelta(days=7)),
                             "finishedAt": iso(T0 - timedelta(days=7)), "rtoSeconds": 900})
    drill(w, "restore-new", {"jobId": "restore-new", "state": "failed", "requestedAt": iso(T0 - timedelta(days=1)),
                             "finishedAt": iso(T0 - timedelta(hours=23)), "rtoSeconds": 1200.5,
                             "rpoHoursAtDrill": 3.25, "error": {"code": "VerificationFailed"}})
    w.store.put_record(StoredRecord(RecordKind.DRILL, "restore-dev", {"instance": rid(DEV), "state": "passed",
                                                       "requestedAt": iso(T0)}))
    assert view_of(w)["lastDrill"] == {"jobId": "restore-new", "state": "failed", "rtoSeconds": 1200.5,
                                       "rpoHoursAtDrill": 3.25, "finishedAt": iso(T0 - timedelta(hours=23)),
                                       "target": rid("apim-drill"),
                                       # Why it failed reaches the status page (the page renders it).
                                       "error": {"code": "VerificationFailed", "message": None,
                                                 "remediation": None}}
    assert view_of(w, DEV)["lastDrill"]["jobId"] == "restore-dev", "the record key stands in for a missing jobId"


@pytest.mark.parametrize("data", [
    {"requestedAt": "garbage"}, {"instance": "nope", "requestedAt": iso(T0)},
])
def test_drill_records_without_a_primary_or_a_time_are_skipped(data: dict[str, Any]) -> None:
    w = world()
    drill(w, "restore-x", data)
    assert view_of(w)["lastDrill"] is None


def test_odd_drill_values_are_nulled() -> None:
    w = world()
    drill(w, "restore-x", {"requestedAt": iso(T0), "state": {"a": 1}, "rtoSeconds": True,
                           "rpoHoursAtDrill": float("nan"), "finishedAt": 12, "target": None, "error": "boom"})
    assert view_of(w)["lastDrill"] == {"jobId": "restore-x", "state": None, "rtoSeconds": None,
                                       "rpoHoursAtDrill": None, "finishedAt": None, "target": None, "error": None}


# -- the CLI -------------------------------------------------------------------------------------------------

@pytest.fixture
def cli_world() -> Iterator[World]:
    w = world()
    reset_context(w.ctx)
    yield w
    reset_context()


def run_cli(*argv: str) -> tuple[int, str]:
    from dr_core.cli import main

    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def test_cli_posture_table_and_exit_codes(cli_world: World) -> None:
    w = cli_world
    add_backup(w, created=T0 - timedelta(hours=3))
    add_backup(w, DEV, created=T0 - timedelta(hours=22))
    code, text = run_cli("status")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split() == ["instance", "RPO", "newest", "restorable", "/", "target", "standby", "lag",
                                "last", "drill", "open", "failures"]
    assert lines[1].split()[:6] == ["prod", "(apim-prod)", "ok", "3.0", "h", "/"]
    assert "sync off" in lines[1]
    assert lines[2].split()[:2] == [DEV, "at-risk"] and "over 80 %" in text
    w.clock.advance(5 * 3600)
    code, text = run_cli("status")
    assert code == 1 and "apim-dev: breached" in text
    w.backups.find_errors[DEV] = AzureUnavailableError("unreachable")
    code, _ = run_cli("status", "--service", "prod")
    assert code == 0
    code, text = run_cli("status", "--service", DEV)
    assert code == 6 and "unknown" in text


@pytest.mark.parametrize("argv", [["--json", "status"], ["status", "--json"]])
def test_cli_status_json(cli_world: World, argv: list[str]) -> None:
    add_backup(cli_world, created=T0)
    code, text = run_cli(*argv)
    body = json.loads(text)
    assert code == 0 and [v["serviceName"] for v in body["instances"]] == [PROD, DEV]


@pytest.mark.parametrize(("argv", "code"), [
    (["status", "--wait"], 2), (["status", "--service", "nope"], 5), (["status", "--service", ""], 2),
    (["status", "--service", "x" * 500], 2),
    (["status", "backup-20261130T020000Z-apim-prod-00000000", "--service", "prod"], 2),
    (["status", "not-a-job"], 2), (["status", "backup-20261130T020000Z-apim-prod-00000000"], 5),
])
def test_cli_status_usage_errors(cli_world: World, argv: list[str], code: int) -> None:
    got, text = run_cli(*argv)
    assert got == code, text
    assert "Traceback" not in text


def test_cli_status_of_a_job_still_works(cli_world: World) -> None:
    w = cli_world
    failed = w.store.put(job(JobKind.BACKUP, PROD, JobState.FAILED, at=T0, code="BackupFailed"))
    code, text = run_cli("status", failed.job_id)
    assert code == 1 and "Failed" in text and "fix BackupFailed" in text
