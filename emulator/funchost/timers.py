"""Timer triggers on their NCRONTAB schedule (UTC, the stand-in's own ``ncrontab``), one thread per function.

Like the host, the next occurrence is computed after an invocation finishes, so a run that
overruns its interval skips the occurrences it missed instead of piling up. ``useMonitor``
(schedule status kept across restarts, which is what makes ``past_due`` true after downtime)
is not implemented; ``FunctionsHost.fire_timer(past_due=True)`` simulates it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from .metadata import FunctionSpec
from .ncrontab import CronSchedule

__all__ = ["TimerSchedule"]

logger = logging.getLogger(__name__)


class TimerSchedule:
    def __init__(
        self, spec: FunctionSpec, schedule: CronSchedule, fire: Callable[[FunctionSpec, bool, str], object]
    ) -> None:
        self.spec = spec
        self.schedule = schedule
        self._fire = fire
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"funchost-timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        if self.spec.trigger.get("runOnStartup"):
            self._fire(self.spec, False, "Timer fired at startup (runOnStartup)")
        while not self._stop.is_set():
            due = self.schedule.next_occurrence(_utc_now())
            if due is None:
                # NCrontab answers DateTime.MaxValue: the host keeps the timer and it never fires.
                logger.warning("%s: schedule %r has no next occurrence; the timer will not fire",
                               self.spec.name, self.schedule.expression)
                self._stop.wait()
                return
            logger.debug("%s: next occurrence %s", self.spec.name, due.isoformat())
            # Event.wait may return a little early; loop until the occurrence has really arrived.
            while not self._stop.is_set():
                remaining = (due - _utc_now()).total_seconds()
                if remaining <= 0:
                    break
                self._stop.wait(remaining)
            if self._stop.is_set():
                return
            self._fire(self.spec, False, f"Timer fired at {due.isoformat()}")


def _utc_now() -> datetime:
    return datetime.now(UTC)
