"""The HTTP handlers and the planner on in-memory fakes: statuses, bodies, headers, what gets written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dr_core.api.http import MAX_BODY_BYTES, ApiResponse, guarded
from dr_core.kernel.errors import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ArmCallError,
    ArmError,
    AzureUnavailableError,
    ConfigurationError,
    DrError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    exit_code,
    http_status,
)
from dr_core.kernel.phases import JobState
from dr_core.kernel.settings import SettingsError
from tests.unit.fakes import SUB, T0, World, rid, settings, world
from tests.unit.test_restore_preflight import add_backup, ready_world

BASE = "https://func.example"


def call(w: World, handler: str, *args: object, **kwargs: object) -> ApiResponse:
    api = w.ctx.api()
    return guarded(lambda: getattr(api, handler)(*args, **kwargs))


@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidRequestError("x"), 400, EXIT_USAGE),
    (PayloadTooLargeError("x"), 413, EXIT_USAGE),
    (NotFoundError("x"), 404, EXIT_NOT_FOUND),
    (ConfigurationError("x"), 503, EXIT_CONFIG),
    (SettingsError(["APIM_DR_X is bad"]), 503, EXIT_CONFIG),
    (AzureUnavailableError("x"), 503, EXIT_UNAVAILABLE),
    (ArmCallError(ArmError("AuthorizationFailed", "no", 403)), 502, EXIT_UNAVAILABLE),
])
def test_one_table_maps_errors_to_statuses_and_exit_codes(error: DrError, status: int, code: int) -> None:
    assert (http_status(error), exit_code(error)) == (status, code)
    body = guarded(lambda: (_ for _ in ()).throw(error)).body
    assert isinstance(body, dict) and body["error"]["code"] == error.error_code


def test_unexpected_exceptions_answer_an_opaque_500() -> None:
    response = guarded(lambda: (_ for _ in ()).throw(KeyError("secret-value")))
    assert response.status == 500 and "secret-value" not in response.json_bytes().decode()


@pytest.mark.parametrize(("body", "status"), [
    (None, 400), (b"", 400), (b"   ", 400), (b"{", 400), (b"[]", 400), (b'"text"', 400), (b"\xff\xfe", 400),
    (b'{"instance": 5}', 400), (b'{"other": 1}', 400), (b'{}', 400), (b"x" * (MAX_BODY_BYTES + 1), 413),
    (b'{"instance": "unknown"}', 404),
    (json.dumps({"instance": "/subscriptions/bad"}).encode(), 400),
])
def test_post_backup_rejects_bad_bodies(body: bytes | None, status: int) -> None:
    w = world()
    response = call(w, "post_backup", body, base_url=BASE)
    assert response.status == status, response.body
    assert w.store.rows == {} and w.queue.sent == []


def test_post_backup_answers_202_with_a_status_location() -> None:
    w = world()
    response = call(w, "post_backup", b'{"instance": "prod"}', base_url=BASE)
    assert response.status == 202
    assert isinstance(response.body, dict) and response.body["created"] is True
    job_id = response.body["id"]
    assert response.headers == {"Location": f"{BASE}/api/operations/{job_id}", "Retry-After": "10"}
    again = call(w, "post_backup", b'{"instance": "prod"}', base_url=BASE)
    assert isinstance(again.body, dict) and again.body["id"] == job_id and again.body["created"] is False
    status = call(w, "get_operation", job_id)
    assert status.status == 200 and status.headers == {"Retry-After": "10"}


@pytest.mark.parametrize(("job_id", "status"), [
    (None, 400), ("", 400), ("../../x", 400), ("backup-20261130T020000Z-apim-prod-00000000", 404),
    ("backup-20261399T020000Z-apim-prod-00000000", 400),
])
def test_get_operation_of_bad_or_unknown_ids(job_id: str | None, status: int) -> None:
    assert call(world(), "get_operation", job_id).status == status


def test_list_backups_marks_what_the_standby_can_restore() -> None:
    w = ready_world()
    add_backup(w, sku="Premium", age=timedelta(minutes=1))
    response = call(w, "list_backups", "prod")
    assert response.status == 200 and isinstance(response.body, dict)
    flags = [(b["sku"], b["restorable"]) for b in response.body["backups"]]
    assert flags == [("Premium", False), ("Standard", True)]
    assert response.body["restorableInto"] == rid("apim-dr")


@pytest.mark.parametrize(("service", "status"), [(None, 400), ("", 400), ("nope", 404), ("/x", 400)])
def test_list_backups_of_bad_references(service: str | None, status: int) -> None:
    assert call(ready_world(), "list_backups", service).status == status


def test_post_restore_answers_202_409_422_and_200_for_a_dry_run() -> None:
    w = ready_world()
    dry = call(w, "post_restore", b'{"target": "apim-dr", "dryRun": true}', base_url=BASE)
    assert dry.status == 200 and w.store.rows == {}
    started = call(w, "post_restore", b'{"target": "apim-dr"}', base_url=BASE)
    assert started.status == 202 and started.headers["Location"].startswith(f"{BASE}/api/operations/restore-")
    locked = call(w, "post_restore", b'{"target": "apim-dr"}', base_url=BASE)
    assert locked.status == 409
    w.arm.add_service("apim-dr", sku="Premium")
    other_tier = call(w, "post_restore", b'{"target": "apim-dr"}', base_url=BASE)
    assert other_tier.status in (409, 422)
    assert isinstance(other_tier.body, dict) and other_tier.body["error"]["code"] == "PreflightFailed"


def test_timer_plans_every_instance_once_per_slot() -> None:
    w = world(now=T0 + timedelta(seconds=1))
    first = w.ctx.planner().plan_scheduled()
    assert first.slot == T0 and len(first.planned) == 2 and not first.existing
    assert [m.op for m, _ in w.queue.take()] == ["fanout"]
    again = w.ctx.planner().plan_scheduled()
    assert again.planned == [] and sorted(again.existing) == sorted(first.planned) and w.queue.sent == []


def test_discovered_instances_are_planned_and_resolvable_everywhere() -> None:
    cfg = settings([rid("apim-prod")], APIM_DR_DISCOVERY_SUBSCRIPTIONS="00000000-0000-0000-0000-0000000000cc")
    w = world(cfg)
    w.arm.add_service("apim-tagged", tags={"apim-dr:backup": "true"})
    w.arm.add_service("apim-untagged")
    report = w.ctx.planner().plan_scheduled()
    assert sorted(w.store.rows[j].service_name for j in report.planned) == ["apim-prod", "apim-tagged"]
    w.clock.advance(60)
    job, created = w.ctx.planner().request_backup("apim-tagged")
    assert created and job.service_name == "apim-tagged"
    assert call(w, "list_backups", "apim-tagged").status == 200
    with pytest.raises(NotFoundError):
        w.ctx.planner().request_backup("apim-untagged")


def test_watchdog_resends_only_overdue_unfinished_jobs() -> None:
    w = world()
    job, _ = w.ctx.planner().request_backup("prod")
    w.queue.take()
    assert w.ctx.watchdog().requeue_stalled() == []
    w.clock.advance(10 * 60)
    assert w.ctx.watchdog().requeue_stalled() == [job.job_id]
    assert w.queue.ops() == [("start", 0)]
    w.store.rows[job.job_id].state = JobState.SUCCEEDED
    w.queue.take()
    assert w.ctx.watchdog().requeue_stalled() == []


# -- issue 8: errors that escaped, restores that collided -----------------------------------------------

def test_nested_json_is_a_400_not_a_recursion_error() -> None:
    w = world()
    for body in (b"[" * 10_000, b'{"instance": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"):
        assert call(w, "post_backup", body, base_url=BASE).status == 400
        assert call(w, "post_restore", body, base_url=BASE).status == 400


def test_nesting_is_measured_without_recursion_and_ignores_brackets_in_strings() -> None:
    from dr_core.api.http import MAX_JSON_DEPTH, json_depth, parse_json_object
    assert json_depth(b'{"instance": "prod"}') == 1
    assert json_depth(b'{"a": "[[[{{{\\"[[["}') == 1  # brackets and an escaped quote inside a string
    assert json_depth(b"[" * 200_000) == 200_000  # far beyond any recursion limit: counted, not recursed
    at_limit = b"[" * (MAX_JSON_DEPTH - 1) + b"{}" + b"]" * (MAX_JSON_DEPTH - 1)
    with pytest.raises(InvalidRequestError, match="must be a JSON object"):  # parsed: only its type is wrong
        parse_json_object(at_limit, allowed=set())
    with pytest.raises(InvalidRequestError, match=f"more than {MAX_JSON_DEPTH} levels"):
        parse_json_object(b"[" + at_limit + b"]", allowed=set())


def test_arm_unreachable_still_lists_the_catalog_with_a_warning() -> None:
    w = ready_world()
    w.arm.get_errors = [AzureUnavailableError("connection refused", code="ArmUnreachable")]
    response = call(w, "list_backups", "prod")
    assert response.status == 200 and isinstance(response.body, dict)
    assert response.body["backups"] and "connection refused" in response.body["warnings"][0]


def test_arm_unreachable_refuses_a_restore_with_a_named_check_and_503() -> None:
    w = ready_world()
    w.arm.get_errors = [AzureUnavailableError("connection refused", code="ArmUnreachable",
                                              remediation="Check APIM_DR_ARM_ENDPOINT")] * 2
    dry = call(w, "post_restore", b'{"target": "apim-dr", "dryRun": true}', base_url=BASE)
    assert dry.status == 200 and isinstance(dry.body, dict)
    failed = [c for c in dry.body["plan"]["preflight"] if c["outcome"] == "fail"]
    assert [c["name"] for c in failed] == ["target-exists"] and "APIM_DR_ARM_ENDPOINT" in failed[0]["remediation"]
    real = call(w, "post_restore", b'{"target": "apim-dr"}', base_url=BASE)
    assert real.status == 503 and w.queue.sent == []


def test_storage_unreachable_is_a_503_naming_what_to_do() -> None:
    w = world()

    def broken(*_: object, **__: object) -> None:
        raise AzureUnavailableError("the jobs table: connection refused", code="StorageUnreachable",
                                    remediation="Check that the storage account is reachable")

    w.store.get = broken  # type: ignore[method-assign]
    response = call(w, "get_operation", "backup-20261130T020000Z-apim-prod-00000000")
    assert response.status == 503 and isinstance(response.body, dict)
    error = response.body["error"]
    assert error["code"] == "StorageUnreachable" and "reachable" in error["remediation"]


def test_a_confirmed_restore_right_after_a_refused_one_is_accepted() -> None:
    w = ready_world()
    refused = call(w, "post_restore", b'{"target": "apim-prod"}', base_url=BASE)
    assert refused.status == 409
    confirmed = call(w, "post_restore", b'{"target": "apim-prod", "confirm": "apim-prod"}', base_url=BASE)
    assert confirmed.status == 202, confirmed.body
    assert isinstance(refused.body, dict) and isinstance(confirmed.body, dict)
    assert refused.body["operation"]["id"] != confirmed.body["operation"]["id"]
    assert w.clock.now() == T0  # both in the same second


# -- issue 9: starts paced to ARM's write bucket -------------------------------------------------------

def test_starts_are_paced_per_subscription_to_arms_write_bucket() -> None:
    from dr_core.jobs.launcher import ARM_WRITE_BURST, ARM_WRITES_PER_SECOND, paced_fanouts

    other_sub = "00000000-0000-0000-0000-0000000000dd"
    names = [f"apim-{i:04d}" for i in range(1000)]
    instances = [rid(n) for n in names] + [rid("apim-x").replace(SUB, other_sub)]
    w = world(settings(instances))
    report = w.ctx.planner().plan_scheduled()
    jobs = [w.store.rows[j] for j in report.planned]
    messages = paced_fanouts(jobs)
    assert all(len(m.jobs) <= 32 for m, _ in messages)
    assert sorted(j for m, _ in messages for j in m.jobs) == sorted(report.planned)
    # However the fan-outs run, no second of the schedule asks for more than the bucket holds.
    by_sub: dict[str, list[tuple[int, int]]] = {}
    for message, delay in messages:
        sub = w.store.rows[message.jobs[0]].resource_id.subscription_id
        by_sub.setdefault(sub, []).append((delay, len(message.jobs)))
    for schedule in by_sub.values():
        for t in range(0, 200):
            due = sum(n for delay, n in schedule if delay <= t)
            assert due <= ARM_WRITE_BURST + ARM_WRITES_PER_SECOND * t
    main = by_sub[SUB]
    assert sum(n for d, n in main if d == 0) >= ARM_WRITE_BURST - 32  # the burst is used at once
    assert max(d for d, _ in main) == (1000 - ARM_WRITE_BURST) // ARM_WRITES_PER_SECOND  # ... then 10/s
    assert by_sub[other_sub] == [(0, 1)]  # another subscription has its own bucket
    assert [(m.op, d) for m, d in w.queue.sent] == [("fanout", d) for _, d in messages]
