"""``FunctionsHost``: one instance of the Functions host running a Python v2 app, in this process.

Several instances may run in one process (``HostFleet`` starts N): they share the loaded app and
its settings (``appload``) and, like instances of one Function App in Azure, the storage account:
the queues they listen to, the timer listener locks and the schedule status in
``azure-webjobs-hosts``. Each has its own instance ID, queue listeners (so its own concurrency
from host.json), worker thread pool, timer locks, HTTP port and invocation records, and each can
be stopped (cleanly: leases released, running invocations waited for) or killed (abruptly:
nothing released, nothing completed) independently.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.queue import QueueMessage as FuncQueueMessage

from .activity import Activity
from .appload import HostAlreadyRunningError, LoadedApp
from .clock import HostClock, SystemClock
from .connections import QueueConnection, resolve_queue_connection
from .hostjson import HostJson, load_host_json, parse_timespan
from .hoststorage import function_id, host_id, hosts_container
from .invoke import AsyncRunner, HostKilledError, InvocationRecord, Invoker
from .metadata import Binding, FunctionSpec
from .ncrontab import CronSchedule, CrontabError, parse_timer_schedule
from .queues import DEFAULT_VISIBILITY_LEASE, QueueListener, encode_message, ensure_queue, has_poison_queue
from .queues import poison_queue_name as poison_name
from .schedule_monitor import StorageScheduleMonitor
from .settings import is_truthy, resolve_expression
from .timer_slots import SingletonTimer
from .timers import TimerFiring, timer_request
from .web import HttpFrontEnd, HttpRoute
from .worker_logs import CapturedLog, WorkerLogRouter

__all__ = ["FunctionInErrorError", "FunctionsHost", "HostAlreadyRunningError"]

logger = logging.getLogger(__name__)

# Queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
_MAX_WORKER_THREADS = 32  # concurrent.futures.ThreadPoolExecutor's default cap


class FunctionInErrorError(RuntimeError):
    """The function failed indexing (e.g. a schedule the timer cannot parse): the host does not run it."""


@dataclass(frozen=True)
class _QueueTarget:
    connection: QueueConnection
    queue_name: str

    @property
    def key(self) -> tuple[str, str]:
        return self.connection.name, self.queue_name


class _Run:
    """One start of an instance: a kill marks it dead, and everything started with it stops taking effect."""

    def __init__(self) -> None:
        self.dead = False


class FunctionsHost:
    """Run ``app_module`` from ``project_dir`` with timer, queue and HTTP triggers, as one host instance.

    ``settings`` play the part of local.settings.json ``Values``: they become environment variables
    before the app is imported. ``function_keys`` (name -> key) and ``master_key`` guard non-anonymous
    HTTP functions; when neither is given, random keys are made (see :attr:`function_keys`).
    ``http_port=None`` disables the HTTP front end, ``0`` picks a free port.
    ``queue_lease`` is how long a received message stays invisible (the extension's 10 minutes by
    default); it is renewed every half of it. ``queue_overrides`` replace keys of host.json
    ``extensions.queues`` for this instance, without editing the project's host.json.
    ``instance_id`` names the instance (random when not given). ``clock`` is the time timers follow
    (real time by default; share a :class:`~emulator.funchost.clock.ManualClock` between instances to
    move it). ``processor_count`` is the instance's CPU count, which sets the default
    ``newBatchThreshold`` and the Python worker's thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``
    overrides the pool size).
    ``prepare`` runs after the settings are applied, right before the app is imported.
    ``on_timer_lock(function, held)`` is told when this instance takes or gives up a timer's listener lock.
    """

    def __init__(
        self,
        project_dir: Path,
        settings: Mapping[str, str],
        *,
        app_module: str = "function_app",
        function_keys: Mapping[str, str] | None = None,
        master_key: str | None = None,
        run_timers: bool = False,
        run_queues: bool = True,
        http_port: int | None = 0,
        queue_lease: float = DEFAULT_VISIBILITY_LEASE,
        queue_overrides: Mapping[str, Any] | None = None,
        max_request_body: int = 1024 * 1024,
        stop_grace: float = 30.0,
        on_invocation: Callable[[InvocationRecord], None] | None = None,
        prepare: Callable[[], None] | None = None,
        instance_id: str | None = None,
        clock: HostClock | None = None,
        processor_count: int = 1,
        on_timer_lock: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.app_module = app_module
        self._settings = {str(k): str(v) for k, v in settings.items()}
        if function_keys is None and master_key is None:
            function_keys = {"default": secrets.token_urlsafe(32)}
        self._function_keys = dict(function_keys or {})
        self._master_key = master_key or secrets.token_urlsafe(32)
        self.run_timers = run_timers
        self.run_queues = run_queues
        self.http_port = http_port
        self.queue_lease = queue_lease
        self.queue_overrides = dict(queue_overrides or {})
        self.max_request_body = max_request_body
        self.stop_grace = stop_grace
        self._on_invocation = on_invocation
        self._prepare = prepare
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.clock = clock or SystemClock()
        if processor_count < 1:
            raise ValueError("processor_count must be at least 1")
        self.processor_count = processor_count
        self._on_timer_lock = on_timer_lock

        self.host_json: HostJson | None = None
        self.host_id: str = ""
        self.functions: dict[str, FunctionSpec] = {}
        self.disabled: set[str] = set()
        self._app: LoadedApp | None = None
        self._records: list[InvocationRecord] = []
        self._records_cond = threading.Condition()
        self._run = _Run()
        self._activity = Activity()
        self._async = AsyncRunner()
        self._pool: ThreadPoolExecutor | None = None
        self._invoker: Invoker | None = None
        self._log_router: WorkerLogRouter | None = None
        self._dropped_mark = 0
        self._listeners: list[QueueListener] = []
        self._timers: dict[str, SingletonTimer] = {}
        self._schedules: dict[str, CronSchedule] = {}
        self._function_errors: dict[str, str] = {}
        self._http: HttpFrontEnd | None = None
        self._credentials: dict[str, Any] = {}
        self._output_clients: dict[tuple[str, str], Any] = {}
        self._output_lock = threading.Lock()
        self._hosts_container: Any = None
        self._started = False

    # -- public API --------------------------------------------------------------------------------

    @property
    def module(self) -> ModuleType | None:
        return self._app.module if self._app else None

    @property
    def http_url(self) -> str | None:
        """``http://127.0.0.1:<port>`` while the HTTP front end runs (functions are under ``/api``)."""
        return self._http.url if self._http else None

    @property
    def function_keys(self) -> dict[str, str]:
        return dict(self._function_keys)

    @property
    def master_key(self) -> str:
        return self._master_key

    @property
    def settings(self) -> dict[str, str]:
        """The environment the app sees (process environment plus the given settings)."""
        return dict(self._app.env) if self._app else {}

    @property
    def running(self) -> bool:
        return self._started

    @property
    def schedules(self) -> dict[str, CronSchedule]:
        """The parsed schedule of each timer function that indexed."""
        return dict(self._schedules)

    @property
    def function_errors(self) -> dict[str, str]:
        """Functions that failed indexing, with why; the host runs the others and never these."""
        return dict(self._function_errors)

    @property
    def invocations(self) -> list[InvocationRecord]:
        """A snapshot of every finished invocation of this instance, oldest first."""
        with self._records_cond:
            return list(self._records)

    @property
    def dropped_logs(self) -> list[CapturedLog]:
        """The app's log records since this instance started that the real host would drop.

        They carried no invocation ID, or the ID of an invocation no longer running (see
        ``worker_logs``). The count is per process: with several instances in one process, each
        sees every drop since it started.
        """
        return self._log_router.dropped_since(self._dropped_mark) if self._log_router else []

    def timer_lock_held(self, name: str) -> bool:
        """Whether this instance holds the timer's listener lock, i.e. runs its schedule now."""
        timer = self._timers.get(name)
        return bool(timer and timer.listening and not self._run.dead)

    def wait_timer_lock(self, name: str, timeout: float) -> bool:
        """Wait until this instance holds the timer's lock and its timer listener has started."""
        timer = self._timers.get(name)
        return bool(timer and timer.wait_listening(timeout))

    def timer_uses_monitor(self, name: str) -> bool:
        timer = self._timers.get(name)
        return bool(timer and timer.uses_monitor)

    def queue_polls(self, function: str) -> list[Any]:
        """The polls this instance's listener for ``function`` made (``queues.PollEvent``), oldest first."""
        return [event for listener in self._listeners if listener.spec.name == function for event in listener.polls]

    def start(self) -> FunctionsHost:
        if self._started:
            raise RuntimeError(f"host instance {self.instance_id} is already running")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop triggers, release timer locks, wait up to ``stop_grace`` for running invocations, leave the app."""
        if not self._started and self._app is None:
            return  # never started, already stopped, or killed
        if self._http:
            self._http.stop()
            self._http = None
        for timer in self._timers.values():
            timer.stop()
        self._timers = {}
        for listener in self._listeners:
            listener.stop(self.stop_grace)
        self._listeners = []
        self._activity.wait_idle(self.stop_grace)
        self._shutdown_runtime(wait=True)

    def kill(self) -> None:
        """End the instance as a killed process ends: at once, releasing nothing and completing nothing.

        Queue messages in flight stay invisible until their lease runs out and come back with a
        higher dequeue count; timer locks stay leased until they expire; a running timer invocation
        does not update the schedule status; outputs not yet sent are never sent; nothing more is
        recorded. One difference from a real kill: user code already running in a thread cannot be
        stopped, so it runs to its end (its effects on the outside world happen; its result is
        dropped). For a real kill, use ``FunctionsHostProcess.kill()``.
        """
        if not self._started:
            return
        self._run.dead = True
        logger.warning("host instance %s killed", self.instance_id)
        if self._http:
            self._http.stop()
            self._http = None
        for timer in self._timers.values():
            timer.kill()
        self._timers = {}
        for listener in self._listeners:
            listener.kill()
        self._listeners = []
        self._shutdown_runtime(wait=False)

    def __enter__(self) -> FunctionsHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fire_timer(self, name: str, *, past_due: bool = False) -> InvocationRecord:
        """Invoke a timer function now (as the admin API does) and return its record; never raises for app errors.

        As TimerTriggerBinding.BindAsync does for such a call, the function gets the stored
        schedule status when the timer uses the monitor, and the status is not updated afterwards.
        ``past_due`` is the stand-in's own knob (the admin API always passes false).
        """
        spec = self._spec(name, "timerTrigger")
        status = self._stored_status(spec)
        details: dict[str, Any] = {"past_due": past_due}
        if status is not None:
            details["schedule_status"] = status.to_json()
        firing = TimerFiring(past_due=past_due, schedule_status=status, reason="Timer fired on demand",
                             details=details)
        return self._fire_timer(spec, firing)

    def invoke_queue_function(self, name: str, body: str | bytes) -> InvocationRecord:
        """Invoke a queue function directly with ``body`` (no queue, no retries), as the admin API does."""
        spec = self._spec(name, "queueTrigger")
        message = FuncQueueMessage(id=f"manual-{time.time_ns()}", body=body, dequeue_count=1)
        return self._invoke(spec, message, trigger="manual", reason="Manual invocation", details={})

    def drain(self, timeout: float = 30.0, *, include_delayed: bool = False) -> None:
        """Wait until every watched queue is empty and no invocation runs; raise ``TimeoutError`` otherwise.

        Without ``include_delayed`` only visible messages count, so a failed message waiting out its
        ``visibilityTimeout`` (or one sent with a visibility delay) does not keep ``drain`` waiting.
        The listeners are not woken: messages are found when their polling finds them, as in Azure.
        """
        deadline = time.monotonic() + timeout
        while True:
            # Activity is checked on both sides of the queue check: a message received in between
            # is counted as activity from before its receive call.
            if self._activity.count == 0:
                pending = self._pending_queues(include_delayed)
                if not pending and self._activity.count == 0:
                    return
            else:
                pending = ["(invocations running)"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not drained after {timeout:.1f} s: {', '.join(pending)}")
            time.sleep(0.05)

    def wait_for(self, predicate: Callable[[InvocationRecord], bool], timeout: float = 30.0,
                 *, count: int = 1) -> list[InvocationRecord]:
        """Wait until ``count`` records satisfy ``predicate``; return them, or raise ``TimeoutError``."""
        with self._records_cond:
            ok = self._records_cond.wait_for(
                lambda: sum(1 for r in self._records if predicate(r)) >= count, timeout
            )
            matching = [r for r in self._records if predicate(r)]
        if not ok:
            raise TimeoutError(f"{len(matching)} of {count} matching invocation(s) after {timeout:.1f} s")
        return matching

    def queue_client(self, queue_name: str, connection: str | None = None) -> Any:
        """A raw-text ``QueueClient`` for a queue on a binding connection (default ``AzureWebJobsStorage``)."""
        resolved = resolve_queue_connection(connection, self.settings or self._settings)
        return resolved.queue_client(queue_name, credential=self._credential(resolved))

    def encode(self, body: str | bytes) -> str:
        """The queue text for ``body`` under the project's ``messageEncoding``."""
        assert self.host_json is not None, "start() first"
        return encode_message(body, self.host_json.queues.message_encoding)

    # -- start -------------------------------------------------------------------------------------

    def _start(self) -> None:
        # Per-run state is made afresh, so a stopped (or killed) host can be started again (records are kept).
        self._run = _Run()
        self._activity = Activity()
        self._async = AsyncRunner()
        self._schedules = {}
        self._function_errors = {}
        self._output_clients = {}
        self._timers = {}
        self.host_json = load_host_json(self.project_dir, self.queue_overrides, processor_count=self.processor_count)
        self._app = LoadedApp.acquire(self.project_dir, self.app_module, self._settings, self._prepare)
        env = self._app.env
        self.host_id = host_id(env, str(self.project_dir))
        self._log_router = WorkerLogRouter.install(debug=is_truthy(env.get("PYTHON_ENABLE_DEBUG_LOGGING")))
        self._dropped_mark = self._log_router.dropped_total
        specs = self._app.specs
        self.functions = {s.name: s for s in specs}
        self.disabled = {s.name for s in specs if is_truthy(env.get(f"AzureWebJobs.{s.name}.Disabled"))}
        for name in sorted(self.disabled):
            logger.info("Function %s is disabled (AzureWebJobs.%s.Disabled)", name, name)
        self._pool = ThreadPoolExecutor(max_workers=self._worker_threads(env),
                                        thread_name_prefix=f"funchost-worker-{self.instance_id}")
        run = self._run
        self._invoker = Invoker(
            project_dir=self.project_dir, async_runner=self._async, send_outputs=self._send_outputs,
            on_record=self._record, worker_pool=self._pool, log_router=self._log_router,
            instance_id=self.instance_id, is_dead=lambda: run.dead,
        )
        enabled = [s for s in specs if s.name not in self.disabled]
        # Resolve every %Setting% first, so a bad configuration fails start() before anything runs.
        # A schedule the timer cannot parse leaves only that function in error, as on the real host.
        timers = [(s, schedule) for s in enabled if s.trigger_type == "timerTrigger"
                  for schedule in [self._schedule(s)] if schedule is not None]
        queues = [(s, self._queue_target(s.trigger, s.name)) for s in enabled if s.trigger_type == "queueTrigger"]
        for spec in enabled:
            for binding in spec.outputs:
                if binding.type == "queue":
                    self._queue_target(binding, spec.name)
        routes = [self._route(s) for s in enabled if s.trigger_type == "httpTrigger"]
        self._async.start()
        self._started = True
        if self.run_queues:
            for spec, target in queues:
                self._start_listener(spec, target)
        if self.run_timers:
            for spec, schedule in timers:
                self._start_timer(spec, schedule)
        if self.http_port is not None:
            self._http = HttpFrontEnd(
                routes=routes, route_prefix=self.host_json.route_prefix, invoker=self._invoker,
                function_keys=self._function_keys, master_key=self._master_key,
                max_request_body=self.max_request_body, admin_invoke=self._admin_invoke, port=self.http_port,
            )
            self._http.start()
        logger.info("Host instance %s started (host ID %s): %d function(s) (%s)", self.instance_id, self.host_id,
                    len(specs), ", ".join(sorted(self.functions)))

    def _worker_threads(self, env: Mapping[str, str]) -> int:
        """The Python worker's sync thread pool: PYTHON_THREADPOOL_THREAD_COUNT, else ThreadPoolExecutor's default."""
        configured = env.get("PYTHON_THREADPOOL_THREAD_COUNT")
        if configured:
            try:
                count = int(configured)
            except ValueError:
                count = 0
            if count >= 1:
                return count
            logger.warning("PYTHON_THREADPOOL_THREAD_COUNT=%r is not a whole number >= 1; the worker uses its"
                           " default", configured)
        return min(_MAX_WORKER_THREADS, self.processor_count + 4)

    def _shutdown_runtime(self, *, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None
        self._async.stop()
        if self._log_router is not None:
            self._log_router.uninstall()
            self._log_router = None
        if self._app is not None:
            self._app.release()
            self._app = None
        self._started = False

    def _schedule(self, spec: FunctionSpec) -> CronSchedule | None:
        """The function's NCRONTAB schedule, or None after putting the function in error, as the host does."""
        assert self._app is not None
        expression = resolve_expression(str(spec.trigger.get("schedule", "")), self._app.env,
                                        what=f"function {spec.name} schedule")
        try:
            schedule = parse_timer_schedule(expression)
        except CrontabError as e:
            if _is_timespan(expression):
                # The real timer would run it every so often (App Service plans); the stand-in does not.
                raise ValueError(f"function {spec.name}: schedule {expression!r} is a TimeSpan; the host stand-in"
                                 " implements NCRONTAB schedules only") from e
            self._function_errors[spec.name] = (
                f"The schedule expression '{expression}' was not recognized as a valid cron expression or"
                f" timespan string. ({e})"
            )
            logger.error("Error indexing method 'Functions.%s': %s", spec.name, self._function_errors[spec.name])
            logger.error("Function '%s' failed indexing and will be disabled. It will not run until the schedule"
                         " is fixed and the host restarts.", spec.name)
            return None
        self._schedules[spec.name] = schedule
        return schedule

    def _queue_target(self, binding: Binding, function: str) -> _QueueTarget:
        assert self._app is not None
        name = resolve_expression(str(binding.get("queueName", "")), self._app.env,
                                  what=f"function {function} binding {binding.name} queueName")
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"function {function}: {name!r} is not a valid queue name (3-63 lowercase letters,"
                             " digits and single hyphens)")
        connection = resolve_queue_connection(binding.get("connection"), self._app.env)
        return _QueueTarget(connection=connection, queue_name=name)

    def _route(self, spec: FunctionSpec) -> HttpRoute:
        from .routes import RouteTemplate

        methods = spec.trigger.get("methods")
        return HttpRoute(
            spec=spec,
            template=RouteTemplate.parse(str(spec.trigger.get("route") or spec.name)),
            methods=frozenset(str(m).upper() for m in methods) if methods else None,
            auth_level=str(spec.trigger.get("authLevel") or "function").lower(),
        )

    def _credential(self, connection: QueueConnection) -> Any:
        # One credential per connection, shared by its clients, so tokens are cached.
        if connection.connection_string is not None:
            return None
        if connection.name not in self._credentials:
            self._credentials[connection.name] = connection.make_credential()
        return self._credentials[connection.name]

    def _start_listener(self, spec: FunctionSpec, target: _QueueTarget) -> None:
        assert self.host_json is not None and self._invoker is not None
        credential = self._credential(target.connection)
        poison = (target.connection.queue_client(poison_name(target.queue_name), credential=credential)
                  if has_poison_queue(target.queue_name) else None)
        listener = QueueListener(
            spec=spec,
            queue_name=target.queue_name,
            client=target.connection.queue_client(target.queue_name, credential=credential),
            poison_client=poison,
            options=self.host_json.queues,
            lease_seconds=self.queue_lease,
            invoker=self._invoker,
            activity=self._activity,
            on_poisoned=self._notify_queue,
        )
        self._listeners.append(listener)
        listener.start()

    def _hosts(self) -> Any:
        """``azure-webjobs-hosts`` in AzureWebJobsStorage (made on first use: only timers need it)."""
        if self._hosts_container is None:
            assert self._app is not None
            self._hosts_container = hosts_container(self._app.env)
        return self._hosts_container

    def _start_timer(self, spec: FunctionSpec, schedule: CronSchedule) -> None:
        assert self.host_json is not None
        timer = SingletonTimer(
            spec, schedule, container=self._hosts(), host_id=self.host_id, options=self.host_json.singleton,
            clock=self.clock, fire=self._fire_timer, stop_grace=self.stop_grace, on_lock=self._on_timer_lock,
        )
        self._timers[spec.name] = timer
        timer.start()

    # -- invocation plumbing -----------------------------------------------------------------------

    def _spec(self, name: str, trigger_type: str) -> FunctionSpec:
        if not self._started:
            raise RuntimeError("the host is not running; call start() first")
        spec = self.functions.get(name)
        if spec is None or spec.trigger_type != trigger_type:
            raise KeyError(f"no {trigger_type} function named {name!r}")
        if name in self._function_errors:
            raise FunctionInErrorError(f"function {name} is in error: {self._function_errors[name]}")
        return spec

    def _invoke(self, spec: FunctionSpec, value: Any, *, trigger: str, reason: str,
                details: dict[str, Any]) -> InvocationRecord:
        invoker = self._invoker
        assert invoker is not None
        with self._activity.busy():
            result = invoker.invoke(spec, value, trigger=trigger, reason=reason, details=details)
            invoker.publish(result.record)
        return result.record

    def _fire_timer(self, spec: FunctionSpec, firing: TimerFiring) -> InvocationRecord:
        return self._invoke(spec, timer_request(firing), trigger="timer", reason=firing.reason,
                            details=dict(firing.details))

    def _stored_status(self, spec: FunctionSpec) -> Any:
        """The schedule status an on-demand invocation is given (None when the timer keeps none)."""
        timer = self._timers.get(spec.name)
        use_monitor = spec.trigger.get("useMonitor")
        if (timer is not None and not timer.uses_monitor) or use_monitor is False:
            return None
        try:
            monitor = StorageScheduleMonitor(self._hosts(), self.host_id)
            return monitor.get_safe_status(function_id(spec.name))
        except Exception as exc:  # storage not configured or unreachable: no status, as a fresh timer
            logger.debug("%s: no schedule status for an on-demand invocation: %s", spec.name, exc)
            return None

    def _admin_invoke(self, name: str, text: str) -> bool:
        """``POST /admin/functions/{name}``: run a timer or queue function in the background."""
        spec = self.functions.get(name)
        if (spec is None or spec.name in self.disabled or spec.name in self._function_errors
                or spec.trigger_type == "httpTrigger"):
            return False

        def work() -> None:
            if spec.trigger_type == "timerTrigger":
                self.fire_timer(name)
            else:
                self.invoke_queue_function(name, text)

        threading.Thread(target=work, name=f"funchost-admin-{name}", daemon=True).start()
        return True

    def _record(self, record: InvocationRecord) -> None:
        with self._records_cond:
            self._records.append(record)
            self._records_cond.notify_all()
        if self._on_invocation:
            try:
                self._on_invocation(record)
            except Exception:
                logger.exception("on_invocation callback failed")

    def _send_outputs(self, spec: FunctionSpec, binding: Binding, messages: list[str | bytes]) -> None:
        assert self.host_json is not None
        if self._run.dead:
            raise HostKilledError("the host instance was killed before its outputs were sent")
        target = self._queue_target(binding, spec.name)
        with self._output_lock:
            client = self._output_clients.get(target.key)
            if client is None:
                client = target.connection.queue_client(target.queue_name,
                                                        credential=self._credential(target.connection))
                ensure_queue(client)
                self._output_clients[target.key] = client
        for message in messages:
            client.send_message(encode_message(message, self.host_json.queues.message_encoding))
        self._notify_queue(target.queue_name)

    def _notify_queue(self, queue_name: str) -> None:
        """SharedQueueWatcher: this instance's listeners on ``queue_name`` poll at once (others are not told)."""
        for listener in self._listeners:
            if listener.queue_name == queue_name:
                listener.notify()

    def _pending_queues(self, include_delayed: bool) -> list[str]:
        pending = []
        for listener in self._listeners:
            client = listener.client
            try:
                if include_delayed:
                    count = client.get_queue_properties().approximate_message_count or 0
                else:
                    count = len(client.peek_messages(max_messages=1))
            except Exception as exc:
                pending.append(f"{listener.queue_name} (unreadable: {exc})")
                continue
            if count:
                pending.append(f"{listener.queue_name} ({count}{'+' if not include_delayed else ''} message(s))")
        return pending


def _is_timespan(expression: str) -> bool:
    """Whether the timer would read ``expression`` as a TimeSpan (``d``, ``hh:mm[:ss]``, ``d.hh:mm:ss``)."""
    text = expression.strip()
    if text.isascii() and text.isdigit():
        return True  # TimeSpan.TryParse("5") is five days
    try:
        parse_timespan(text if text.count(":") == 2 else text + ":00")
    except ValueError:
        return False
    return True
