"""``FunctionsHost``: runs a Python v2 Functions app in this process, against Azurite, with threads.

Only one in-process host may run at a time: app settings are process-wide environment variables,
and the app module is imported under its own name. ``stop()`` puts the environment, ``sys.path``
and ``sys.modules`` back as they were.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.decorators.function_app import FunctionRegister
from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.functions.timer import TimerRequest

from .activity import Activity
from .connections import QueueConnection, resolve_queue_connection
from .hostjson import HostJson, load_host_json, parse_timespan
from .invoke import AsyncRunner, InvocationRecord, Invoker
from .metadata import Binding, FunctionSpec, read_functions
from .ncrontab import CronSchedule, CrontabError, parse_timer_schedule
from .queues import QueueListener, encode_message, ensure_queue, poison_queue_name
from .settings import is_truthy, resolve_expression
from .timers import TimerSchedule
from .web import HttpFrontEnd, HttpRoute

__all__ = ["FunctionInErrorError", "FunctionsHost", "HostAlreadyRunningError"]

logger = logging.getLogger(__name__)

# Queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
_ACTIVE_LOCK = threading.Lock()
_ACTIVE: list[FunctionsHost] = []


class HostAlreadyRunningError(RuntimeError):
    pass


class FunctionInErrorError(RuntimeError):
    """The function failed indexing (e.g. a schedule the timer cannot parse): the host does not run it."""


@dataclass(frozen=True)
class _QueueTarget:
    connection: QueueConnection
    queue_name: str

    @property
    def key(self) -> tuple[str, str]:
        return self.connection.name, self.queue_name


class FunctionsHost:
    """Run ``app_module`` from ``project_dir`` with timer, queue and HTTP triggers.

    ``settings`` play the part of local.settings.json ``Values``: they become environment variables
    before the app is imported. ``function_keys`` (name -> key) and ``master_key`` guard non-anonymous
    HTTP functions; when neither is given, random keys are made (see :attr:`function_keys`).
    ``http_port=None`` disables the HTTP front end, ``0`` picks a free port.
    ``queue_lease`` is how long a received message stays invisible; it is renewed every half of it.
    ``queue_overrides`` replace keys of host.json ``extensions.queues`` (e.g. a shorter ``maxPollingInterval``
    for tests), without editing the project's host.json.
    ``prepare`` runs after the settings are applied, right before the app is imported.
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
        queue_lease: float = 60.0,
        queue_overrides: Mapping[str, Any] | None = None,
        max_request_body: int = 1024 * 1024,
        stop_grace: float = 30.0,
        on_invocation: Callable[[InvocationRecord], None] | None = None,
        prepare: Callable[[], None] | None = None,
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

        self.host_json: HostJson | None = None
        self.functions: dict[str, FunctionSpec] = {}
        self.disabled: set[str] = set()
        self.module: ModuleType | None = None
        self._records: list[InvocationRecord] = []
        self._records_cond = threading.Condition()
        self._activity = Activity()
        self._async = AsyncRunner()
        self._invoker: Invoker | None = None
        self._env: dict[str, str] = {}
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerSchedule] = []
        self._schedules: dict[str, CronSchedule] = {}
        self._function_errors: dict[str, str] = {}
        self._http: HttpFrontEnd | None = None
        self._credentials: dict[str, Any] = {}
        self._output_clients: dict[tuple[str, str], Any] = {}
        self._output_lock = threading.Lock()
        # What start() changed and stop() puts back.
        self._saved_env: dict[str, str | None] = {}
        self._saved_module: ModuleType | None = None
        self._modules_before: set[str] = set()
        self._path_added = False
        self._started = False

    # -- public API --------------------------------------------------------------------------------

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
        return dict(self._env)

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
        """A snapshot of every finished invocation, oldest first."""
        with self._records_cond:
            return list(self._records)

    def start(self) -> FunctionsHost:
        with _ACTIVE_LOCK:
            if _ACTIVE:
                raise HostAlreadyRunningError(
                    "another in-process FunctionsHost is running; only one at a time is supported"
                    " (app settings are process-wide environment variables)"
                )
            _ACTIVE.append(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop triggers, wait up to ``stop_grace`` for running invocations, and undo the process changes."""
        if self._http:
            self._http.stop()
            self._http = None
        for timer in self._timers:
            timer.stop(self.stop_grace)
        self._timers = []
        for listener in self._listeners:
            listener.stop(self.stop_grace)
        self._listeners = []
        self._activity.wait_idle(self.stop_grace)
        self._async.stop()
        self._restore_process_state()
        self._started = False
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    def __enter__(self) -> FunctionsHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fire_timer(self, name: str, *, past_due: bool = False) -> InvocationRecord:
        """Invoke a timer function now (as the admin API does) and return its record; never raises for app errors."""
        spec = self._spec(name, "timerTrigger")
        return self._fire_timer(spec, past_due, "Timer fired on demand")

    def invoke_queue_function(self, name: str, body: str | bytes) -> InvocationRecord:
        """Invoke a queue function directly with ``body`` (no queue, no retries), as the admin API does."""
        spec = self._spec(name, "queueTrigger")
        message = FuncQueueMessage(id=f"manual-{time.time_ns()}", body=body, dequeue_count=1)
        return self._run(spec, message, trigger="manual", reason="Manual invocation", details={})

    def drain(self, timeout: float = 30.0, *, include_delayed: bool = False) -> None:
        """Wait until every watched queue is empty and no invocation runs; raise ``TimeoutError`` otherwise.

        Without ``include_delayed`` only visible messages count, so a failed message waiting out its
        ``visibilityTimeout`` (or one sent with a visibility delay) does not keep ``drain`` waiting.
        """
        for listener in self._listeners:
            listener.wake()
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
        resolved = resolve_queue_connection(connection, self._env or self._settings)
        return resolved.queue_client(queue_name, credential=self._credential(resolved))

    def encode(self, body: str | bytes) -> str:
        """The queue text for ``body`` under the project's ``messageEncoding``."""
        assert self.host_json is not None, "start() first"
        return encode_message(body, self.host_json.queues.message_encoding)

    # -- start -------------------------------------------------------------------------------------

    def _start(self) -> None:
        # Per-run state is made afresh, so a stopped host can be started again (records are kept).
        self._activity = Activity()
        self._async = AsyncRunner()
        self._schedules = {}
        self._function_errors = {}
        self._output_clients = {}
        self.host_json = load_host_json(self.project_dir, self.queue_overrides)
        self._apply_settings()
        self._env = dict(os.environ)
        self._modules_before = set(sys.modules)
        project = str(self.project_dir)
        if project not in sys.path:
            sys.path.insert(0, project)
            self._path_added = True
        if self._prepare:
            self._prepare()
        app = self._import_app()
        specs = read_functions(app)
        self.functions = {s.name: s for s in specs}
        self.disabled = {s.name for s in specs if is_truthy(self._env.get(f"AzureWebJobs.{s.name}.Disabled"))}
        for name in sorted(self.disabled):
            logger.info("Function %s is disabled (AzureWebJobs.%s.Disabled)", name, name)
        self._invoker = Invoker(
            project_dir=self.project_dir, async_runner=self._async,
            send_outputs=self._send_outputs, on_record=self._record,
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
        if self.run_queues:
            for spec, target in queues:
                self._start_listener(spec, target)
        if self.run_timers:
            for spec, schedule in timers:
                timer = TimerSchedule(spec, schedule, self._fire_timer)
                self._timers.append(timer)
                timer.start()
        if self.http_port is not None:
            self._http = HttpFrontEnd(
                routes=routes, route_prefix=self.host_json.route_prefix, invoker=self._invoker,
                function_keys=self._function_keys, master_key=self._master_key,
                max_request_body=self.max_request_body, admin_invoke=self._admin_invoke, port=self.http_port,
            )
            self._http.start()
        self._started = True
        logger.info("Host started: %d function(s) (%s)", len(specs), ", ".join(sorted(self.functions)))

    def _apply_settings(self) -> None:
        for name, value in self._settings.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _import_app(self) -> Any:
        # Always a fresh import: the app object's get_functions() may be called only once, and another
        # module of the same name (e.g. the project's own function_app) may already be loaded.
        self._saved_module = sys.modules.pop(self.app_module, None)
        importlib.invalidate_caches()
        self.module = importlib.import_module(self.app_module)
        apps = [v for v in vars(self.module).values() if isinstance(v, FunctionRegister)]
        if len(apps) != 1:
            raise RuntimeError(f"{self.app_module} defines {len(apps)} FunctionApp objects; exactly one is required")
        return apps[0]

    def _restore_process_state(self) -> None:
        for name, previous in self._saved_env.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        self._saved_env = {}
        if self._modules_before:
            # Forget the modules the app brought in from the project, so the next host imports them afresh
            # (module-level state such as cached clients does not leak between hosts).
            project = str(self.project_dir)
            for name in set(sys.modules) - self._modules_before:
                module_file = getattr(sys.modules.get(name), "__file__", None) or ""
                if module_file.startswith(project + os.sep) and ".venv" not in module_file:
                    sys.modules.pop(name, None)
            sys.modules.pop(self.app_module, None)
            if self._saved_module is not None:
                sys.modules[self.app_module] = self._saved_module
            self._modules_before = set()
            self._saved_module = None
        if self._path_added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(self.project_dir))
            self._path_added = False

    def _schedule(self, spec: FunctionSpec) -> CronSchedule | None:
        """The function's NCRONTAB schedule, or None after putting the function in error, as the host does."""
        expression = resolve_expression(str(spec.trigger.get("schedule", "")), self._env,
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
        name = resolve_expression(str(binding.get("queueName", "")), self._env,
                                  what=f"function {function} binding {binding.name} queueName")
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"function {function}: {name!r} is not a valid queue name (3-63 lowercase letters,"
                             " digits and single hyphens)")
        connection = resolve_queue_connection(binding.get("connection"), self._env)
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
        listener = QueueListener(
            spec=spec,
            queue_name=target.queue_name,
            client=target.connection.queue_client(target.queue_name, credential=credential),
            poison_client=target.connection.queue_client(poison_queue_name(target.queue_name), credential=credential),
            options=self.host_json.queues,
            lease_seconds=self.queue_lease,
            invoker=self._invoker,
            activity=self._activity,
        )
        self._listeners.append(listener)
        listener.start()

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

    def _run(self, spec: FunctionSpec, value: Any, *, trigger: str, reason: str,
             details: dict[str, Any]) -> InvocationRecord:
        assert self._invoker is not None
        with self._activity.busy():
            result = self._invoker.invoke(spec, value, trigger=trigger, reason=reason, details=details)
            self._invoker.publish(result.record)
        return result.record

    def _fire_timer(self, spec: FunctionSpec, past_due: bool, reason: str = "Timer fired") -> InvocationRecord:
        schedule = self._schedules.get(spec.name)
        request = TimerRequest(past_due=past_due, schedule={"AdjustForDST": False},
                               schedule_status={} if schedule is None else {"Expression": schedule.expression})
        return self._run(spec, request, trigger="timer", reason=reason, details={"past_due": past_due})

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
        for listener in self._listeners:
            if listener.queue_name == target.queue_name:
                listener.wake()

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
