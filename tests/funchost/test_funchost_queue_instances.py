"""The queue listener as the Storage extension runs it: polling back-off to maxPollingInterval,
batches per instance, several instances on one queue, and the worker's thread pool.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest
from funchost_support import SAMPLE_APP, SampleEnv

from emulator.funchost import FunctionsHost, HostFleet, RandomizedExponentialBackoff
from emulator.funchost.invoke import InvocationRecord


def max_overlap(records: list[InvocationRecord]) -> int:
    """The largest number of these invocations that ran at the same moment."""
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def running_in_the_function(env: SampleEnv, seconds: float) -> int:
    """The most sample_queue functions that ran at once, from their own start times ("sleep:<seconds>" each)."""
    starts = sorted(r["time"] for r in env.records("sample_queue"))
    return max(sum(1 for other in starts if start <= other < start + seconds) for start in starts)


def queue_records(host: FunctionsHost | HostFleet) -> list[InvocationRecord]:
    return [r for r in host.invocations if r.function == "sample_queue"]


# -- the back-off strategy itself (RandomizedExponentialBackoffStrategy.cs) ------------------------


def test_backoff_grows_randomized_exponentially_to_the_maximum_and_resets_on_success() -> None:
    backoff = RandomizedExponentialBackoff(0.1, 2.0, rng=random.Random(7))
    delays = [backoff.next_delay(False) for _ in range(9)]
    assert delays[0] == pytest.approx(0.1)
    for n, delay in enumerate(delays[1:6], start=1):
        # minimum + random(0.8..1.2) * 2^(n-1) * minimum, while under the maximum
        low, high = 0.1 + 0.8 * 2 ** (n - 1) * 0.1, 0.1 + 1.2 * 2 ** (n - 1) * 0.1
        assert low <= delay <= high or delay == 2.0, (n, delay)
    assert delays[-3:] == [2.0, 2.0, 2.0]  # it stays at the maximum
    assert backoff.next_delay(True) == pytest.approx(0.1)  # a found message resets it
    assert 0.18 <= backoff.next_delay(False) <= 0.22


def test_backoff_rejects_a_minimum_above_the_maximum() -> None:
    with pytest.raises(ValueError):
        RandomizedExponentialBackoff(1.0, 0.5)


def test_max_polling_interval_below_100_ms_fails_start(sample_env: SampleEnv) -> None:
    host = FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None,
                         queue_overrides={"maxPollingInterval": "00:00:00.050"})
    with pytest.raises(ValueError, match="maxPollingInterval"):
        host.start()


# -- polling, measured ------------------------------------------------------------------------------


def test_an_idle_queue_is_polled_with_randomized_exponential_back_off_up_to_max_polling_interval(
        sample_env: SampleEnv) -> None:
    maximum = 1.5
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None,
                       queue_overrides={"maxPollingInterval": "00:00:01.500"}) as host:
        time.sleep(7.0)
        idle = host.queue_polls("sample_queue")
        sent = time.monotonic()
        sample_env.send("found after the back-off")
        host.wait_for(lambda r: r.function == "sample_queue", timeout=maximum + 3)
        found_after = time.monotonic() - sent
        time.sleep(0.6)
        after = host.queue_polls("sample_queue")[len(idle):]
    delays = [p.delay_after for p in idle]
    assert all(p.received == 0 for p in idle)
    assert delays[0] == pytest.approx(0.1)
    assert all(b >= a for a, b in itertools.pairwise(delays)), delays  # it only grows while idle
    assert max(delays) == maximum and delays[-1] == maximum  # ...up to maxPollingInterval, and stays there
    # No poll comes sooner than the delay chosen before it (the stand-in is not more eager than Azure).
    gaps = [b.at - a.at for a, b in itertools.pairwise(idle)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, delays, strict=False)), (gaps, delays)
    # A message sent to an idle queue waits about one maximum interval at most (plus a receive's time).
    assert found_after < maximum + 1.5, found_after
    # Finding it resets the back-off: the next empty poll waits the minimum again.
    assert after[0].received == 1 and after[0].delay_after is None
    assert after[1].received == 0 and after[1].delay_after == pytest.approx(0.1)
    print(f"idle polls in 7 s: {len(idle)}; delays {[round(d or 0, 2) for d in delays]}; "
          f"message found {found_after:.2f} s after it was sent (maxPollingInterval {maximum} s)")


def test_a_batch_is_fetched_again_only_at_the_new_batch_threshold(sample_env: SampleEnv) -> None:
    for index in range(6):
        sample_env.send(f"sleep:1 #{index}")
    # batchSize 3, newBatchThreshold 1: 3 at once, the next batch when only 1 is still running.
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None,
                       queue_overrides={"batchSize": 3, "newBatchThreshold": 1}) as host:
        host.wait_for(lambda r: r.function == "sample_queue", timeout=20, count=6)
        polls = [p for p in host.queue_polls("sample_queue") if p.received]
        records = queue_records(host)
    assert [p.received for p in polls][:1] == [3]
    assert sum(p.received for p in polls) == 6
    assert max_overlap(records) <= 3 + 1  # never more than batchSize + newBatchThreshold


def test_several_instances_sharing_one_queue_each_get_messages(sample_env: SampleEnv) -> None:
    for index in range(9):
        sample_env.send(f"sleep:1 #{index}")
    overrides = {"batchSize": 1, "newBatchThreshold": 0}
    with HostFleet(SAMPLE_APP, sample_env.settings, instances=3, http_port=None, queue_overrides=overrides) as f:
        f.wait_for(lambda r: r.function == "sample_queue", timeout=30, count=9)
        records = queue_records(f)
    bodies = sorted(r["body"] for r in sample_env.records("sample_queue"))
    assert bodies == sorted(f"sleep:1 #{i}" for i in range(9))  # each message once
    per_instance = {h.instance_id: [r for r in records if r.instance_id == h.instance_id] for h in f.hosts}
    assert all(len(mine) >= 1 for mine in per_instance.values()), {k: len(v) for k, v in per_instance.items()}
    # batchSize 1, newBatchThreshold 0: each instance runs one message at a time.
    assert all(max_overlap(mine) == 1 for mine in per_instance.values())
    print("messages per instance:", {k: len(v) for k, v in per_instance.items()})


def test_host_json_queue_settings_apply_per_instance(sample_env: SampleEnv) -> None:
    for index in range(10):
        sample_env.send(f"sleep:1 #{index}")
    per_instance: dict[int, dict[str, Any]] = {
        0: {"queue_overrides": {"batchSize": 1, "newBatchThreshold": 0}},
        1: {"queue_overrides": {"batchSize": 4, "newBatchThreshold": 0}},
    }
    with HostFleet(SAMPLE_APP, sample_env.settings, instances=2, http_port=None, per_instance=per_instance) as f:
        f.wait_for(lambda r: r.function == "sample_queue", timeout=30, count=10)
        narrow, wide = ([r for r in queue_records(f) if r.instance_id == h.instance_id] for h in f.hosts)
    assert max_overlap(narrow) == 1
    assert 2 <= max_overlap(wide) <= 4


def test_the_worker_thread_pool_caps_concurrency_below_the_batch(sample_env: SampleEnv) -> None:
    for index in range(6):
        sample_env.send(f"sleep:1 #{index}")
    # batchSize 4 + newBatchThreshold 2 lets the host hold 6 messages, but the Python worker runs
    # sync functions on PYTHON_THREADPOOL_THREAD_COUNT threads: 2 here.
    settings = {**sample_env.settings, "PYTHON_THREADPOOL_THREAD_COUNT": "2"}
    with FunctionsHost(SAMPLE_APP, settings, http_port=None) as host:
        host.wait_for(lambda r: r.function == "sample_queue", timeout=30, count=6)
        records = queue_records(host)
    assert running_in_the_function(sample_env, 1.0) == 2
    # The host still holds the whole batch (its invocations overlap): the wait is inside the worker.
    assert max_overlap(records) > 2


def test_default_worker_pool_is_processor_count_plus_four(sample_env: SampleEnv) -> None:
    for index in range(8):
        sample_env.send(f"sleep:1 #{index}")
    # processor_count 1: ThreadPoolExecutor's default min(32, 1 + 4) = 5 threads; batchSize 8 would allow 8.
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None,
                       queue_overrides={"batchSize": 8, "newBatchThreshold": 0}) as host:
        host.wait_for(lambda r: r.function == "sample_queue", timeout=30, count=8)
    assert running_in_the_function(sample_env, 1.0) == 5


def test_a_message_held_by_a_killed_instance_comes_back_to_another_one(sample_env: SampleEnv) -> None:
    sample_env.send("sleep:3")
    with HostFleet(SAMPLE_APP, sample_env.settings, instances=2, http_port=None, queue_lease=2) as f:
        deadline = time.monotonic() + 10
        taker = None
        while taker is None and time.monotonic() < deadline:
            taker = next((h for h in f.hosts if any(p.received for p in h.queue_polls("sample_queue"))), None)
            time.sleep(0.02)
        assert taker is not None, "no instance received the message"
        f.kill(taker)  # its lease is no longer renewed, and it completes nothing
        survivor = next(h for h in f.hosts if h is not taker)
        survivor.wait_for(lambda r: r.function == "sample_queue", timeout=20)
        survivor.drain(timeout=20, include_delayed=True)
    rows = sample_env.records("sample_queue")
    assert [r["dequeue_count"] for r in rows] == [1, 2]
    assert [r.details["disposition"] for r in survivor.invocations] == ["deleted"]
    assert taker.invocations == []  # a killed instance records nothing


def test_stop_after_kill_is_harmless_and_the_instance_can_start_again(sample_env: SampleEnv) -> None:
    host = FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None)
    with host:
        host.kill()
        assert not host.running
    host.start()  # a replacement process on the same instance ID
    try:
        sample_env.send("after a restart")
        host.wait_for(lambda r: r.function == "sample_queue", timeout=15)
    finally:
        host.stop()
    assert [r.details["disposition"] for r in host.invocations] == ["deleted"]
