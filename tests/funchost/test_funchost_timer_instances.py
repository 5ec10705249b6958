"""Timers across host instances on one storage account, on emulated time (the stand-in's ManualClock).

Each timer runs on the one instance that holds its listener lock (a blob lease in
azure-webjobs-hosts); the schedule monitor's status blob makes a restarted app fire a missed
occurrence once, past due. The sample app's host.json sets the shortest listener lock period and
recovery interval the host accepts (15 s each), so a takeover after a kill takes 15-30 s of real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from funchost_support import SAMPLE_APP, SampleEnv, stored_status, wait_until

from emulator.funchost import HOSTS_CONTAINER, FunctionsHost, HostFleet, ManualClock, listener_lock_blob

T0 = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
TAKEOVER_TIMEOUT = 60.0  # lease expiry (<= 15 s) + recovery polling (<= 15 s), with room to spare


def fleet(env: SampleEnv, clock: ManualClock, instances: int, **settings: str) -> HostFleet:
    return HostFleet(SAMPLE_APP, {**env.settings, **settings}, instances=instances, clock=clock,
                     run_timers=True, run_queues=False, http_port=None)


def firings(hosts: HostFleet | FunctionsHost, name: str) -> list[Any]:
    return [r for r in hosts.invocations if r.function == name and r.trigger == "timer"]


def test_each_timer_fires_once_per_occurrence_across_four_instances_for_an_hour(sample_env: SampleEnv) -> None:
    clock = ManualClock(T0)
    # sample_timer keeps no status (useMonitor false); sample_monitored_timer keeps one.
    with fleet(sample_env, clock, 4, SAMPLE_SCHEDULE="0 */5 * * * *", SAMPLE_MONITORED_SCHEDULE="0 */15 * * * *") as f:
        holders = {name: f.wait_timer_holder(name, 10) for name in ("sample_timer", "sample_monitored_timer")}
        # Exactly one instance holds each lock; the others poll for it.
        for name in holders:
            assert sum(h.timer_lock_held(name) for h in f.hosts) == 1
        for minute in range(1, 61):
            clock.set(T0.replace(second=0) + timedelta(minutes=minute))
            due = {"sample_timer": minute // 5, "sample_monitored_timer": minute // 15}
            for name, count in due.items():
                wait_until(lambda n=name, c=count: len(firings(f, n)) >= c, 10, f"{name} firing {count}")
        time.sleep(0.5)  # room for a duplicate to show up, had one been started
        host_id = f.hosts[0].host_id
    for name, expected in (("sample_timer", 12), ("sample_monitored_timer", 4)):
        records = firings(f, name)
        assert len(records) == expected, [r.details for r in records]
        assert {r.instance_id for r in records} == {holders[name].instance_id}
        assert all(r.succeeded and r.details["past_due"] is False for r in records)
    # The monitored timer was told each occurrence's status; the stored one points at the next quarter.
    nexts = [r.details["schedule_status"]["Next"] for r in firings(f, "sample_monitored_timer")]
    assert nexts == [f"2030-01-01T00:{m:02d}:00+00:00" for m in (15, 30, 45)] + ["2030-01-01T01:00:00+00:00"]
    status = stored_status(sample_env, host_id, "sample_monitored_timer")
    assert status is not None and status.next == datetime(2030, 1, 1, 1, 15, tzinfo=UTC)
    assert datetime(2030, 1, 1, 1, 0, tzinfo=UTC) <= status.last < datetime(2030, 1, 1, 1, 1, tzinfo=UTC)
    assert stored_status(sample_env, host_id, "sample_timer") is None  # useMonitor false: no status blob


def test_the_lock_blob_is_where_the_real_host_puts_it(sample_env: SampleEnv) -> None:
    from azure.storage.blob import ContainerClient

    with fleet(sample_env, ManualClock(T0), 2) as f:
        holder = f.wait_timer_holder("sample_monitored_timer", 10)
        container = ContainerClient.from_connection_string(sample_env.azurite.connection_string, HOSTS_CONTAINER)
        name = listener_lock_blob(holder.host_id, "Host.Functions.sample_monitored_timer")
        expected_host_id = sample_env.settings["AzureFunctionsJobHost__id"]
        assert name == f"locks/{expected_host_id}/Host.Functions.sample_monitored_timer.Listener"
        properties = container.get_blob_client(name).get_blob_properties()
        assert properties.lease.state == "leased" and properties.lease.duration == "fixed"
    # A clean stop releases the lease.
    assert container.get_blob_client(name).get_blob_properties().lease.state == "available"


def test_killing_the_lock_holder_moves_the_next_occurrence_to_another_instance(sample_env: SampleEnv) -> None:
    clock = ManualClock(T0)
    with fleet(sample_env, clock, 3, SAMPLE_MONITORED_SCHEDULE="0 */5 * * * *") as f:
        first = f.wait_timer_holder("sample_monitored_timer", 10)
        clock.set(datetime(2030, 1, 1, 0, 5, tzinfo=UTC))
        wait_until(lambda: firings(f, "sample_monitored_timer"), 10, "the 00:05 firing")
        killed_at = time.monotonic()
        f.kill(first)
        # The lease runs out (it is not released) and another instance's recovery poll takes it.
        second = f.wait_timer_holder("sample_monitored_timer", TAKEOVER_TIMEOUT)
        takeover = time.monotonic() - killed_at
        assert second is not first
        clock.set(datetime(2030, 1, 1, 0, 10, tzinfo=UTC))
        wait_until(lambda: len(firings(f, "sample_monitored_timer")) >= 2, 10, "the 00:10 firing")
        time.sleep(0.5)
    records = firings(f, "sample_monitored_timer")
    assert [r.instance_id for r in records] == [first.instance_id, second.instance_id]
    assert [r.details["past_due"] for r in records] == [False, False]
    # The new holder read the status the dead one wrote: it waited for 00:10, not for a past 00:05.
    assert records[1].details["schedule_status"]["Next"] == "2030-01-01T00:10:00+00:00"
    assert 0 < takeover <= TAKEOVER_TIMEOUT
    print(f"takeover after a kill: {takeover:.1f} s (listenerLockPeriod 15 s, recovery polling 15 s)")


def test_a_holder_killed_across_an_occurrence_leaves_it_to_fire_past_due_on_the_next_holder(
        sample_env: SampleEnv) -> None:
    clock = ManualClock(datetime(2030, 1, 1, 1, 59, 50, tzinfo=UTC))
    with fleet(sample_env, clock, 2, SAMPLE_MONITORED_SCHEDULE="0 0 2 * * *") as f:
        first = f.wait_timer_holder("sample_monitored_timer", 10)
        wait_until(lambda: stored_status(sample_env, first.host_id, "sample_monitored_timer"), 10, "the status")
        f.kill(first)
        clock.set(datetime(2030, 1, 1, 2, 0, 5, tzinfo=UTC))  # 02:00 passes while nobody runs the timer
        second = f.wait_timer_holder("sample_monitored_timer", TAKEOVER_TIMEOUT)
        (record,) = wait_until(lambda: firings(f, "sample_monitored_timer"), 10, "the past-due firing")
    assert record.instance_id == second.instance_id and record.details["past_due"] is True
    assert record.details["unscheduled_reason"] == "IsPastDue"
    assert record.details["original_schedule"] == "2030-01-01T02:00:00+00:00"


def test_all_instances_down_across_an_occurrence_fire_it_once_past_due_when_back(sample_env: SampleEnv) -> None:
    clock = ManualClock(datetime(2030, 1, 1, 1, 50, tzinfo=UTC))
    settings = {"SAMPLE_MONITORED_SCHEDULE": "0 0 2 * * *"}
    with fleet(sample_env, clock, 2, **settings) as first_run:
        first_run.wait_timer_holder("sample_monitored_timer", 10)
        host_id = first_run.hosts[0].host_id
        initial = wait_until(lambda: stored_status(sample_env, host_id, "sample_monitored_timer"), 10, "the status")
    # A new timer's first status: Next is the coming 02:00, LastUpdated when it was written, Last unset.
    assert initial.next == datetime(2030, 1, 1, 2, 0, tzinfo=UTC) and initial.last.year == 1
    assert firings(first_run, "sample_monitored_timer") == []
    clock.set(datetime(2030, 1, 1, 2, 30, tzinfo=UTC))  # the app was down at 02:00, back 30 minutes later
    with fleet(sample_env, clock, 2, **settings) as second_run:
        (record,) = wait_until(lambda: firings(second_run, "sample_monitored_timer"), 20, "the past-due firing")
        time.sleep(1.0)
        assert len(firings(second_run, "sample_monitored_timer")) == 1
    assert record.details["past_due"] is True and record.succeeded
    assert record.details["schedule_status"]["Next"] == "2030-01-01T02:00:00+00:00"
    (row,) = sample_env.records("sample_monitored_timer")
    assert row["past_due"] is True and row["schedule_status"]["Next"] == "2030-01-01T02:00:00+00:00"
    status = stored_status(sample_env, host_id, "sample_monitored_timer")
    assert status is not None and status.next == datetime(2030, 1, 2, 2, 0, tzinfo=UTC)
    assert datetime(2030, 1, 1, 2, 30, tzinfo=UTC) <= status.last < datetime(2030, 1, 1, 2, 31, tzinfo=UTC)


def test_down_for_several_occurrences_fires_once_past_due_then_keeps_the_schedule(sample_env: SampleEnv) -> None:
    clock = ManualClock(datetime(2030, 1, 1, 1, 50, tzinfo=UTC))
    settings = {**sample_env.settings, "SAMPLE_MONITORED_SCHEDULE": "0 0 * * * *"}
    options: dict[str, Any] = {"run_timers": True, "run_queues": False, "http_port": None, "clock": clock}
    with FunctionsHost(SAMPLE_APP, settings, **options) as host:
        assert host.wait_timer_lock("sample_monitored_timer", 10)
        wait_until(lambda: stored_status(sample_env, host.host_id, "sample_monitored_timer"), 10, "the status")
    clock.set(datetime(2030, 1, 1, 4, 30, tzinfo=UTC))  # 02:00, 03:00 and 04:00 missed
    with FunctionsHost(SAMPLE_APP, settings, **options) as host:
        wait_until(lambda: firings(host, "sample_monitored_timer"), 20, "the past-due firing")
        time.sleep(1.0)
        assert [r.details["past_due"] for r in firings(host, "sample_monitored_timer")] == [True]
        clock.set(datetime(2030, 1, 1, 5, 0, tzinfo=UTC))
        wait_until(lambda: len(firings(host, "sample_monitored_timer")) == 2, 10, "the 05:00 firing")
    records = firings(host, "sample_monitored_timer")
    assert [r.details["past_due"] for r in records] == [True, False]
    assert records[0].details["original_schedule"] == "2030-01-01T02:00:00+00:00"
    assert records[1].details["schedule_status"]["Next"] == "2030-01-01T05:00:00+00:00"


def test_a_changed_schedule_is_not_past_due(sample_env: SampleEnv) -> None:
    clock = ManualClock(datetime(2030, 1, 1, 1, 50, tzinfo=UTC))
    base = {**sample_env.settings}
    options: dict[str, Any] = {"run_timers": True, "run_queues": False, "http_port": None, "clock": clock}
    with FunctionsHost(SAMPLE_APP, {**base, "SAMPLE_MONITORED_SCHEDULE": "0 0 2 * * *"}, **options) as host:
        wait_until(lambda: stored_status(sample_env, host.host_id, "sample_monitored_timer"), 10, "the status")
    clock.set(datetime(2030, 1, 1, 2, 30, tzinfo=UTC))
    # Redeployed with another schedule while down: the stored Next no longer follows from the
    # schedule, so the host recomputes it from now instead of firing past due (ScheduleMonitor.CheckPastDueAsync).
    with FunctionsHost(SAMPLE_APP, {**base, "SAMPLE_MONITORED_SCHEDULE": "0 0 3 * * *"}, **options) as host:
        assert host.wait_timer_lock("sample_monitored_timer", 10)
        status = wait_until(
            lambda: (s := stored_status(sample_env, host.host_id, "sample_monitored_timer"))
            and s.next.hour == 3 and s, 10, "the corrected status")
        time.sleep(1.0)
        assert firings(host, "sample_monitored_timer") == []
    assert status.next == datetime(2030, 1, 1, 3, 0, tzinfo=UTC)


def test_a_run_that_overruns_its_interval_is_followed_by_one_immediate_run(sample_env: SampleEnv) -> None:
    # TimerListener computes Next from the invocation's start: an overrun means the next is already due.
    clock = ManualClock(datetime(2030, 1, 1, 0, 3, tzinfo=UTC))
    settings = {**sample_env.settings, "SAMPLE_MONITORED_SCHEDULE": "0 */5 * * * *"}
    with FunctionsHost(SAMPLE_APP, settings, run_timers=True, run_queues=False, http_port=None,
                       clock=clock) as host:
        assert host.wait_timer_lock("sample_monitored_timer", 10)
        blueprint: Any = __import__("sample_steps")
        real_record = blueprint.record

        def slow_record(function: str, **fields: Any) -> None:
            real_record(function, **fields)
            if function == "sample_monitored_timer" and len(sample_env.records(function)) == 1:
                clock.advance(timedelta(minutes=12))  # the first run "takes" twelve minutes

        blueprint.record = slow_record
        try:
            clock.set(datetime(2030, 1, 1, 0, 5, tzinfo=UTC))
            wait_until(lambda: len(firings(host, "sample_monitored_timer")) >= 2, 10, "the catch-up run")
            time.sleep(0.5)
        finally:
            blueprint.record = real_record
    records = firings(host, "sample_monitored_timer")
    assert len(records) == 2, [r.details for r in records]
    assert records[1].details["schedule_status"]["Next"] == "2030-01-01T00:10:00+00:00"
    assert records[1].details["past_due"] is False


def test_a_holder_killed_after_a_run_but_before_writing_its_status_makes_the_next_holder_run_it_again(
        sample_env: SampleEnv) -> None:
    # At least once, not exactly once: the status is written after the invocation. An instance that
    # dies in between leaves Next at the occurrence it just ran, so the next holder finds it past due.
    clock = ManualClock(datetime(2030, 1, 1, 0, 3, tzinfo=UTC))
    with fleet(sample_env, clock, 2, SAMPLE_MONITORED_SCHEDULE="0 */5 * * * *") as f:
        first = f.wait_timer_holder("sample_monitored_timer", 10)
        steps: Any = __import__("sample_steps")
        real_record = steps.record

        def record_then_die(function: str, **fields: Any) -> None:
            real_record(function, **fields)
            if function == "sample_monitored_timer" and len(sample_env.records(function)) == 1:
                first.kill()  # the instance dies while its invocation is finishing

        steps.record = record_then_die
        try:
            clock.set(datetime(2030, 1, 1, 0, 5, tzinfo=UTC))
            second = wait_until(lambda: (h := f.timer_holder("sample_monitored_timer")) is not first and h,
                                TAKEOVER_TIMEOUT, "another holder")
            wait_until(lambda: len(sample_env.records("sample_monitored_timer")) >= 2, 10, "the repeated run")
        finally:
            steps.record = real_record
    rows = sample_env.records("sample_monitored_timer")
    assert [r["past_due"] for r in rows] == [False, True]
    assert [r["schedule_status"]["Next"] for r in rows] == ["2030-01-01T00:05:00+00:00"] * 2
    assert firings(f, "sample_monitored_timer")[0].instance_id == second.instance_id  # the dead one recorded nothing
