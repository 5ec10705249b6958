"""Restoring a configuration snapshot on fakes: the checks at the door, the plan, dry run, applying in order
with If-Match, conflicts, long-running creates, partial failure and running the same restore again."""

from __future__ import annotations

import copy

import pytest

from dr_core.jobs.job import Job, Trigger
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.errors import ArmError, InvalidRequestError
from dr_core.kernel.phases import JobState
from dr_core.snapshots.kinds import parse_item_id
from dr_core.snapshots.restoring import SnapshotRestoreRequest, parse_snapshot_restore_request
from tests.unit.fakes import World, rid
from tests.unit.snapshots.test_capture import run, snapshot_world, start

STANDBY = "apim-dr"


def with_snapshot(tier: str = "StandardV2") -> tuple[World, Job]:
    w = snapshot_world(tier, standby=STANDBY)
    w.arm.add_service(STANDBY, sku="BasicV2")
    snap = run(w, start(w).job_id)
    assert snap.state is JobState.SUCCEEDED
    w.reader.configurations[STANDBY] = {}
    return w, snap


def restore(w: World, request: SnapshotRestoreRequest) -> Job:
    started = w.ctx.snapshot_restorer().start(request, trigger=Trigger.CLI)
    assert not started.refused, [c.to_json() for c in started.failed_checks]
    assert started.job is not None
    return run(w, started.job.job_id)


def config(w: World, service: str) -> dict[str, dict]:
    """What the instance holds, ignoring where references point (a restore re-points them at the target)."""
    items = copy.deepcopy(w.reader.configurations[service])
    for body in items.values():
        properties = body.get("properties", {})
        for key, value in list(properties.items()):
            if isinstance(value, str) and "/providers/Microsoft.ApiManagement/service/" in value:
                properties[key] = value.rsplit("/service/", 1)[1].split("/", 1)[1]
    return items


def test_a_whole_snapshot_restored_into_an_empty_instance_of_another_tier_creates_everything_in_order() -> None:
    w, _ = with_snapshot()
    job = restore(w, SnapshotRestoreRequest(target=rid(STANDBY), snapshot="latest", source=rid("apim-prod")))
    assert job.state is JobState.REFUSED, "the secret's value was never captured and the standby lacks it"
    assert job.config_restore is not None and job.config_restore.problems[0]["check"] == "secret-values-present"
    assert w.writer is not None and w.writer.writes == []  # nothing was changed
    # Once someone creates the secret by hand, the same restore goes through.
    w.reader.add(STANDBY, "named-values/signing-key", displayName="signing-key", secret=True)
    job = restore(w, SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod")))
    assert job.state is JobState.SUCCEEDED, job.error_message
    progress = job.config_restore
    assert progress is not None and progress.applied == progress.steps and progress.kept == 1
    written = [item for _, action, item, _ in w.writer.writes if action == "put"]
    assert written.index("named-values/backend-url") < written.index("apis/echo-api") < \
        written.index("apis/echo-api/operations/get") < written.index("apis/echo-api/policy")
    assert written.index("products/starter") < written.index("products/starter/apis/echo-api")
    # References point at the standby now, and it holds what the snapshot held.
    standby_api = w.reader.configurations[STANDBY]["apis/orders-api"]["properties"]
    assert standby_api["apiVersionSetId"] == f"{rid(STANDBY)}/apiVersionSets/v1"
    produced = config(w, STANDBY)
    wanted = config(w, "apim-prod")
    assert produced.keys() == wanted.keys()
    assert produced["apis/echo-api"] == wanted["apis/echo-api"]


def test_a_dry_run_plans_and_changes_nothing() -> None:
    w, _ = with_snapshot()
    w.reader.add(STANDBY, "named-values/signing-key", displayName="signing-key", secret=True)
    w.reader.add(STANDBY, "apis/extra", displayName="extra", path="extra")
    job = restore(w, SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod"), dry_run=True))
    assert job.state is JobState.SUCCEEDED and job.config_restore is not None
    assert job.config_restore.counts["delete"] == 1 and job.config_restore.counts["create"] > 10
    assert any(line.startswith("delete apis/extra") for line in job.config_restore.shown_steps)
    assert w.writer is not None and w.writer.writes == [] and "apis/extra" in w.reader.configurations[STANDBY]


def test_one_api_restored_into_its_own_instance_mends_it_and_touches_nothing_else() -> None:
    w, _ = with_snapshot()
    prod = w.reader.configurations["apim-prod"]
    prod["apis/echo-api"]["properties"]["path"] = "broken"
    del prod["apis/echo-api/operations/get/policy"]
    prod["apis/echo-api/operations/debug"] = {"properties": {"displayName": "debug", "method": "GET",
                                                              "urlTemplate": "/debug"}}
    prod["apis/orders-api"]["properties"]["displayName"] = "changed elsewhere, stays"
    request = SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("apis/echo-api"),))
    refused = w.ctx.snapshot_restorer().start(request, trigger=Trigger.CLI)
    assert [c.name for c in refused.failed_checks] == ["target-is-not-source-or-primary"] and refused.job is None
    job = restore(w, SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("apis/echo-api"),),
                                            confirm="apim-prod"))
    assert job.state is JobState.SUCCEEDED, job.error_message
    assert prod["apis/echo-api"]["properties"]["path"] == "echo"
    assert "apis/echo-api/operations/get/policy" in prod and "apis/echo-api/operations/debug" not in prod
    assert prod["apis/orders-api"]["properties"]["displayName"] == "changed elsewhere, stays"
    assert w.writer is not None
    touched = {item for _, _, item, _ in w.writer.writes}
    assert touched == {"apis/echo-api", "apis/echo-api/operations/get/policy", "apis/echo-api/operations/debug"}


def test_running_the_same_restore_again_writes_nothing_and_updates_use_the_etag_they_read() -> None:
    w, _ = with_snapshot()
    prod = w.reader.configurations["apim-prod"]
    prod["backends/orders"]["properties"]["url"] = "https://evil.example"
    request = SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("backends/orders"),),
                                     confirm="apim-prod")
    assert restore(w, request).state is JobState.SUCCEEDED
    assert w.writer is not None
    assert w.writer.writes == [("apim-prod", "put", "backends/orders", '"1"')]
    again = restore(w, request)
    assert again.state is JobState.SUCCEEDED and again.config_restore is not None
    assert again.config_restore.steps == 0 and len(w.writer.writes) == 1


def test_a_change_between_read_and_write_is_a_conflict_that_stops_the_restore_and_says_what_was_applied() -> None:
    w, _ = with_snapshot()
    prod = w.reader.configurations["apim-prod"]
    prod["apis/echo-api"]["properties"]["path"] = "broken"
    prod["apis/echo-api/policy"]["properties"]["value"] = "<policies>broken</policies>"
    assert w.writer is not None

    def someone_else(service: str, item: str) -> None:
        if item == "apis/echo-api/policy":  # someone edits the policy while we restore it
            w.writer.etags[(service, item)] = 99  # type: ignore[union-attr]

    w.writer.before_put = someone_else
    job = restore(w, SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("apis/echo-api"),),
                                            confirm="apim-prod"))
    assert job.state is JobState.FAILED and job.error_code == "PreconditionFailed"
    assert job.config_restore is not None and job.config_restore.conflicts == 1
    failed = job.config_restore.failed_step
    assert failed is not None and failed["item"] == "apis/echo-api/policy"
    assert "Applied before it: 1" in (job.error_message or "") and "not applied: 1" in (job.error_message or "")
    assert prod["apis/echo-api"]["properties"]["path"] == "echo"  # the step before it stays applied
    # Run again once the other writer is done: it continues, the applied step is found done.
    w.writer.before_put = None
    again = restore(w, SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("apis/echo-api"),),
                                              confirm="apim-prod"))
    assert again.state is JobState.SUCCEEDED and prod["apis/echo-api/policy"]["properties"]["value"] != \
        "<policies>broken</policies>"


def test_a_long_running_create_is_polled_in_later_steps_never_waited_on() -> None:
    w, _ = with_snapshot()
    assert w.writer is not None
    w.writer.lro = {"apis"}
    w.writer.lro_polls = 2
    del w.reader.configurations["apim-prod"]["apis/stats-api"]
    for key in [k for k in w.reader.configurations["apim-prod"] if k.startswith("apis/stats-api/")]:
        del w.reader.configurations["apim-prod"][key]
    job = restore(w, SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("apis/stats-api"),),
                                            confirm="apim-prod"))
    assert job.state is JobState.SUCCEEDED
    assert "apis/stats-api" in w.reader.configurations["apim-prod"]


def test_a_throttled_write_waits_and_goes_on() -> None:
    w, _ = with_snapshot()
    assert w.writer is not None
    w.reader.configurations["apim-prod"]["backends/orders"]["properties"]["url"] = "https://changed"
    w.writer.errors = [ArmError("SubscriptionRequestsThrottled", "too many writes", 429, retry_after=12)]
    job = restore(w, SnapshotRestoreRequest(target=rid("apim-prod"), items=(parse_item_id("backends/orders"),),
                                            confirm="apim-prod"))
    assert job.state is JobState.SUCCEEDED and len(w.writer.writes) == 2


@pytest.mark.parametrize(("body", "field"), [
    ({}, "target"),
    ({"target": "apim-dr", "items": []}, "items"),
    ({"target": "apim-dr", "items": "apis/echo-api"}, "items"),
    ({"target": "apim-dr", "items": ["users/bob"]}, "items[0]"),
    ({"target": "apim-dr", "items": ["apis/<script>"]}, "items[0]"),
    ({"target": "apim-dr", "items": [f"apis/a{i}" for i in range(101)]}, "items"),
    ({"target": "apim-dr", "dryRun": "yes"}, "dryRun"),
    ({"target": "apim-dr", "confirm": "x" * 101}, "confirm"),
    ({"target": "apim-dr", "extra": 1}, "extra"),
])
def test_a_bad_request_is_refused_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_snapshot_restore_request("latest", body)
    assert field in raised.value.fields


@pytest.mark.parametrize("snapshot", ["../../etc/passwd", "apim-prod", "apim-prod-20261399T000000Z", "", 7])
def test_a_bad_snapshot_id_is_refused_naming_it(snapshot: object) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_snapshot_restore_request(snapshot, {"target": "apim-dr"})
    assert "snapshot" in raised.value.fields


def test_checks_at_the_door_refuse_by_name_and_start_nothing() -> None:
    w, snap = with_snapshot()
    restorer = w.ctx.snapshot_restorer()
    missing = restorer.start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod"),
                                                    snapshot=snap.blob_name.replace("0000Z", "0001Z")),
                             trigger=Trigger.CLI)
    assert [c.name for c in missing.failed_checks] == ["snapshot-exists"]
    not_held = restorer.start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod"),
                                                     items=(parse_item_id("apis/nope"),)), trigger=Trigger.CLI)
    assert [c.name for c in not_held.failed_checks] == ["items-in-snapshot"]
    w.arm.add_service(STANDBY, sku="BasicV2", state="Updating")
    busy = restorer.start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod")), trigger=Trigger.CLI)
    assert [c.name for c in busy.failed_checks] == ["target-idle"] and busy.status == 409
    w.arm.add_service(STANDBY, sku="Consumption")
    no_groups = restorer.start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod"),
                                                      items=(parse_item_id("groups/developers"),)),
                               trigger=Trigger.CLI)
    assert [c.name for c in no_groups.failed_checks] == ["tier-supports-items"]
    assert not any(j.kind.value == "config-restore" for j in w.store.rows.values())


def test_one_restore_at_a_time_into_a_target_whatever_its_kind() -> None:
    w, _ = with_snapshot()
    w.reader.add(STANDBY, "named-values/signing-key", displayName="signing-key", secret=True)
    first = w.ctx.snapshot_restorer().start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod")),
                                            trigger=Trigger.CLI)
    assert first.job is not None
    second = w.ctx.snapshot_restorer().start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod")),
                                             trigger=Trigger.CLI)
    assert second.job is None and [c.name for c in second.failed_checks] == ["no-restore-in-progress"]
    run(w, first.job.job_id)
    third = w.ctx.snapshot_restorer().start(SnapshotRestoreRequest(target=rid(STANDBY), source=rid("apim-prod")),
                                            trigger=Trigger.CLI)
    assert third.job is not None  # the lock was released when the first ended


def test_a_stale_message_applies_nothing_twice() -> None:
    w, _ = with_snapshot()
    w.reader.configurations["apim-prod"]["backends/orders"]["properties"]["url"] = "https://changed"
    started = w.ctx.snapshot_restorer().start(SnapshotRestoreRequest(
        target=rid("apim-prod"), items=(parse_item_id("backends/orders"),), confirm="apim-prod"), trigger=Trigger.CLI)
    assert started.job is not None
    job = run(w, started.job.job_id)
    assert w.writer is not None and len(w.writer.writes) == 1
    worker = w.ctx.worker(followers=[])
    worker.handle(WorkMessage("poll", job=job.job_id, seq=job.poll_seq - 1).encode())
    worker.handle(WorkMessage("start", job=job.job_id).encode())
    assert len(w.writer.writes) == 1


def test_a_step_whose_item_is_already_as_wanted_writes_nothing() -> None:
    w, _ = with_snapshot()
    prod = w.reader.configurations["apim-prod"]
    wanted = copy.deepcopy(prod["backends/orders"])
    prod["backends/orders"]["properties"]["url"] = "https://changed"
    started = w.ctx.snapshot_restorer().start(SnapshotRestoreRequest(
        target=rid("apim-prod"), items=(parse_item_id("backends/orders"),), confirm="apim-prod"), trigger=Trigger.CLI)
    assert started.job is not None
    worker = w.ctx.worker(followers=[])
    while (job := w.store.rows[started.job.job_id]).config_restore is None or \
            job.config_restore.phase != "applying":
        for message, delay in w.queue.take():
            w.clock.advance(delay)
            worker.handle(message.encode())
    prod["backends/orders"] = wanted  # mended by hand (or by a run that crashed after its write) before the step
    done = run(w, job.job_id)
    assert done.state is JobState.SUCCEEDED and done.config_restore is not None
    assert (done.config_restore.applied, done.config_restore.already) == (0, 1)
    assert w.writer is not None and w.writer.writes == []
