"""A small stand-in for the Azure Functions host, for the demo and the end-to-end tests.

Runs a Python v2 programming-model app (``function_app.py``) with timer, queue (Azurite) and
HTTP triggers, in this process (:class:`FunctionsHost`) or as a subprocess
(``python -m emulator.funchost``, wrapped by :class:`FunctionsHostProcess`). See README.md for
what it implements and what it does not.
"""

from .connections import QueueConnection, resolve_queue_connection
from .crash import CRASH_EXIT_CODE, CrashPoint
from .host import FunctionInErrorError, FunctionsHost, HostAlreadyRunningError
from .hostjson import HostJson, QueueOptions, load_host_json, parse_timespan
from .invoke import InvocationRecord
from .metadata import FunctionSpec, UnsupportedFunctionError
from .process import FunctionsHostProcess
from .queues import decode_message, encode_message, poison_queue_name
from .routes import RouteTemplate
from .settings import UnresolvedSettingError, load_local_settings

__all__ = [
    "CRASH_EXIT_CODE",
    "CrashPoint",
    "FunctionInErrorError",
    "FunctionSpec",
    "FunctionsHost",
    "FunctionsHostProcess",
    "HostAlreadyRunningError",
    "HostJson",
    "InvocationRecord",
    "QueueConnection",
    "QueueOptions",
    "RouteTemplate",
    "UnresolvedSettingError",
    "UnsupportedFunctionError",
    "decode_message",
    "encode_message",
    "load_host_json",
    "load_local_settings",
    "parse_timespan",
    "poison_queue_name",
    "resolve_queue_connection",
]
