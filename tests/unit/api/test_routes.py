"""The HTTP handlers on in-memory fakes: statuses, bodies, headers, what gets written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dr_core.api.http import MAX_BODY_BYTES, ApiResponse, guarded
from dr_core.kernel.errors import (
    AzureUnavailableError,
    InvalidRequestError,
)
from tests.unit.fakes import T0, World, rid, world
from tests.unit.restore.test_preflight import add_backup, ready_world

BASE = "https://func.example"


def call(w: World, handler: str, *args: object, **kwargs: object) -> ApiResponse:
    api = w.ctx.api()
    return guarded(lambda: getattr(api, handler)(*args, **kwargs))


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
