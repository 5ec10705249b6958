"""Queue and timer triggers of the in-process host against Azurite, with the sample app's host.json
(base64, batchSize 4, maxDequeueCount 3, visibilityTimeout 1 s, maxPollingInterval 0.5 s).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import threading
import time
from pathlib import Path

from funchost_support import SAMPLE_APP, SampleEnv

from emulator.funchost import FunctionsHost


def test_timer_on_demand_passes_past_due(sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None, run_queues=False) as host:
        record = host.fire_timer("sample_timer", past_due=True)
        assert record.succeeded and record.trigger == "timer"
        assert host.fire_timer("sample_timer").details == {"past_due": False}
        # A timer that keeps schedule status gets the stored one; with none stored yet, none.
        monitored = host.fire_timer("sample_monitored_timer")
        assert monitored.succeeded and "schedule_status" not in monitored.details
    assert [r["past_due"] for r in sample_env.records("sample_timer")] == [True, False]
    assert [r.function for r in host.invocations] == ["sample_timer", "sample_timer", "sample_monitored_timer"]
    assert sample_env.records("sample_monitored_timer")[0]["schedule_status"] == {}


def test_timer_runs_on_its_schedule_from_a_setting(sample_env: SampleEnv) -> None:
    settings = {**sample_env.settings, "SAMPLE_SCHEDULE": "*/1 * * * * *"}
    with FunctionsHost(SAMPLE_APP, settings, http_port=None, run_queues=False, run_timers=True) as host:
        records = host.wait_for(lambda r: r.function == "sample_timer", timeout=5, count=2)
    assert all(r.succeeded and r.details["past_due"] is False for r in records)
    starts = [r.start for r in records[:2]]
    # Each firing sits on a whole second, as the NCRONTAB schedule says.
    assert (starts[1] - starts[0]).total_seconds() >= 0.9
    assert all(s.microsecond < 300_000 for s in starts)


def test_timers_do_not_run_unless_enabled(sample_env: SampleEnv) -> None:
    settings = {**sample_env.settings, "SAMPLE_SCHEDULE": "*/1 * * * * *"}
    with FunctionsHost(SAMPLE_APP, settings, http_port=None, run_queues=False):
        time.sleep(1.3)
    assert sample_env.records("sample_timer") == []


def test_queue_message_is_base64_decoded_and_deleted(sample_env: SampleEnv) -> None:
    sample_env.send("hello queue")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        host.drain(timeout=10, include_delayed=True)
        records = host.invocations
    (row,) = sample_env.records("sample_queue")
    assert row["body"] == "hello queue" and row["dequeue_count"] == 1
    assert records[0].details["disposition"] == "deleted" and records[0].details["queue"] == sample_env.queue_name
    assert sample_env.raw_messages(sample_env.queue_name) == []


def test_message_encoding_none(sample_env: SampleEnv, tmp_path: Path) -> None:
    project = tmp_path / "app-none"
    shutil.copytree(SAMPLE_APP, project, ignore=shutil.ignore_patterns("__pycache__"))
    host_json = json.loads((project / "host.json").read_text())
    host_json["extensions"]["queues"]["messageEncoding"] = "none"
    (project / "host.json").write_text(json.dumps(host_json))
    sample_env.send("plain text, not base64!", encoding="none")
    sample_env.send("echo:plain out", encoding="none")
    with FunctionsHost(project, sample_env.settings, http_port=None) as host:
        host.drain(timeout=10, include_delayed=True)
    bodies = sorted(r["body"] for r in sample_env.records("sample_queue"))
    assert bodies == ["echo:plain out", "plain text, not base64!"]
    # With messageEncoding none the output binding writes plain text too.
    assert sample_env.raw_messages(sample_env.out_queue_name) == ["plain out"]


def test_failures_retry_after_visibility_timeout_then_go_to_poison(sample_env: SampleEnv) -> None:
    sample_env.send("fail: always")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        host.wait_for(lambda r: r.details.get("disposition") == "poisoned", timeout=15)
        host.drain(timeout=10, include_delayed=True)
        records = host.invocations
    rows = sample_env.records("sample_queue")
    assert [r["dequeue_count"] for r in rows] == [1, 2, 3]
    assert len({r["id"] for r in rows}) == 1
    # visibilityTimeout (1 s) delays each retry; the poller finds it within maxPollingInterval after that.
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(rows)]
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert [r.details["disposition"] for r in records] == ["retry", "retry", "poisoned"]
    assert all(r.outcome == "failure" and r.error == "RuntimeError: failing on purpose: fail: always" for r in records)
    # The poison message keeps the original body, in the same (base64) encoding; the source queue is empty.
    poison = sample_env.raw_messages(f"{sample_env.queue_name}-poison")
    assert [base64.b64decode(m).decode() for m in poison] == ["fail: always"]
    assert sample_env.queue().get_queue_properties().approximate_message_count == 0


def test_message_that_is_not_base64_goes_to_poison_at_once(sample_env: SampleEnv) -> None:
    # The extension's MessageDecodingFailed handler moves it on its first receive; the function never runs.
    sample_env.send("not base64!", encoding="none")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        (record,) = host.wait_for(lambda r: r.details.get("disposition") == "poisoned", timeout=15)
        host.drain(timeout=10, include_delayed=True)
        assert len(host.invocations) == 1
    assert "not valid base64" in (record.error or "") and record.details["dequeue_count"] == 1
    assert record.details["invoked"] is False
    assert sample_env.records("sample_queue") == []  # the function never ran
    assert sample_env.raw_messages(f"{sample_env.queue_name}-poison") == ["not base64!"]


def test_message_recovers_when_a_retry_succeeds(sample_env: SampleEnv) -> None:
    # Fail once by hand (dequeue 1), then let the host deliver it again as dequeue 2.
    sample_env.send("ok after a crash")
    message = sample_env.queue().receive_message(visibility_timeout=1)
    assert message is not None and message.dequeue_count == 1
    time.sleep(1.1)
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        host.drain(timeout=10, include_delayed=True)
    assert [r["dequeue_count"] for r in sample_env.records("sample_queue")] == [2]


def test_output_binding_sends_after_success(sample_env: SampleEnv) -> None:
    sample_env.send("echo:to the output queue")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        host.drain(timeout=10, include_delayed=True)
    raw = sample_env.raw_messages(sample_env.out_queue_name)
    assert raw == [base64.b64encode(b"to the output queue").decode()]


def test_batch_is_processed_concurrently_and_drain_waits(sample_env: SampleEnv) -> None:
    for index in range(4):
        sample_env.send(f"sleep:0.5 #{index}")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        started = time.monotonic()
        host.wait_for(lambda r: r.function == "sample_queue", timeout=10)
        host.drain(timeout=10)
        elapsed = time.monotonic() - started
        assert len(host.invocations) == 4
    # batchSize 4: the four half-second invocations overlap instead of taking two seconds.
    assert elapsed < 1.8, elapsed


def test_lease_is_renewed_during_a_long_invocation(sample_env: SampleEnv) -> None:
    sample_env.send("sleep:3")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None, queue_lease=1) as host:
        host.drain(timeout=15, include_delayed=True)
        assert [r.details["disposition"] for r in host.invocations] == ["deleted"]
    # With a 1 s lease and no renewal the message would have been delivered again during the 3 s run.
    assert [r["dequeue_count"] for r in sample_env.records("sample_queue")] == [1]


def test_drain_include_delayed_waits_for_invisible_messages(sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        sample_env.send("delayed", visibility_timeout=1)
        host.drain(timeout=5)  # visible messages only: returns although one is still delayed
        assert sample_env.records("sample_queue") == []
        host.drain(timeout=10, include_delayed=True)
    assert [r["body"] for r in sample_env.records("sample_queue")] == ["delayed"]


def test_nothing_keeps_running_after_stop(sample_env: SampleEnv) -> None:
    settings = {**sample_env.settings, "SAMPLE_SCHEDULE": "*/1 * * * * *"}
    host = FunctionsHost(SAMPLE_APP, settings, run_timers=True).start()
    assert any(t.name.startswith("funchost-") for t in threading.enumerate())
    host.stop()
    deadline = time.monotonic() + 5
    while any(t.name.startswith("funchost-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [t.name for t in threading.enumerate() if t.name.startswith("funchost-")] == []


def test_message_beyond_max_dequeue_count_goes_to_poison_without_running(sample_env: SampleEnv) -> None:
    # A message that crashed a host (received, never completed) more often than maxDequeueCount allows.
    sample_env.send("crashed a host before")
    assert sample_env.queue().receive_message(visibility_timeout=1) is not None
    time.sleep(1.1)
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None,
                       queue_overrides={"maxDequeueCount": 1}) as host:
        deadline = time.monotonic() + 10
        while not sample_env.raw_messages(f"{sample_env.queue_name}-poison") and time.monotonic() < deadline:
            time.sleep(0.1)
        host.drain(timeout=10, include_delayed=True)
        assert host.invocations == []
    assert sample_env.records("sample_queue") == []
    poison = sample_env.raw_messages(f"{sample_env.queue_name}-poison")
    assert [base64.b64decode(m).decode() for m in poison] == ["crashed a host before"]
