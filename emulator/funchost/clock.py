"""The stand-in's clock: what timers and the schedule monitor take for "now", and how tests move it.

The real host reads ``DateTimeOffset.Now`` (UTC on Azure) and waits on ``System.Timers.Timer``
(azure-webjobs-sdk-extensions ``TimerListener``). The stand-in reads :meth:`HostClock.now` and waits
with :meth:`HostClock.wait_until`, so a test can move time forward and every timer of every host
instance sharing the clock sees it at once.

Only timer occurrences and schedule status times follow this clock. Everything that Azure times
itself keeps real time: blob lease expiry (Azurite), queue message visibility, the singleton
lock's renewal and recovery polling and the queue listener's polling delays. So "an hour of
emulated time" passes in seconds for the timers while leases still expire as they would.

- :class:`SystemClock`: real UTC time (the default).
- :class:`ManualClock`: real time plus an offset that :meth:`~ManualClock.set` and
  :meth:`~ManualClock.advance` move (forward or back); in-process hosts share the object.
- :class:`FileClock`: the offset read from a small JSON file (``{"offset_seconds": ...}``), so
  host processes (``python -m emulator.funchost --clock-file F``) and the test that writes the
  file with :class:`ClockFile` share one emulated time.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["ClockFile", "FileClock", "HostClock", "ManualClock", "SystemClock"]

# A waiter re-checks the time at least this often, so a clock moved by another process (FileClock)
# or a missed notification never delays a firing by more than this.
_MAX_WAIT_SLICE = 0.5


class HostClock:
    """Real UTC time plus an offset; waiters wake when the offset moves."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._changed = threading.Condition()

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def wait_until(self, due: datetime, stop: threading.Event) -> bool:
        """Block until ``now() >= due`` (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            remaining = (due - self.now()).total_seconds()
            if remaining <= 0:
                return True
            with self._changed:
                self._changed.wait(min(remaining, _MAX_WAIT_SLICE))
        return False

    def wake(self) -> None:
        """Wake every waiter (the offset moved, or a waiter's stop event was set)."""
        with self._changed:
            self._changed.notify_all()

    def _set_offset(self, seconds: float) -> None:
        self._offset = seconds
        self.wake()


class SystemClock(HostClock):
    """Real time; the offset stays 0."""


class ManualClock(HostClock):
    """Emulated time for in-process hosts: real time flows, and :meth:`set`/:meth:`advance` jump it."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__()
        if start is not None:
            self.set(start)

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs an aware datetime (UTC)")
        self._set_offset((when - datetime.now(UTC)).total_seconds())

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self._set_offset(self._offset + seconds)


class FileClock(HostClock):
    """The offset kept in a JSON file that another process writes (see :class:`ClockFile`)."""

    def __init__(self, path: Path, *, poll: float = 0.1) -> None:
        super().__init__()
        self.path = Path(path)
        self._poll = poll
        self._stop = threading.Event()
        self._refresh()
        self._thread = threading.Thread(target=self._watch, name="funchost-clockfile", daemon=True)
        self._thread.start()

    def now(self) -> datetime:
        self._refresh()
        return super().now()

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            self._refresh()

    def _refresh(self) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            offset = float(json.loads(self.path.read_text(encoding="utf-8"))["offset_seconds"])
            if offset != self.offset:
                self._set_offset(offset)


class ClockFile:
    """The writer's side of :class:`FileClock`: a test moves every host process's clock through it."""

    def __init__(self, path: Path, start: datetime | None = None) -> None:
        self.path = Path(path)
        self._offset = 0.0
        if start is not None:
            self.set(start)
        else:
            self._write()

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def set(self, when: datetime) -> None:
        self._offset = (when - datetime.now(UTC)).total_seconds()
        self._write()

    def advance(self, delta: timedelta | float) -> None:
        self._offset += delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self._write()

    def _write(self) -> None:
        # Written whole and renamed, so a reader never sees half a file.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"offset_seconds": self._offset, "written_ns": time.time_ns()}), encoding="utf-8")
        tmp.replace(self.path)
