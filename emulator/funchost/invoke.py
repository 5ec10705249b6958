"""Calling user code the way the Python worker does, and recording each invocation.

Azure/azure-functions-python-worker ``azure_functions_worker/dispatcher.py``: sync functions run on
the worker's one ``ThreadPoolExecutor`` (``PYTHON_THREADPOOL_THREAD_COUNT`` threads, else Python's
default ``min(32, cpu_count + 4)``), shared by every function of the worker, with the invocation ID
in the thread-local the log handler reads (``_run_sync_func``); coroutine functions run on the
worker's event loop in a task tagged with the invocation ID. While an invocation runs, the log
records the worker would tag with its ID are kept with it (see ``worker_logs``).
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc

from .metadata import Binding, FunctionSpec
from .worker_logs import (
    INVOCATION_ID_LOCAL,
    CapturedLog,
    WorkerLogRouter,
    invocation_task_factory,
    with_task_invocation_id,
)

__all__ = [
    "FAILURE",
    "SUCCESS",
    "AsyncRunner",
    "HostKilledError",
    "InvocationRecord",
    "InvocationResult",
    "Invoker",
    "OutValue",
    "queue_output_values",
]

logger = logging.getLogger(__name__)

SUCCESS, FAILURE = "success", "failure"

OutputSender = Callable[[FunctionSpec, Binding, list[str | bytes]], None]


class HostKilledError(RuntimeError):
    """The host instance was killed while the invocation ran: nothing it does afterwards takes effect."""


@dataclass
class InvocationRecord:
    """One finished invocation. ``error`` is ``"Type: message"``; the traceback goes to the log only.

    ``logs`` holds the app's log records that the real host would keep for this invocation (those
    the worker tags with its ID while it runs); ``instance_id`` names the host instance that ran it.
    """

    function: str
    trigger: str  # timer | queue | http | manual
    invocation_id: str
    start: datetime
    end: datetime
    outcome: str  # SUCCESS ("success") or FAILURE ("failure")
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    instance_id: str = ""
    logs: list[CapturedLog] = field(default_factory=list)

    @classmethod
    def failed_before_start(
        cls, function: str, trigger: str, error: BaseException, details: dict[str, Any], *, instance_id: str = ""
    ) -> InvocationRecord:
        """A trigger the host could not turn into an invocation (e.g. a queue message that is not base64)."""
        now = datetime.now(UTC)
        return cls(function=function, trigger=trigger, invocation_id=str(uuid.uuid4()), start=now, end=now,
                   outcome=FAILURE, error=f"{type(error).__name__}: {error}", details=details,
                   instance_id=instance_id)

    @property
    def succeeded(self) -> bool:
        return self.outcome == SUCCESS

    @property
    def duration(self) -> float:
        return (self.end - self.start).total_seconds()

    def log_messages(self) -> list[str]:
        return [entry.message for entry in self.logs]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        data["duration_ms"] = round(self.duration * 1000, 1)
        data["logs"] = [entry.to_json() for entry in self.logs]
        return data


@dataclass
class InvocationResult:
    record: InvocationRecord
    value: Any = None  # the $return value, or the value of a named http output
    exception: BaseException | None = None


class OutValue(func.Out[Any]):
    """What the worker hands to a ``func.Out[...]`` parameter."""

    def __init__(self) -> None:
        self._value: Any = None
        self.is_set = False

    def set(self, val: Any) -> None:
        self._value, self.is_set = val, True

    def get(self) -> Any:
        return self._value


class _TraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str) -> None:
        self._trace_parent = trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func_abc.Context):
    """``func.Context`` for functions that declare a ``context`` parameter.

    ``thread_local_storage`` is the worker's one module-level ``threading.local`` (the dispatcher's
    ``_invocation_id_local``): setting ``invocation_id`` on it in a thread the app starts is what
    makes that thread's log records reach the host.
    """

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        # azure.functions._abc annotates type[threading.local], but the worker hands out the instance.
        return INVOCATION_ID_LOCAL

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


class AsyncRunner:
    """One event loop on a daemon thread for coroutine functions."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="funchost-asyncio", daemon=True)
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        # ContextEnabledTask: tasks created inside an invocation carry its ID (for logging).
        self._loop.set_task_factory(invocation_task_factory)  # type: ignore[arg-type]
        self._loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._thread.start()
            self._started = True

    def run(self, coro: collections.abc.Coroutine[Any, Any, Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._started:
            if not self._loop.is_running():
                self._loop.close()
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
        self._started = False


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _user_traceback(error: BaseException) -> str:
    """The traceback without the stand-in's own frames at the top, as the worker shows it."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb or error.__traceback__)).rstrip()


def queue_output_values(value: Any) -> list[str | bytes]:
    """Messages for a queue output, with the worker's conversions (str, bytes, QueueMessage, or a list of them)."""
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, func_abc.QueueMessage):
        return [value.get_body()]
    if isinstance(value, collections.abc.Iterable) and not isinstance(value, dict):
        items: list[str | bytes] = []
        for item in value:
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, func_abc.QueueMessage):
                items.append(item.get_body())
            else:
                raise TypeError(f"invalid data type in output queue message list: {type(item).__name__}")
        return items
    raise TypeError(f"a queue output takes str, bytes, QueueMessage or a list of them, not {type(value).__name__}")


class Invoker:
    """Calls functions for one host instance: its worker pool, its log capture, its records."""

    def __init__(
        self,
        *,
        project_dir: Path,
        async_runner: AsyncRunner,
        send_outputs: OutputSender,
        on_record: Callable[[InvocationRecord], None],
        worker_pool: ThreadPoolExecutor,
        log_router: WorkerLogRouter,
        instance_id: str = "",
        is_dead: Callable[[], bool] = lambda: False,
    ) -> None:
        self._project_dir = project_dir
        self._async = async_runner
        self._send_outputs = send_outputs
        self._on_record = on_record
        self._pool = worker_pool
        self._logs = log_router
        self.instance_id = instance_id
        self._is_dead = is_dead

    def invoke(
        self, spec: FunctionSpec, trigger_value: Any, *, trigger: str, reason: str, details: dict[str, Any]
    ) -> InvocationResult:
        """Run the function and flush its queue outputs. Never raises: failures are in the result."""
        invocation_id = str(uuid.uuid4())
        start, started = datetime.now(UTC), time.monotonic()
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        value: Any = None
        error: BaseException | None = None
        with self._logs.executing(invocation_id) as logs:
            try:
                value = self._call(spec, trigger_value, invocation_id)
            except Exception as exc:  # the host catches everything the function raises
                error = exc
        elapsed_ms = (time.monotonic() - started) * 1000
        if error is None:
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id, elapsed_ms
            )
        elif isinstance(error, HostKilledError):
            logger.warning("Functions.%s (Id=%s): the host instance was killed during the invocation",
                           spec.name, invocation_id)
        else:
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s",
                spec.name, invocation_id, elapsed_ms, _user_traceback(error),
            )
        record = InvocationRecord(
            function=spec.name,
            trigger=trigger,
            invocation_id=invocation_id,
            start=start,
            end=datetime.now(UTC),
            outcome=SUCCESS if error is None else FAILURE,
            error=None if error is None else f"{type(error).__name__}: {error}",
            details=details,
            instance_id=self.instance_id,
            logs=list(logs),
        )
        return InvocationResult(record=record, value=value, exception=error)

    def publish(self, record: InvocationRecord) -> None:
        """Record an invocation once its trigger has finished with it (a killed instance records nothing)."""
        if not self._is_dead():
            self._on_record(record)

    def _call(self, spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> Any:
        kwargs: dict[str, Any] = {spec.trigger.name: trigger_value}
        outs = {b.name: OutValue() for b in spec.outputs if b.name != "$return"}
        kwargs.update(outs)
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, str(self._project_dir))
        if spec.is_async:
            returned = self._async.run(with_task_invocation_id(invocation_id, spec.user_function(**kwargs)))
        else:
            returned = self._pool.submit(_run_sync_func, invocation_id, spec.user_function, kwargs).result()
        if self._is_dead():
            raise HostKilledError("the host instance was killed; the invocation's result is lost")
        # Queue outputs are sent only after the function succeeded, before the trigger is completed.
        result = returned
        for binding in spec.outputs:
            source = returned if binding.name == "$return" else outs[binding.name].get()
            if binding.type == "queue":
                messages = queue_output_values(source)
                if messages:
                    self._send_outputs(spec, binding, messages)
            elif binding.type == "http" and binding.name != "$return":
                result = source
        return result


def _run_sync_func(invocation_id: str, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """dispatcher._run_sync_func: the pool thread carries the invocation ID while the function runs."""
    INVOCATION_ID_LOCAL.invocation_id = invocation_id
    try:
        return function(**kwargs)
    finally:
        INVOCATION_ID_LOCAL.invocation_id = None
