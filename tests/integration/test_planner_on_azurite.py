"""The planner and the job store on real Azure Table and Queue storage (Azurite)."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dr_core.azure.tables import job_to_entity
from dr_core.context import DrContext
from dr_core.inventory.resolver import UnknownInstanceError
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.clock import ManualClock
from dr_core.kernel.errors import InvalidRequestError
from dr_core.kernel.phases import JobState
from dr_core.kernel.settings import load_settings
from dr_core.ports import JobConflictError

SUB = "00000000-0000-0000-0000-0000000000aa"


def rid(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-{name}/providers/Microsoft.ApiManagement/service/{name}"


@pytest.fixture
def ctx(azurite, monkeypatch):
    # A fresh table and queue per test: the names are fixed in code, so use a fresh account namespace
    # by clearing what a previous test left.
    settings = load_settings({
        "APIM_DR_RECOVERY": "native",  # planning native backups (snapshots are planned the same way)
        "AzureWebJobsStorage": azurite.connection_string(),
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": "apimdrbackups",
        "APIM_DR_INSTANCES": json.dumps([rid(f"apim-{i}") for i in range(3)] + [{"resourceId": rid("apim-a"),
                                                                                  "alias": "alpha"}]),
        "BACKUP_SCHEDULE": "0 0 2 * * *",
    })
    context = DrContext.from_settings(settings, clock=ManualClock(datetime.now(UTC)))
    table = context.clients.jobs_table()
    for cleanup in (table.delete_table, context.clients.work_queue().delete_queue,
                    context.clients.poll_queue().delete_queue):
        with contextlib.suppress(Exception):
            cleanup()
    context._storage_ready = False
    return context


def at(ctx: DrContext, moment: datetime) -> DrContext:
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.set(moment)
    return ctx


def drain(queue) -> list[WorkMessage]:
    out = []
    for m in queue.receive_messages(max_messages=32, visibility_timeout=1):
        out.append(WorkMessage.decode(m.content))
        queue.delete_message(m)
    return out


def test_timer_plans_one_job_per_instance_and_is_idempotent(ctx):
    now = datetime(2026, 11, 22, 2, 0, 1, tzinfo=UTC)
    first = at(ctx, now).planner().plan_scheduled()
    assert len(first.planned) == 4 and not first.existing
    assert first.slot == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    messages = drain(ctx.clients.work_queue())
    assert [m.op for m in messages] == ["fanout"]
    assert sorted(messages[0].jobs) == sorted(first.planned)
    for job_id in first.planned:
        job = ctx.jobs.get(job_id)
        assert job is not None and job.state is JobState.PLANNED
        assert job.blob_name.endswith("-20261122T020000Z.apimbackup")

    again = at(ctx, now + timedelta(seconds=30)).planner().plan_scheduled()
    assert not again.planned and sorted(again.existing) == sorted(first.planned)
    assert drain(ctx.clients.work_queue()) == []


def test_a_timer_firing_just_before_its_slot_plans_that_slot(ctx):
    report = at(ctx, datetime(2026, 11, 22, 1, 59, 59, 500000, tzinfo=UTC)).planner().plan_scheduled()
    assert report.slot == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_partial_rows_from_an_interrupted_plan_are_completed(ctx):
    now = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)
    report = at(ctx, now).planner().plan_scheduled()
    drain(ctx.clients.work_queue())
    # Simulate a crash that wrote only some rows: delete two, plan again.
    table = ctx.clients.jobs_table()
    for job_id in report.planned[:2]:
        job = ctx.jobs.get(job_id)
        table.delete_entity(job_to_entity(job)["PartitionKey"], job_id)
    again = ctx.planner().plan_scheduled()
    assert sorted(again.planned) == sorted(report.planned[:2])


def test_on_demand_backup_dedupes_within_a_second(ctx):
    now = datetime(2026, 11, 22, 10, 0, 0, 300000, tzinfo=UTC)
    job, created = at(ctx, now).planner().request_backup("alpha")
    assert created and job.trigger == "on-demand" and job.service_name == "apim-a"
    again, created_again = at(ctx, now.replace(microsecond=900000)).planner().request_backup(rid("apim-a"))
    assert not created_again and again.job_id == job.job_id
    assert [m.op for m in drain(ctx.clients.work_queue())] == ["start"]
    with pytest.raises(UnknownInstanceError):
        ctx.planner().request_backup("unknown-instance")
    with pytest.raises(InvalidRequestError):
        ctx.planner().request_backup({"not": "a string"})


def test_updates_are_conditional(ctx):
    job, _ = ctx.planner().request_backup("apim-0")
    a, b = ctx.jobs.get(job.job_id), ctx.jobs.get(job.job_id)
    a.wait_reason = "first"
    ctx.jobs.update(a)
    b.wait_reason = "second"
    with pytest.raises(JobConflictError):
        ctx.jobs.update(b)
    assert ctx.jobs.get(job.job_id).wait_reason == "first"


def test_watchdog_requeues_only_overdue_unfinished_jobs(ctx):
    job, _ = ctx.planner().request_backup("apim-1")
    drain(ctx.clients.work_queue())
    assert ctx.watchdog().requeue_stalled() == []
    later = ctx.clock.now() + timedelta(minutes=10)
    assert at(ctx, later).watchdog().requeue_stalled() == [job.job_id]
    assert [m.op for m in drain(ctx.clients.work_queue())] == ["start"]


def test_thousand_instances_plan_in_few_requests(azurite):
    settings = load_settings({
        "APIM_DR_RECOVERY": "native",  # planning native backups (snapshots are planned the same way)
        "AzureWebJobsStorage": azurite.connection_string(),
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": "apimdrbackups",
        "APIM_DR_INSTANCES": json.dumps([rid(f"apim-{uuid.uuid4().hex[:12]}") for _ in range(1000)]),
    })
    context = DrContext.from_settings(settings, clock=ManualClock(datetime(2027, 1, 5, 2, 0, tzinfo=UTC)))
    report = context.planner().plan_scheduled()
    assert len(report.planned) == 1000
    # 1000 jobs travel in ceil(1000/32) fanout messages, not 1000 sends.
    queue = context.clients.work_queue()
    count = queue.get_queue_properties().approximate_message_count
    assert count is not None and count >= 32


def test_polls_travel_on_their_own_queue(ctx):
    job, _ = ctx.planner().request_backup("apim-2")
    drain(ctx.clients.work_queue())
    ctx.queue.send([(WorkMessage("poll", job=job.job_id, seq=1), 0), (WorkMessage("start", job=job.job_id), 0)])
    assert [m.op for m in drain(ctx.clients.poll_queue())] == ["poll"]
    assert [m.op for m in drain(ctx.clients.work_queue())] == ["start"]
