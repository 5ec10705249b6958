"""Host instances as processes of their own on one storage account: a real kill (SIGKILL) of the timer's
lock holder, and ``--crash-at`` on one instance while another keeps the queue going.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from funchost_support import SAMPLE_APP, SampleEnv, stored_status

from emulator.funchost import CRASH_EXIT_CODE, ClockFile, FunctionsHostProcess

TAKEOVER_TIMEOUT = 60.0


def test_a_sigkilled_lock_holder_process_hands_the_timer_to_another_process(sample_env: SampleEnv,
                                                                            tmp_path: Path) -> None:
    clock = ClockFile(tmp_path / "clock.json", datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))
    settings = {**sample_env.settings, "SAMPLE_MONITORED_SCHEDULE": "0 */5 * * * *"}
    workers = [FunctionsHostProcess(SAMPLE_APP, settings, http_port=None, queues=False, timers=True,
                                    clock_file=clock.path, instance_id=f"proc-{i}", workdir=tmp_path / f"w{i}")
               for i in range(2)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while not any(w.timer_lock_held("sample_monitored_timer") for w in workers):
            assert time.monotonic() < deadline, "no process took the timer's listener lock"
            time.sleep(0.1)
        holder = next(w for w in workers if w.timer_lock_held("sample_monitored_timer"))
        other = next(w for w in workers if w is not holder)
        clock.set(datetime(2030, 1, 1, 0, 5, tzinfo=UTC))
        holder.wait_for_invocation(lambda e: e["function"] == "sample_monitored_timer", timeout=15)
        # Killed once the run's status (Next 00:10) is written; see the in-process test for a kill before it.
        deadline = time.monotonic() + 10
        while (status := stored_status(sample_env, holder.ready["host_id"] if holder.ready else "",
                                       "sample_monitored_timer")) is None or status.next.minute != 10:
            assert time.monotonic() < deadline, f"the status after the 00:05 run was not written: {status}"
            time.sleep(0.05)
        killed_at = time.monotonic()
        assert holder.kill() == -9
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while not other.timer_lock_held("sample_monitored_timer"):
            assert time.monotonic() < deadline, "the surviving process never took the lock over"
            time.sleep(0.1)
        takeover = time.monotonic() - killed_at
        clock.set(datetime(2030, 1, 1, 0, 10, tzinfo=UTC))
        event = other.wait_for_invocation(lambda e: e["function"] == "sample_monitored_timer", timeout=15)
    finally:
        for worker in workers:
            worker.stop()
    assert event["details"]["past_due"] is False
    assert event["details"]["schedule_status"]["Next"] == "2030-01-01T00:10:00+00:00"
    assert event["instance_id"] == other.instance_id
    assert [e["details"]["schedule_status"]["Next"] for e in holder.invocations] == ["2030-01-01T00:05:00+00:00"]
    print(f"takeover after SIGKILL: {takeover:.1f} s")


def test_crash_at_applies_to_one_instance_while_another_finishes_the_message(sample_env: SampleEnv,
                                                                              tmp_path: Path) -> None:
    sample_env.send("steps:two instances")
    crashing = FunctionsHostProcess(SAMPLE_APP, sample_env.settings, http_port=None, queue_lease=2,
                                    crash_at=["after:sample_steps:step_one"], instance_id="crashing",
                                    workdir=tmp_path / "crashing")
    survivor = FunctionsHostProcess(SAMPLE_APP, sample_env.settings, http_port=None, queue_lease=2,
                                    instance_id="survivor", workdir=tmp_path / "survivor",
                                    queue_overrides={"maxPollingInterval": "00:00:00.500"})
    try:
        crashing.start()
        survivor.start()
        assert crashing.wait(timeout=20) == CRASH_EXIT_CODE
        event = survivor.wait_for_invocation(lambda e: e["function"] == "sample_queue", timeout=20)
    finally:
        crashing.stop()
        survivor.stop()
    assert event["details"]["dequeue_count"] == 2 and event["details"]["disposition"] == "deleted"
    assert event["instance_id"] == "survivor"
    steps = [(r["function"], r["pid"]) for r in sample_env.records() if r["function"] != "sample_queue"]
    assert steps == [("step_one", crashing.pid), ("step_one", survivor.pid), ("step_two", survivor.pid)]
