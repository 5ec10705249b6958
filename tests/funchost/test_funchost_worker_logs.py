"""Which of the app's log records reach Azure: only those the Python worker tags with a running
invocation's ID (the invocation's own thread or task, or a thread that set
``context.thread_local_storage.invocation_id``). The host drops the rest.
"""

from __future__ import annotations

import time

import requests
from funchost_support import SAMPLE_APP, SampleEnv

from emulator.funchost import FunctionsHost, FunctionsHostProcess


def test_a_pool_thread_record_is_dropped_unless_the_thread_set_the_invocation_context(sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, run_queues=False) as host:
        answer = requests.get(f"{host.http_url}/api/threads", timeout=10)
        assert answer.status_code == 200
        (record,) = host.wait_for(lambda r: r.function == "log_from_threads", timeout=10)
        dropped = host.dropped_logs
    kept = record.log_messages()
    assert "from the invocation thread" in kept
    assert "pool thread with context" in kept
    assert "pool thread without context" not in kept
    (lost,) = [d for d in dropped if d.message == "pool thread without context"]
    assert lost.invocation_id is None and lost.category == "sample.pool"
    # The function saw the same ID the records carry.
    assert answer.text == record.invocation_id
    assert all(entry.invocation_id == record.invocation_id for entry in record.logs)


def test_a_record_written_after_the_invocation_returned_is_dropped_even_with_the_context_set(
        sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, run_queues=False) as host:
        requests.get(f"{host.http_url}/api/threads", params={"late": "0.3"}, timeout=10)
        (record,) = host.wait_for(lambda r: r.function == "log_from_threads", timeout=10)
        deadline = time.monotonic() + 5
        while not any(d.message.startswith("late thread") for d in host.dropped_logs) and time.monotonic() < deadline:
            time.sleep(0.05)
        dropped = host.dropped_logs
    # The host no longer knows the invocation: GrpcWorkerChannel.Log finds no executing invocation for the ID.
    (late,) = [d for d in dropped if d.message.startswith("late thread")]
    assert late.invocation_id == record.invocation_id
    assert "late thread after the invocation returned" not in record.log_messages()


def test_a_coroutine_function_keeps_its_task_records_and_drops_its_executor_thread_records(
        sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, run_queues=False) as host:
        assert requests.get(f"{host.http_url}/api/async-threads", timeout=10).text == "ok"
        (record,) = host.wait_for(lambda r: r.function == "async_log_from_threads", timeout=10)
        dropped = host.dropped_logs
    assert record.log_messages() == ["from the coroutine", "from a task the coroutine created"]
    assert [d.message for d in dropped if d.category == "sample.pool"] == ["executor thread of a coroutine"]


def test_queue_invocations_keep_their_own_records(sample_env: SampleEnv) -> None:
    sample_env.send("hello logs")
    with FunctionsHost(SAMPLE_APP, sample_env.settings, http_port=None) as host:
        (record,) = host.wait_for(lambda r: r.function == "sample_queue", timeout=15)
    assert record.log_messages() == ["sample_queue received 'hello logs' (dequeue count 1)"]
    assert record.logs[0].level == "INFO" and record.logs[0].category == "root"


def test_the_host_process_reports_dropped_records(sample_env: SampleEnv) -> None:
    with FunctionsHostProcess(SAMPLE_APP, sample_env.settings, queues=False) as worker:
        assert requests.get(f"{worker.http_url}/api/threads", timeout=10).status_code == 200
        event = worker.wait_for_invocation(lambda e: e["function"] == "log_from_threads", timeout=10)
        deadline = time.monotonic() + 5
        while not worker.dropped_logs and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [entry["message"] for entry in event["logs"]] == ["from the invocation thread", "pool thread with context"]
    assert [d["message"] for d in worker.dropped_logs] == ["pool thread without context"]
    # The console still shows every record, as the worker's console output does locally.
    assert any("pool thread without context" in line for line in worker.lines)
