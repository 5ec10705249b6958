"""The host stand-in as a process of its own: structured output, clean stop, and ``--crash-at``."""

from __future__ import annotations

import requests
from funchost_support import SAMPLE_APP, SampleEnv

from emulator.funchost import CRASH_EXIT_CODE, FunctionsHost, FunctionsHostProcess
from emulator.ports import free_port


def test_crash_after_a_step_redelivers_to_a_new_host(sample_env: SampleEnv) -> None:
    sample_env.send("steps:crash-after")
    worker = FunctionsHostProcess(SAMPLE_APP, sample_env.settings, http_port=None, queue_lease=2,
                                  crash_at=["after:sample_steps:step_one"])
    worker.start()
    try:
        assert worker.wait(timeout=20) == CRASH_EXIT_CODE
    finally:
        worker.stop()
    assert [r["function"] for r in sample_env.records()] == ["sample_queue", "step_one"]
    assert worker.invocations == []  # it died inside the invocation
    assert any("crash point after:sample_steps:step_one reached" in line for line in worker.lines)
    # The message is still in the queue (invisible until its 2 s lease runs out), then a new host gets it again.
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        host.drain(timeout=15, include_delayed=True)
        (record,) = host.invocations
    assert record.succeeded and record.details["dequeue_count"] == 2
    rows = sample_env.records()
    assert [(r["function"], r.get("dequeue_count")) for r in rows] == [
        ("sample_queue", 1), ("step_one", None), ("sample_queue", 2), ("step_one", None), ("step_two", None)]
    assert rows[0]["pid"] == worker.pid and rows[2]["pid"] != worker.pid


def test_crash_before_a_step_then_a_second_process_completes(sample_env: SampleEnv) -> None:
    sample_env.send("steps:crash-before")
    crashing = FunctionsHostProcess(SAMPLE_APP, sample_env.settings, http_port=None, queue_lease=2,
                                    crash_at=["before:sample_steps:step_one"])
    crashing.start()
    try:
        assert crashing.wait(timeout=20) == CRASH_EXIT_CODE
    finally:
        crashing.stop()
    assert [r["function"] for r in sample_env.records()] == ["sample_queue"]

    port = free_port()
    with FunctionsHostProcess(SAMPLE_APP, sample_env.settings, http_port=port,
                              queue_overrides={"maxPollingInterval": "00:00:00.200", "batchSize": 2},
                              master_key="-a-key-that-looks-like-a-flag") as worker:
        event = worker.wait_for_invocation(lambda e: e["function"] == "sample_queue", timeout=20)
        assert event["outcome"] == "success" and event["details"]["dequeue_count"] == 2
        assert event["details"]["disposition"] == "deleted"
        assert worker.http_url == f"http://127.0.0.1:{port}"
        assert {"--queue-option=maxPollingInterval=00:00:00.200", "--queue-option=batchSize=2"} <= set(worker.command())
        assert requests.get(f"{worker.http_url}/api/hello?name=proc", timeout=10).text == "hello proc"
        key = worker.function_keys["default"]
        assert requests.get(f"{worker.http_url}/api/items/5?code={key}", timeout=10).status_code == 200
        assert requests.get(f"{worker.http_url}/api/items/5", timeout=10).status_code == 401
        worker.wait_for_invocation(lambda e: e["function"] == "items", timeout=5)
        status = requests.get(f"{worker.http_url}/admin/host/status",
                              headers={"x-functions-key": "-a-key-that-looks-like-a-flag"}, timeout=10)
        assert status.status_code == 200
    assert worker.returncode == 0  # SIGTERM stops it cleanly
    assert worker.events[0]["funchost"] == "ready" and worker.events[-1]["funchost"] == "stopped"
    # The app's own logging and the host's per-invocation lines are on stdout.
    assert any("sample_queue received 'steps:crash-before' (dequeue count 2)" in line for line in worker.lines)
    assert any("Executed 'Functions.sample_queue' (Succeeded" in line for line in worker.lines)
    # The generated-by-the-wrapper keys are passed on the command line, so they are not echoed.
    assert "master_key" not in worker.events[0]
    assert [r["function"] for r in sample_env.records()][-2:] == ["step_one", "step_two"]
    assert sample_env.queue().get_queue_properties().approximate_message_count == 0


def test_start_failure_is_reported(sample_env: SampleEnv) -> None:
    settings = {k: v for k, v in sample_env.settings.items() if k != "SAMPLE_QUEUE"}
    worker = FunctionsHostProcess(SAMPLE_APP, settings, http_port=None)
    try:
        worker.start(timeout=20)
    except RuntimeError as exc:
        assert "SAMPLE_QUEUE" in str(exc)
    else:
        raise AssertionError("the host started without SAMPLE_QUEUE")
    finally:
        worker.stop()
    assert worker.returncode == 1
