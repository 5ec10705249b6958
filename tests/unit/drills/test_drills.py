"""Restore drills and backup manifests on in-memory fakes: due or not, verification, RTO/RPO, announcements."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest

from dr_core.api.http import ApiResponse, guarded
from dr_core.backup.manifest import MANIFEST_FORMAT, ManifestRecorder, manifest_blob_name, summary_from_manifest
from dr_core.cli import main
from dr_core.context import reset_context
from dr_core.drills.drills import DrillRefusedError, NoVerifiableBackupError
from dr_core.drills.record import compare
from dr_core.jobs.job import Trigger
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    ArmError,
    AzureUnavailableError,
)
from dr_core.kernel.phases import JobState
from dr_core.ports import ConfigurationSummary, PollResult, RecordKind, StoredRecord
from tests.unit.continuity_support import (
    CONTAINER,
    DRILL,
    PROD,
    PROD_CONFIG,
    add_backup,
    continuity_world,
    drive_restore,
    restore_jobs,
    succeed_backup,
)
from tests.unit.fakes import T0, World, rid

BASE = "https://func.example"


def drill_record(w: World, job_id: str) -> dict[str, Any]:
    saved = w.store.get_record(RecordKind.DRILL, job_id)
    assert saved is not None
    return saved.data


def started(w: World) -> dict[str, Any]:
    (drill,) = w.ctx.drills().run_due()
    return drill.to_json()


# -- manifests -------------------------------------------------------------------------------------------

def test_a_successful_backup_gets_a_manifest_of_its_source() -> None:
    w = continuity_world(sync=False)
    job = succeed_backup(w)
    document = w.backups.get_json(CONTAINER, manifest_blob_name(job.blob_name))
    assert document is not None and document["format"] == MANIFEST_FORMAT and document["jobId"] == job.job_id
    assert summary_from_manifest(document) == PROD_CONFIG and document["readAt"] == iso(T0)
    assert w.arm.summary_calls == [PROD]


def test_a_manifest_is_written_once_and_never_overwritten() -> None:
    w = continuity_world(sync=False)
    job = succeed_backup(w)
    w.arm.configurations[PROD] = ConfigurationSummary(("other",))
    assert ManifestRecorder(arm=w.arm, backups=w.backups, clock=w.clock).record(job) is False
    assert summary_from_manifest(w.backups.get_json(CONTAINER, manifest_blob_name(job.blob_name))) == PROD_CONFIG


@pytest.mark.parametrize("error", [ArmError("AuthorizationFailed", "no apis/read", 403),
                                   AzureUnavailableError("ARM unreachable")])
def test_a_manifest_that_cannot_be_read_leaves_the_backup_succeeded(error: Any) -> None:
    w = continuity_world(sync=False)
    w.arm.summary_errors.append(error)
    job = succeed_backup(w)
    assert job.state is JobState.SUCCEEDED
    assert w.backups.get_json(CONTAINER, manifest_blob_name(job.blob_name)) is None


@pytest.mark.parametrize("document", [
    None, {}, {"format": "other", "apis": [], "products": [], "namedValues": []},
    {"format": MANIFEST_FORMAT, "apis": [], "products": []},
    {"format": MANIFEST_FORMAT, "apis": "echo-api", "products": [], "namedValues": []},
    {"format": MANIFEST_FORMAT, "apis": [1], "products": [], "namedValues": []},
    {"format": MANIFEST_FORMAT, "apis": [""], "products": [], "namedValues": []},
    {"format": MANIFEST_FORMAT, "apis": ["x" * 300], "products": [], "namedValues": []},
    {"format": MANIFEST_FORMAT, "apis": ["a"] * 10_001, "products": [], "namedValues": []},
])
def test_documents_that_are_not_manifests_are_refused(document: Any) -> None:
    assert summary_from_manifest(document) is None


# -- comparing -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expected", "found", "missing", "unexpected"), [
    ([], [], [], []),
    (["a", "b"], ["b", "a"], [], []),
    (["a", "b"], ["a"], ["b"], []),
    (["a"], ["a", "c"], [], ["c"]),
    (["Echo-API"], ["echo-api"], [], []),  # ARM names compare case-insensitively
    (["a", "b"], ["c"], ["a", "b"], ["c"]),
])
def test_compare_names_missing_and_unexpected(expected: list[str], found: list[str], missing: list[str],
                                              unexpected: list[str]) -> None:
    result = compare(expected, found)
    assert (list(result.missing), list(result.unexpected)) == (missing, unexpected)
    assert list(result.expected) == sorted(expected) and list(result.found) == sorted(found)


# -- when drills start -----------------------------------------------------------------------------------

def test_a_due_drill_restores_the_latest_backup_into_the_drill_target() -> None:
    w = continuity_world(sync=False)
    newest = add_backup(w, age=timedelta(hours=5, minutes=30))
    add_backup(w, age=timedelta(hours=30))
    drill = started(w)
    (job,) = restore_jobs(w, Trigger.DRILL)
    assert job.instance == rid(DRILL) and job.source_instance == rid(PROD) and job.blob_name == newest
    assert drill == drill_record(w, job.job_id)
    assert drill["state"] == "running" and drill["jobId"] == job.job_id and drill["trigger"] == "schedule"
    assert drill["instance"] == rid(PROD) and drill["target"] == rid(DRILL) and drill["backup"] == newest
    assert drill["requestedAt"] == iso(T0) and drill["backupCreatedAt"] == iso(T0 - timedelta(hours=5, minutes=30))
    assert drill["rpoHoursAtDrill"] == 5.5 and drill["rtoSeconds"] is None and drill["verification"] is None


def test_drills_follow_the_cadence() -> None:
    w = continuity_world(sync=False, every=7)
    add_backup(w)
    drill = started(w)
    drive_restore(w, drill["jobId"])
    w.arm.configurations[DRILL] = PROD_CONFIG
    assert w.ctx.drills().run_due() == []  # just done
    w.clock.set(T0 + timedelta(days=6, hours=23))
    assert w.ctx.drills().run_due() == []
    w.clock.set(T0 + timedelta(days=7))
    add_backup(w, age=timedelta(hours=-7 * 24 + 1))  # a fresh backup, one hour old then
    assert len(w.ctx.drills().run_due()) == 1


def test_a_running_drill_blocks_the_next_one() -> None:
    w = continuity_world(sync=False, every=1)
    add_backup(w)
    started(w)
    w.clock.advance(2 * 86400)
    w.store.locks.clear()  # not the restore lock's doing: the running drill's record blocks the next one
    assert w.ctx.drills().run_due() == [] and len(restore_jobs(w)) == 1


def test_instances_without_a_drill_target_are_not_drilled() -> None:
    w = continuity_world(sync=False, drill=False)
    add_backup(w)
    assert w.ctx.drills().run_due() == [] and restore_jobs(w) == []
    with pytest.raises(Exception, match="has no drill target"):
        w.ctx.drills().start("prod")


def test_a_drill_target_that_is_a_primary_is_refused_by_name() -> None:
    w = continuity_world(sync=False, discover=True)
    w.arm.add_service(DRILL, tags={"apim-dr:backup": "true"})
    add_backup(w)
    with pytest.raises(DrillRefusedError) as refused:
        w.ctx.drills().start("prod")
    assert refused.value.error_code == "DrillTargetIsPrimary" and DRILL in refused.value.message
    assert w.ctx.drills().run_due() == [] and restore_jobs(w) == [] and ("restore", DRILL) not in w.arm.calls


def test_a_drill_target_busy_with_another_restore_is_not_drilled_now() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    from dr_core.restore.request import RestoreRequest

    _, other = w.ctx.restorer().start(RestoreRequest(target=DRILL, source=PROD))
    assert other is not None
    with pytest.raises(DrillRefusedError, match=other.job_id):
        w.ctx.drills().start("prod")
    assert w.ctx.drills().run_due() == [] and len(restore_jobs(w)) == 1


def test_a_backup_without_manifest_is_passed_over() -> None:
    w = continuity_world(sync=False)
    newest = add_backup(w, age=timedelta(hours=1), manifest=None)
    older = add_backup(w, age=timedelta(hours=25))
    drill = started(w)
    assert drill["backup"] == older and drill["passedOver"] == [newest] and drill["rpoHoursAtDrill"] == 25.0


def test_no_verifiable_backup_starts_no_drill_and_is_tried_again_the_next_hour() -> None:
    w = continuity_world(sync=False)
    add_backup(w, manifest=None)
    add_backup(w, age=timedelta(days=31))  # expired, manifest or not
    with pytest.raises(NoVerifiableBackupError, match="1 newest restorable ones have no manifest"):
        w.ctx.drills().start("prod")
    assert w.ctx.drills().run_due() == [] and restore_jobs(w) == [] and w.store.records(RecordKind.DRILL) == []
    add_backup(w, age=timedelta(minutes=10))
    assert len(w.ctx.drills().run_due()) == 1


def test_a_preflight_refusal_is_a_failed_drill_announced_once() -> None:
    w = continuity_world(sync=False)
    w.arm.add_service(DRILL, sku="Premium")
    add_backup(w)
    drill = started(w)
    assert drill["state"] == "failed" and drill["error"]["code"] == "PreflightFailed"
    assert "target-tier-matches-backup" in drill["error"]["message"] and drill["finishedAt"] == iso(T0)
    (event,) = w.notifier.events
    assert event.kind == "drill-failed" and DRILL in event.text and event.details["jobId"] == drill["jobId"]
    w.ctx.drills().run_due()
    assert len(w.notifier.events) == 1


# -- verification ------------------------------------------------------------------------------------

def test_a_drill_whose_target_matches_the_manifest_passes_with_rto_and_rpo() -> None:
    w = continuity_world(sync=False)
    add_backup(w, age=timedelta(hours=3))
    drill = started(w)
    w.arm.configurations[DRILL] = ConfigurationSummary(tuple(reversed(PROD_CONFIG.apis)), PROD_CONFIG.products,
                                                       PROD_CONFIG.named_values)
    ended = drive_restore(w, drill["jobId"], seconds=1234)
    assert ended.state is JobState.SUCCEEDED
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "passed" and result["error"] is None
    assert result["rtoSeconds"] == 1234.0 and result["rpoHoursAtDrill"] == 3.0
    assert result["finishedAt"] == iso(T0 + timedelta(seconds=1234))
    apis = result["verification"]["apis"]
    assert apis["expected"] == apis["found"] == list(PROD_CONFIG.apis) and apis["expectedCount"] == 3
    assert all(not part["missing"] and not part["unexpected"] for part in result["verification"].values())
    assert w.notifier.events == []


def test_a_drill_that_differs_from_the_manifest_fails_names_the_differences_and_is_announced_once() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    w.arm.configurations[DRILL] = ConfigurationSummary(("echo-api", "orders-api", "rogue-api"), ("starter",),
                                                       ("orders-backend-url",))
    drive_restore(w, drill["jobId"])
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "failed" and result["error"]["code"] == "DrillVerificationFailed"
    assert result["verification"]["apis"]["missing"] == ["customers-api"]
    assert result["verification"]["apis"]["unexpected"] == ["rogue-api"]
    assert result["verification"]["products"]["missing"] == ["partners"]
    assert result["verification"]["namedValues"]["missing"] == []
    assert "customers-api" in result["error"]["message"] and "rogue-api" in result["error"]["message"]
    assert result["rtoSeconds"] == 600.0
    (event,) = w.notifier.events
    assert event.kind == "drill-failed" and "customers-api" in event.text
    # Idempotent follow-up and the timer: no second announcement, no second verification.
    job = w.store.rows[drill["jobId"]]
    w.ctx.drills().finish(job)
    w.ctx.drills().run_due()
    assert len(w.notifier.events) == 1 and len(w.arm.summary_calls) == 1


def test_a_failed_restore_is_a_failed_drill() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    drive_restore(w, drill["jobId"], outcome=PollResult(
        "failed", 0, error=ArmError("RestoreFailed", "Cannot restore: the identity may not read the backup", 400)))
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "failed" and result["error"]["code"] == "RestoreFailed" and result["rtoSeconds"] is None
    assert result["verification"] is None and w.arm.summary_calls == []
    # Announced once, as a failed drill (which says it was a drill), not a second time as a failed job.
    assert [e.kind for e in w.notifier.events] == ["drill-failed"] and w.notifier.announced == []
    assert "RestoreFailed" in w.notifier.events[0].text and drill["jobId"] in w.notifier.events[0].text
    w.ctx.drills().run_due()
    assert len(w.notifier.events) == 1


def test_an_unreadable_drill_target_is_retried_then_given_up() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    w.arm.summary_errors.append(AzureUnavailableError("ARM unreachable"))
    drive_restore(w, drill["jobId"])
    assert drill_record(w, drill["jobId"])["state"] == "running"  # the timer tries again
    w.arm.summary_errors.append(ArmError("TooManyRequests", "slow down", 429))
    w.clock.advance(3600)
    w.ctx.drills().run_due()
    assert drill_record(w, drill["jobId"])["state"] == "running"
    w.arm.summary_errors.append(AzureUnavailableError("ARM unreachable"))
    w.clock.advance(6 * 3600)
    w.ctx.drills().run_due()
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "failed" and result["error"]["code"] == "DrillNotVerified"


def test_a_drill_target_the_app_may_not_read_fails_the_drill_with_what_to_do() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    w.arm.summary_errors.append(ArmError("AuthorizationFailed", "does not have authorization to perform action "
                                         "'Microsoft.ApiManagement/service/apis/read'", 403))
    drive_restore(w, drill["jobId"])
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "failed" and result["error"]["code"] == "AuthorizationFailed"
    assert "APIM DR Operator" in result["error"]["remediation"]


def test_a_manifest_gone_by_verification_time_fails_the_drill() -> None:
    w = continuity_world(sync=False)
    backup = add_backup(w)
    drill = started(w)
    w.backups.documents.pop((CONTAINER, manifest_blob_name(backup)))
    drive_restore(w, drill["jobId"])
    assert drill_record(w, drill["jobId"])["error"]["code"] == "ManifestMissing"


def test_the_timer_finishes_a_drill_whose_follow_up_was_missed() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    job = w.store.rows[drill["jobId"]]
    job.begin_start(T0)
    job.record_started(T0, location="https://management.example/op/x", delay=5)
    job.succeed(T0 + timedelta(seconds=90))
    w.store.rows[job.job_id] = job
    w.arm.configurations[DRILL] = PROD_CONFIG
    w.ctx.drills().run_due()
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "passed" and result["rtoSeconds"] == 90.0


def test_a_drill_record_lost_after_its_job_was_created_is_rebuilt() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    del w.store.record_rows[(RecordKind.DRILL, drill["jobId"])]
    w.arm.configurations[DRILL] = PROD_CONFIG
    drive_restore(w, drill["jobId"])
    result = drill_record(w, drill["jobId"])
    assert result["state"] == "passed" and result["instance"] == rid(PROD) and result["target"] == rid(DRILL)


def test_a_failed_announcement_is_retried_by_the_timer_and_then_made_once() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    w.notifier.fail = True
    w.arm.configurations[DRILL] = ConfigurationSummary()  # the restore "worked", the drill instance is empty
    drive_restore(w, drill["jobId"])
    assert drill_record(w, drill["jobId"])["state"] == "failed"
    assert drill_record(w, drill["jobId"])["announced"] is False
    w.notifier.fail = False
    w.ctx.drills().run_due()
    w.ctx.drills().run_due()
    assert [e.kind for e in w.notifier.events] == ["drill-failed"]
    assert drill_record(w, drill["jobId"])["announced"] is True


def test_a_missing_job_ends_a_running_drill_after_the_restore_timeout() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    drill = started(w)
    del w.store.rows[drill["jobId"]]
    w.ctx.drills().run_due()
    assert drill_record(w, drill["jobId"])["state"] == "running"
    w.clock.advance(w.ctx.settings.restore_timeout_minutes * 60 + 7 * 3600)
    w.ctx.drills().run_due()
    assert drill_record(w, drill["jobId"])["error"]["code"] == "DrillJobMissing"


def test_a_large_configuration_is_trimmed_to_fit_the_record() -> None:
    w = continuity_world(sync=False)
    many = ConfigurationSummary(tuple(f"api-{i:04d}-{'x' * 40}" for i in range(900)), (), ())
    add_backup(w, manifest=many)
    drill = started(w)
    w.arm.configurations[DRILL] = ConfigurationSummary(many.apis[:-1], (), ())
    drive_restore(w, drill["jobId"])
    result = drill_record(w, drill["jobId"])
    apis = result["verification"]["apis"]
    assert result["state"] == "failed" and apis["truncated"] is True and apis["expectedCount"] == 900
    assert apis["foundCount"] == 899 and apis["missing"] == [many.apis[-1]] and len(json.dumps(result)) < 30_000


# -- history, HTTP and CLI -----------------------------------------------------------------------------

def call(w: World, handler: str, *args: object, **kwargs: object) -> ApiResponse:
    api = w.ctx.api()
    return guarded(lambda: getattr(api, handler)(*args, **kwargs))


def body_of(response: ApiResponse) -> dict[str, Any]:
    assert isinstance(response.body, dict), response.body
    return response.body


def two_drills(w: World) -> tuple[dict[str, Any], dict[str, Any]]:
    add_backup(w)
    first = started(w)
    drive_restore(w, first["jobId"])
    w.clock.advance(8 * 86400)
    add_backup(w, age=timedelta(days=-8))
    second = started(w)
    return first, second


def test_history_is_newest_first_and_filtered_by_instance() -> None:
    w = continuity_world(sync=False)
    first, second = two_drills(w)
    response = call(w, "list_drills", None)
    assert response.status == 200
    assert [d["jobId"] for d in body_of(response)["drills"]] == [second["jobId"], first["jobId"]]
    assert all("announced" not in d for d in body_of(response)["drills"])
    assert len(body_of(call(w, "list_drills", "prod"))["drills"]) == 2
    assert call(w, "list_drills", "apim-dev").body == {"drills": []}


@pytest.mark.parametrize(("service", "status"), [
    ("", 400), ("   ", 400), ("nope", 404), ("x" * 5000, 400), ("/subscriptions/../etc", 400), ("apim-dr", 404),
    ("apim-drill", 404),
])
def test_history_of_bad_references(service: str, status: int) -> None:
    response = call(continuity_world(sync=False), "list_drills", service)
    assert response.status == status and "error" in body_of(response)


def test_post_drill_answers_202_with_the_drill_and_its_operation() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    response = call(w, "post_drill", b'{"instance": "prod"}', base_url=BASE)
    assert response.status == 202, response.body
    drill = body_of(response)["drill"]
    assert drill["state"] == "running" and drill["trigger"] == "on-demand" and "announced" not in drill
    assert response.headers["Location"] == f"{BASE}/api/operations/{drill['jobId']}"


@pytest.mark.parametrize(("body", "status", "code"), [
    (None, 400, "BadRequest"), (b"", 400, "BadRequest"), (b"[]", 400, "BadRequest"), (b"{", 400, "BadRequest"),
    (b'{"instance": 7}', 400, "BadRequest"), (b'{"instance": ""}', 400, "BadRequest"),
    (b'{"instance": "prod", "force": true}', 400, "BadRequest"), (b"{}", 400, "BadRequest"),
    (b'{"instance": "nope"}', 404, "NotFound"), (b'{"instance": "apim-dev"}', 400, "BadRequest"),
    (b'{"instance": "' + b"a" * 70_000 + b'"}', 413, "PayloadTooLarge"),
    (b'{"instance": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "BadRequest"),
])
def test_post_drill_refuses_bad_input(body: bytes | None, status: int, code: str) -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    response = call(w, "post_drill", body, base_url=BASE)
    assert (response.status, body_of(response)["error"]["code"]) == (status, code)
    assert restore_jobs(w) == []


def test_post_drill_conflicts_and_refusals() -> None:
    w = continuity_world(sync=False)
    add_backup(w)
    assert call(w, "post_drill", b'{"instance": "prod"}', base_url=BASE).status == 202
    busy = call(w, "post_drill", b'{"instance": "prod"}', base_url=BASE)
    assert busy.status == 409 and body_of(busy)["error"]["code"] == "DrillTargetBusy"
    w2 = continuity_world(sync=False)
    w2.arm.add_service(DRILL, sku="Basic")
    add_backup(w2)
    refused = call(w2, "post_drill", b'{"instance": "prod"}', base_url=BASE)
    assert refused.status == 422 and body_of(refused)["drill"]["state"] == "failed"
    w3 = continuity_world(sync=False)
    none = call(w3, "post_drill", b'{"instance": "prod"}', base_url=BASE)
    assert none.status == 404 and body_of(none)["error"]["code"] == "NoVerifiableBackup"


def run_cli(w: World, *argv: str) -> tuple[int, str]:
    """The CLI on the fakes; its waits move the fake clock instead of sleeping."""
    out = io.StringIO()
    reset_context(w.ctx)
    try:
        code = main(list(argv), stdout=out)
    finally:
        reset_context()
    return code, out.getvalue()


def test_cli_drill_start_wait_verifies_and_prints_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    w = continuity_world(sync=False)
    monkeypatch.setattr("dr_core.cli.commands.time.sleep", w.clock.advance)
    add_backup(w)
    w.arm.configurations[DRILL] = PROD_CONFIG
    w.arm.poll_answers.append(PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}}))
    code, text = run_cli(w, "drill", "start", "--instance", "prod", "--wait", "--takeover-after", "0")
    assert code == EXIT_OK, text
    assert "PASSED" in text and "apis: 3 found of 3 expected" in text
    code, text = run_cli(w, "drills", "--service", "prod", "--json")
    assert code == EXIT_OK and json.loads(text)["drills"][0]["state"] == "passed"
    code, text = run_cli(w, "--json", "drills")
    assert code == EXIT_OK and len(json.loads(text)["drills"]) == 1


def test_cli_drill_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    w = continuity_world(sync=False)
    monkeypatch.setattr("dr_core.cli.commands.time.sleep", w.clock.advance)
    add_backup(w)
    w.arm.configurations[DRILL] = ConfigurationSummary(("echo-api",))
    w.arm.poll_answers.append(PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}}))
    code, text = run_cli(w, "drill", "start", "--instance", "prod", "--wait", "--takeover-after", "0")
    assert code == EXIT_FAILED and "missing customers-api, orders-api" in text
    w2 = continuity_world(sync=False)
    w2.arm.add_service(DRILL, sku="Premium")
    add_backup(w2)
    assert run_cli(w2, "drill", "start", "--instance", "prod")[0] == EXIT_REFUSED
    assert run_cli(continuity_world(sync=False), "drill", "start", "--instance", "prod")[0] == EXIT_NOT_FOUND
    assert run_cli(w2, "drills", "--service", "x" * 1000)[0] == EXIT_USAGE
    assert run_cli(w2, "drills", "--service", "nope")[0] == EXIT_NOT_FOUND
    with pytest.raises(SystemExit):
        run_cli(w2, "drill", "start")


def test_cli_standbys_shows_lag() -> None:
    w = continuity_world(drill=False)
    succeed_backup(w)
    (sync,) = restore_jobs(w)
    drive_restore(w, sync.job_id)
    code, text = run_cli(w, "standbys")
    assert code == EXIT_OK and "apim-dr (primary apim-prod): Succeeded, lag 0.17 h" in text
    code, text = run_cli(w, "standbys", "--json")
    assert json.loads(text)["standbys"][0]["lagHours"] == 0.17


def test_records_of_other_kinds_do_not_count_as_drills() -> None:
    w = continuity_world(sync=False)
    w.store.put_record(StoredRecord(RecordKind.RPO, "x", {"instance": rid(PROD), "state": "ok"}))
    assert call(w, "list_drills", None).body == {"drills": []}


def test_a_drill_target_is_a_restore_target_whose_source_defaults_to_its_primary() -> None:
    from dr_core.restore.request import RestoreRequest

    w = continuity_world(sync=False)
    add_backup(w)
    for reference in (DRILL, rid(DRILL), rid(DRILL).upper().replace("SUBSCRIPTIONS", "subscriptions")):
        plan = w.ctx.restorer().plan(RestoreRequest(target=reference))
        assert plan.source.service_name == PROD and plan.target.service_name == DRILL and not plan.refused


def test_each_drill_transition_is_one_structured_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from dr_core.drills.drills import LOG_FIELDS, LOG_PREFIX

    w = continuity_world(sync=False)
    add_backup(w)
    caplog.set_level("INFO", logger="apim_dr.events")
    drill = started(w)
    w.arm.configurations[DRILL] = ConfigurationSummary(("echo-api",))
    drive_restore(w, drill["jobId"])
    lines = [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
             if r.getMessage().startswith(LOG_PREFIX)]
    assert [line["state"] for line in lines] == ["running", "failed"]
    assert lines[1]["missing"] == 5 and lines[1]["error"]["code"] == "DrillVerificationFailed"
    assert all(line["jobId"] == drill["jobId"] and set(line) == set(LOG_FIELDS) for line in lines)


def test_a_drill_that_cannot_start_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    from dr_core.drills.drills import LOG_PREFIX

    w = continuity_world(sync=False)
    caplog.set_level("INFO", logger="apim_dr.events")
    assert w.ctx.drills().run_due() == []
    (line,) = [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
               if r.getMessage().startswith(LOG_PREFIX)]
    assert line["state"] == "not-started" and line["error"]["code"] == "NoVerifiableBackup"
    assert line["target"] == rid(DRILL) and line["error"]["remediation"]
