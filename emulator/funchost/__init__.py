"""A small stand-in for the Azure Functions host, for the demo and the end-to-end tests.

Runs a Python v2 programming-model app (``function_app.py``) with timer, queue (Azurite) and
HTTP triggers, as one or several host instances on one storage account: in this process
(:class:`FunctionsHost`, :class:`HostFleet`) or as subprocesses (``python -m emulator.funchost``,
wrapped by :class:`FunctionsHostProcess`). See README.md for what it implements and what it does not.
"""

from .clock import ClockFile, FileClock, HostClock, ManualClock, SystemClock
from .connections import QueueConnection, resolve_queue_connection
from .crash import CRASH_EXIT_CODE, CrashPoint
from .fleet import HostFleet
from .host import FunctionInErrorError, FunctionsHost, HostAlreadyRunningError
from .hostjson import HostJson, QueueOptions, load_host_json, parse_timespan
from .hoststorage import HOSTS_CONTAINER, function_id, host_id
from .invoke import InvocationRecord
from .metadata import FunctionSpec, UnsupportedFunctionError
from .process import FunctionsHostProcess
from .queues import RandomizedExponentialBackoff, decode_message, encode_message, poison_queue_name
from .routes import RouteTemplate
from .schedule_monitor import ScheduleStatus, status_blob
from .settings import UnresolvedSettingError, load_local_settings
from .singleton import SingletonOptions, listener_lock_blob
from .worker_logs import CapturedLog

__all__ = [
    "CRASH_EXIT_CODE",
    "HOSTS_CONTAINER",
    "CapturedLog",
    "ClockFile",
    "CrashPoint",
    "FileClock",
    "FunctionInErrorError",
    "FunctionSpec",
    "FunctionsHost",
    "FunctionsHostProcess",
    "HostAlreadyRunningError",
    "HostClock",
    "HostFleet",
    "HostJson",
    "InvocationRecord",
    "ManualClock",
    "QueueConnection",
    "QueueOptions",
    "RandomizedExponentialBackoff",
    "RouteTemplate",
    "ScheduleStatus",
    "SingletonOptions",
    "SystemClock",
    "UnresolvedSettingError",
    "UnsupportedFunctionError",
    "decode_message",
    "encode_message",
    "function_id",
    "host_id",
    "listener_lock_blob",
    "load_host_json",
    "load_local_settings",
    "parse_timespan",
    "poison_queue_name",
    "resolve_queue_connection",
    "status_blob",
]
