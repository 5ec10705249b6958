"""``python -m emulator.funchost``: run the app like ``func start`` would, as a process of its own.

Logs go to stdout. Machine-readable events are single JSON lines with a ``funchost`` key:
``{"funchost": "ready", ...}`` once started (``function_errors`` names the functions that failed
indexing), ``{"funchost": "invocation", ...}`` per finished invocation (with the log records the
host keeps for it), ``{"funchost": "log_dropped", ...}`` per app log record the real host would
drop, ``{"funchost": "stopped"}`` on a clean stop (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from .clock import FileClock, HostClock
from .crash import CrashPoint, install_crash_point
from .host import FunctionsHost
from .hostjson import LOG_LEVELS, load_host_json
from .invoke import InvocationRecord
from .queues import DEFAULT_VISIBILITY_LEASE
from .settings import load_local_settings
from .worker_logs import CapturedLog, WorkerLogRouter

logger = logging.getLogger("emulator.funchost")
_events = logging.getLogger("emulator.funchost.events")

EVENT_KEY = "funchost"


class _Formatter(logging.Formatter):
    """Plain log lines for humans; event records are printed as their bare JSON."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "funchost_event", False):
            return record.getMessage()
        return super().format(record)


def emit_event(kind: str, **fields: Any) -> None:
    _events.info("%s", json.dumps({EVENT_KEY: kind, **fields}, default=str), extra={"funchost_event": True})


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        result[name] = value
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator.funchost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path(), help="the app's folder (host.json, function_app.py)")
    parser.add_argument("--app-module", default="function_app", help="module holding the FunctionApp")
    parser.add_argument("--settings", type=Path, help="a local.settings.json (its Values become app settings)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an extra app setting")
    http = parser.add_mutually_exclusive_group()
    http.add_argument("--http-port", type=int, help="HTTP port (0: a free port; default: Host.LocalHttpPort or 7071)")
    http.add_argument("--no-http", action="store_true", help="do not serve HTTP functions")
    parser.add_argument("--timers", action="store_true", help="run timer functions on their schedules")
    parser.add_argument("--no-queues", action="store_true", help="do not listen to queues")
    parser.add_argument("--crash-at", action="append", default=[], metavar="[before:|after:]MODULE:QUALNAME",
                        help="test instrumentation: exit with code 137 before/after (default) this callable runs")
    parser.add_argument("--function-key", action="append", default=[], metavar="NAME=KEY",
                        help="a host-level function key (default: a random one, printed in the ready event)")
    parser.add_argument("--master-key", help="the master (admin) key (default: random, printed in the ready event)")
    parser.add_argument("--queue-lease", type=float, default=DEFAULT_VISIBILITY_LEASE, metavar="SECONDS",
                        help="how long a received message stays invisible; renewed every half of it"
                             " (default 600, the extension's 10 minutes)")
    parser.add_argument("--queue-option", action="append", default=[], metavar="NAME=VALUE",
                        help="override a host.json extensions.queues setting, e.g. maxPollingInterval=00:00:00.2")
    parser.add_argument("--max-request-body", type=int, default=1024 * 1024, metavar="BYTES",
                        help="largest accepted HTTP request body (default 1 MiB)")
    parser.add_argument("--log-level", help="Python log level (default: host.json logging.logLevel.default)")
    parser.add_argument("--instance-id", help="this host instance's ID (default: random)")
    parser.add_argument("--clock-file", type=Path, metavar="PATH",
                        help="follow the emulated time another process writes there (emulator.funchost.ClockFile)")
    parser.add_argument("--processor-count", type=int, default=1, metavar="N",
                        help="the instance's CPU count: default newBatchThreshold and worker thread pool (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    project = args.project.resolve()
    queue_overrides: dict[str, Any] = {}
    for name, text in _pairs(args.queue_option, "--queue-option").items():
        try:
            queue_overrides[name] = json.loads(text)  # numbers (batchSize=1) as numbers
        except ValueError:
            queue_overrides[name] = text  # TimeSpans and encodings as text
    level_name = args.log_level or load_host_json(project).default_log_level
    level = LOG_LEVELS.get(level_name.lower()) or logging.getLevelName(level_name.upper())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if isinstance(level, int) else logging.INFO, handlers=[handler], force=True)
    _events.setLevel(logging.INFO)
    # The HTTP client libraries are chatty at INFO; the host does not show them either.
    logging.getLogger("azure").setLevel(logging.WARNING)

    settings: dict[str, str] = {}
    http_port: int | None = 7071
    if args.settings:
        local = load_local_settings(args.settings)
        settings.update(local)
        http_port = local.local_http_port or http_port
    settings.update(_pairs(args.set, "--set"))
    if args.no_http:
        http_port = None
    elif args.http_port is not None:
        http_port = args.http_port
    crash_points = [CrashPoint.parse(spec) for spec in args.crash_at]

    def prepare() -> None:
        for point in crash_points:
            install_crash_point(point)
            logger.warning("crash point installed: %s", point)

    def on_invocation(record: InvocationRecord) -> None:
        emit_event("invocation", **record.to_json())

    def on_log_dropped(entry: CapturedLog) -> None:
        emit_event("log_dropped", **entry.to_json())

    function_keys = _pairs(args.function_key, "--function-key") or None
    clock: HostClock | None = FileClock(args.clock_file) if args.clock_file else None
    host = FunctionsHost(
        project, settings, app_module=args.app_module, function_keys=function_keys, master_key=args.master_key,
        run_timers=args.timers, run_queues=not args.no_queues, http_port=http_port, queue_lease=args.queue_lease,
        queue_overrides=queue_overrides, instance_id=args.instance_id, clock=clock,
        processor_count=args.processor_count,
        on_timer_lock=lambda function, held: emit_event("timer_lock", function=function, held=held),
        max_request_body=args.max_request_body, on_invocation=on_invocation, prepare=prepare,
    )
    router = WorkerLogRouter.install()
    router.add_drop_listener(on_log_dropped)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        host.start()
    except Exception as exc:
        logger.error("host failed to start: %s: %s", type(exc).__name__, exc)
        return 1
    # Keys are printed only when they were generated here; keys given on the command line are not echoed.
    generated: dict[str, Any] = {}
    if function_keys is None and args.master_key is None:
        generated = {"function_keys": host.function_keys, "master_key": host.master_key}
    emit_event("ready", pid=os.getpid(), instance_id=host.instance_id, host_id=host.host_id,
               http_url=host.http_url, functions=sorted(host.functions), function_errors=host.function_errors,
               **generated)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        logger.info("stopping")
        host.stop()
        emit_event("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
