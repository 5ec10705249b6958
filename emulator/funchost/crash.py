"""``--crash-at``: kill the host process around one callable, to test what a host crash leaves behind.

Test instrumentation that lives only in the stand-in, never in the app. ``after:mod:qualname``
lets the callable run and return, then the process dies with ``os._exit(137)`` (the exit code
of a SIGKILLed process); ``before:mod:qualname`` dies before it runs. The patch is installed
before the app is imported, so ``from mod import name`` in the app picks up the patched callable.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CRASH_EXIT_CODE", "CrashPoint", "install_crash_point"]

CRASH_EXIT_CODE = 137


@dataclass(frozen=True)
class CrashPoint:
    when: str  # before | after
    module: str
    qualname: str

    @classmethod
    def parse(cls, spec: str) -> CrashPoint:
        when = "after"
        if spec.startswith(("before:", "after:")):
            when, _, spec = spec.partition(":")
        module, sep, qualname = spec.partition(":")
        if not sep or not module or not qualname:
            raise ValueError(f"--crash-at {spec!r}: expected [before:|after:]module:qualname")
        return cls(when=when, module=module, qualname=qualname)

    def __str__(self) -> str:
        return f"{self.when}:{self.module}:{self.qualname}"


def _die(point: CrashPoint) -> None:
    sys.stderr.write(f"funchost: crash point {point} reached; exiting with {CRASH_EXIT_CODE}\n")
    sys.stderr.flush()
    # No cleanup, no flushing of queues or leases: exactly what a killed host leaves behind.
    os._exit(CRASH_EXIT_CODE)


def _wrap(target: Callable[..., Any], point: CrashPoint) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if point.when == "before":
                _die(point)
            await target(*args, **kwargs)
            _die(point)

        return async_wrapper

    @functools.wraps(target)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if point.when == "before":
            _die(point)
        target(*args, **kwargs)
        _die(point)

    return wrapper


def install_crash_point(point: CrashPoint) -> None:
    """Replace ``module.qualname`` (a function, or a method/static/class method of a class) with a dying wrapper."""
    owner: Any = importlib.import_module(point.module)
    *path, name = point.qualname.split(".")
    for attribute in path:
        owner = getattr(owner, attribute)
    raw = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    if raw is None:
        raise AttributeError(f"--crash-at {point}: {point.module}.{point.qualname} not found")
    if isinstance(raw, staticmethod):
        patched: Any = staticmethod(_wrap(raw.__func__, point))
    elif isinstance(raw, classmethod):
        patched = classmethod(_wrap(raw.__func__, point))
    elif callable(raw):
        patched = _wrap(raw, point)
    else:
        raise TypeError(f"--crash-at {point}: {point.module}.{point.qualname} is not callable")
    setattr(owner, name, patched)
