"""Which log records of the app reach Azure: the Python worker's invocation-ID rule, and the host's.

Sources:

- Azure/azure-functions-python-worker ``azure_functions_worker/dispatcher.py``: the worker puts an
  ``AsyncLoggingHandler`` on the root logger (level INFO, DEBUG with ``PYTHON_ENABLE_DEBUG_LOGGING``)
  and ``on_logging`` tags each record with ``get_current_invocation_id()``: the
  ``__azure_function_invocation_id__`` of the current asyncio task (``ContextEnabledTask`` hands it
  to tasks created inside the invocation), else ``_invocation_id_local.invocation_id``, a module
  ``threading.local``. ``_run_sync_func`` sets that thread-local on the worker's pool thread for the
  duration of a sync invocation and clears it after. ``Context.thread_local_storage`` *is* that
  object, which is why a thread the app starts must run
  ``context.thread_local_storage.invocation_id = context.invocation_id`` itself (Microsoft's Python
  developer guide, "Logging from background threads").
- ``azure_functions_worker/logging.py`` ``is_system_log_category``: loggers named
  ``azure_functions_worker*`` or ``azure.functions*`` are system logs, not the app's.
- Azure/azure-functions-host ``src/WebJobs.Script.Grpc/Channel/GrpcWorkerChannel.cs`` ``Log``: a
  user log is written to the invocation's logger only when its invocation ID is one of the
  invocations executing on that worker; there is no else branch, so a record without an ID, or with
  the ID of an invocation that has finished, is dropped.

The stand-in applies the same rule: :class:`WorkerLogRouter` keeps a record in the invocation's
logs when the ID the worker would attach names an invocation that is running, and counts it as
dropped otherwise. Records still go to the console (stdout) as before; only what is kept is what
Application Insights would see.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "INVOCATION_ID_LOCAL",
    "TASK_INVOCATION_ID",
    "CapturedLog",
    "WorkerLogRouter",
    "current_invocation_id",
    "invocation_task_factory",
    "with_task_invocation_id",
]

# azure_functions_worker.dispatcher._invocation_id_local: what Context.thread_local_storage returns.
INVOCATION_ID_LOCAL = threading.local()
# ContextEnabledTask.AZURE_INVOCATION_ID
TASK_INVOCATION_ID = "__azure_function_invocation_id__"
_SYSTEM_PREFIXES = ("azure_functions_worker", "azure.functions")
_STAND_IN_PREFIX = "emulator.funchost"
# Threads the stand-in runs as "the host" (pollers, lease renewers, lock and timer threads, HTTP
# request threads) are named funchost-*; what they log (e.g. azure.core's request lines for the
# host's own storage calls) is the host's, not the app's. The worker's pool and event loop threads
# run the app's code.
_HOST_THREAD_PREFIX = "funchost-"
_APP_THREAD_PREFIXES = ("funchost-worker-", "funchost-asyncio")
_MAX_DROPPED_KEPT = 10_000


@dataclass(frozen=True)
class CapturedLog:
    level: str
    category: str  # the logger name (the worker's RpcLog.category)
    message: str
    thread: str
    time: datetime
    invocation_id: str | None  # what the worker attached (None, or a finished invocation's for dropped ones)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat()
        return data


def current_invocation_id() -> str | None:
    """dispatcher.get_current_invocation_id: the asyncio task's ID, else the thread-local one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = asyncio.current_task(loop)
        task_id = getattr(task, TASK_INVOCATION_ID, None) if task is not None else None
        if task_id is not None:
            return str(task_id)
    value = getattr(INVOCATION_ID_LOCAL, "invocation_id", None)
    return None if value is None else str(value)


def invocation_task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                            context: Any = None) -> asyncio.Task[Any]:
    """ContextEnabledTask: a task created inside an invocation's task carries its invocation ID."""
    task = asyncio.Task(coro, loop=loop, context=context)
    parent = asyncio.current_task(loop)
    parent_id = getattr(parent, TASK_INVOCATION_ID, None) if parent is not None else None
    if parent_id is not None:
        setattr(task, TASK_INVOCATION_ID, parent_id)
    return task


async def with_task_invocation_id(invocation_id: str, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` in a task tagged with ``invocation_id``, as the worker's invocation request handler does."""
    task = asyncio.current_task()
    if task is not None:
        setattr(task, TASK_INVOCATION_ID, invocation_id)
    return await coro


class _Executing:
    def __init__(self) -> None:
        self.records: list[CapturedLog] = []


class WorkerLogRouter(logging.Handler):
    """One per process: routes the app's records to the running invocation they belong to, or drops them."""

    _instance: WorkerLogRouter | None = None
    _class_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._executing: dict[str, _Executing] = {}
        self._lock = threading.Lock()
        self._dropped: collections.deque[CapturedLog] = collections.deque(maxlen=_MAX_DROPPED_KEPT)
        self.dropped_total = 0
        self._users = 0
        self._saved_root_level: int | None = None
        self._drop_listeners: list[Callable[[CapturedLog], None]] = []

    # -- process-wide installation ----------------------------------------------------------------

    @classmethod
    def install(cls, *, debug: bool = False) -> WorkerLogRouter:
        """Attach the router to the root logger (once per process) and return it."""
        with cls._class_lock:
            if cls._instance is None:
                cls._instance = WorkerLogRouter()
            router = cls._instance
            router._attach(debug)
            return router

    def uninstall(self) -> None:
        with self._class_lock:
            self._users -= 1
            if self._users <= 0:
                self._users = 0
                root = logging.getLogger()
                root.removeHandler(self)
                if self._saved_root_level is not None:
                    root.setLevel(self._saved_root_level)
                    self._saved_root_level = None

    def _attach(self, debug: bool) -> None:
        root = logging.getLogger()
        level = logging.DEBUG if debug else logging.INFO
        if self._users == 0:
            root.addHandler(self)
            # The worker sets the root logger to INFO (DEBUG on request); a quieter root would never
            # emit the app's INFO records at all.
            if root.level == logging.NOTSET or root.level > level:
                self._saved_root_level = root.level
                root.setLevel(level)
        self.setLevel(min(self.level, level) if self._users else level)
        self._users += 1

    def add_drop_listener(self, listener: Callable[[CapturedLog], None]) -> None:
        with self._lock:
            self._drop_listeners.append(listener)

    def remove_drop_listener(self, listener: Callable[[CapturedLog], None]) -> None:
        with self._lock:
            if listener in self._drop_listeners:
                self._drop_listeners.remove(listener)

    # -- invocations ------------------------------------------------------------------------------

    @contextmanager
    def executing(self, invocation_id: str) -> Iterator[list[CapturedLog]]:
        """While the block runs, records tagged with ``invocation_id`` are kept in the yielded list."""
        entry = _Executing()
        with self._lock:
            self._executing[invocation_id] = entry
        try:
            yield entry.records
        finally:
            with self._lock:
                self._executing.pop(invocation_id, None)

    def dropped_since(self, total_before: int) -> list[CapturedLog]:
        """The dropped records after the first ``total_before`` (as many as are still kept)."""
        with self._lock:
            count = max(0, self.dropped_total - total_before)
            return list(self._dropped)[-count:] if count else []

    # -- logging.Handler --------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if name.startswith(_SYSTEM_PREFIXES) or name.startswith(_STAND_IN_PREFIX):
            return
        thread = record.threadName or ""
        if thread.startswith(_HOST_THREAD_PREFIX) and not thread.startswith(_APP_THREAD_PREFIXES):
            return
        invocation_id = current_invocation_id()
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        captured = CapturedLog(level=record.levelname, category=name, message=message,
                               thread=record.threadName or "", time=datetime.fromtimestamp(record.created, UTC),
                               invocation_id=invocation_id)
        with self._lock:
            entry = self._executing.get(invocation_id) if invocation_id is not None else None
            if entry is not None:
                entry.records.append(captured)
                return
            self._dropped.append(captured)
            self.dropped_total += 1
            listeners = list(self._drop_listeners)
        for listener in listeners:
            with contextlib.suppress(Exception):  # a listener must never break the app's logging
                listener(captured)
