"""Starting jobs and resuming stalled ones: fan-outs paced to ARM's write bucket, and the watchdog."""

from __future__ import annotations

import math

from dr_core.jobs.launcher import ARM_WRITE_BURST, ARM_WRITES_PER_SECOND, paced_fanouts
from dr_core.kernel.phases import JobState
from tests.unit.fakes import SUB, rid, settings, world


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


def test_starts_are_paced_per_subscription_to_arms_write_bucket() -> None:
    other_sub = "00000000-0000-0000-0000-0000000000dd"
    names = [f"apim-{i:04d}" for i in range(1000)]
    instances = [{"resourceId": rid(n), "recovery": "native"} for n in names] + [
        {"resourceId": rid("apim-x").replace(SUB, other_sub), "recovery": "native"}]
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


def test_snapshot_starts_are_paced_to_the_snapshot_read_rate_apart_from_backups() -> None:
    names = [f"apim-{i:04d}" for i in range(500)]
    w = world(settings([{"resourceId": rid(n), "recovery": "both"} for n in names],
                       APIM_DR_SNAPSHOT_READS_PER_SECOND="20"))
    w.ctx.planner().plan_scheduled()
    sent = w.queue.take()
    snapshot_delays = [d for m, d in sent if m.jobs[0].startswith("snapshot-")]
    backup_delays = [d for m, d in sent if m.jobs[0].startswith("backup-")]
    assert max(backup_delays) == (500 - ARM_WRITE_BURST) // ARM_WRITES_PER_SECOND
    assert min(snapshot_delays) == 0 and max(snapshot_delays) == math.ceil((500 - 100) / 20)  # burst 100, 20/s
