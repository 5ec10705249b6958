"""Timer triggers as Azure/azure-webjobs-sdk-extensions ``Timers/Listener/TimerListener.cs`` runs them.

One :class:`TimerListener` per timer function, started on an instance only while that instance
holds the function's listener lock (``singleton.ListenerLock``). What it copies:

- ``StartAsync``: with the schedule monitor on, read the status and ``CheckPastDueAsync``; past due
  means one immediate invocation with ``IsPastDue`` (however many occurrences were missed: the
  status keeps a single ``Next``); else ``runOnStartup`` means one immediate invocation; else wait
  for ``ScheduleStatus.Next``. Without a stored status the listener starts from
  ``{Last: default, Next: next occurrence after now, LastUpdated: default}``.
- ``InvokeJobFunction``: the function gets ``TimerInfo(schedule, status, isPastDue)`` (status only
  when the monitor is on). After the invocation, whatever its outcome, the next occurrence is
  computed from the invocation time (moved forward to the scheduled ``Next`` when the timer fired
  early), not from when the run ended: a run that overruns its interval is followed by one
  immediate invocation (``GetNextTimerInterval`` turns a negative interval into one tick), never by
  a pile of them. The new status is written through the monitor (best effort).
- ``StopAsync``: no new invocation starts; a running one is waited for.

Time comes from the stand-in's clock (``clock.HostClock``), so tests move it; the real host uses the
machine's clock in ``WEBSITE_TIME_ZONE`` (UTC by default: the stand-in is UTC only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import HostClock
from .metadata import FunctionSpec
from .ncrontab import CronSchedule
from .schedule_monitor import NEVER, ScheduleStatus, StorageScheduleMonitor, format_dotnet_date, next_or_max

__all__ = ["TimerFiring", "TimerListener", "timer_request"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimerFiring:
    """What one timer invocation is given: TimerInfo's parts and the trigger details the host logs."""

    past_due: bool
    schedule_status: ScheduleStatus | None  # None when the monitor is off (TimerInfo.ScheduleStatus null)
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def timer_request(firing: TimerFiring) -> Any:
    """The ``func.TimerRequest`` the Python worker builds from the host's TimerInfo JSON.

    TimerInfo serializes as ``{"Schedule": {"AdjustForDST": true}, "ScheduleStatus": {...} | null,
    "IsPastDue": bool}``; azure.functions.timer.TimerRequestConverter reads those three keys.
    """
    from azure.functions.timer import TimerRequest

    status = None if firing.schedule_status is None else firing.schedule_status.to_json()
    return TimerRequest(past_due=firing.past_due, schedule_status=status, schedule={"AdjustForDST": True})


Fire = Callable[[FunctionSpec, TimerFiring], object]


class TimerListener:
    def __init__(
        self,
        spec: FunctionSpec,
        schedule: CronSchedule,
        *,
        timer_name: str,
        clock: HostClock,
        monitor: StorageScheduleMonitor | None,
        fire: Fire,
    ) -> None:
        self.spec = spec
        self.schedule = schedule
        self.timer_name = timer_name
        self._clock = clock
        self._monitor = monitor
        self._fire = fire
        self._stop = threading.Event()
        self._dead = False
        self._thread: threading.Thread | None = None
        self.status: ScheduleStatus | None = None
        # Set once StartAsync's work is done: the status is read and the first wait (or startup run) is decided.
        self.started = threading.Event()

    @property
    def uses_monitor(self) -> bool:
        return self._monitor is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"funchost-timer-{self.spec.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """StopAsync: no new invocation; wait for the running one (up to ``timeout``)."""
        self._stop.set()
        self._clock.wake()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def kill(self) -> None:
        """The instance died: nothing more is written, a running invocation's end is not recorded."""
        self._dead = True
        self._stop.set()
        self._clock.wake()

    # -- the listener's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            startup = self._start_state()
        except Exception:
            logger.exception("%s: the timer listener could not start (schedule status unreadable)", self.spec.name)
            return
        self.started.set()
        if startup is not None and not self._stop.is_set():
            self._invoke(*startup)
        while not self._stop.is_set():
            assert self.status is not None
            if not self._clock.wait_until(self.status.next, self._stop):
                return
            self._invoke(self._clock.now(), past_due=False, run_on_startup=False)

    def _start_state(self) -> tuple[datetime, bool, bool] | None:
        """StartAsync: the initial status, and the startup invocation due (time, past_due, run_on_startup)."""
        now = self._clock.now()
        past_due = False
        if self._monitor is not None:
            stored = self._monitor.get_safe_status(self.timer_name)
            logger.debug("Function '%s' initial status: %s", self.spec.name, stored and stored.to_json())
            lateness, checked = self._monitor.check_past_due(self.timer_name, now, self.schedule, stored)
            past_due = lateness.total_seconds() > 0
            # With a stored status the listener keeps the (possibly corrected) stored one; without,
            # it starts from Last/LastUpdated unset, as TimerListener does.
            self.status = checked if stored is not None else None
        if self.status is None:
            self.status = ScheduleStatus(last=NEVER, next=self._next(now), last_updated=NEVER)
        logger.info("The next 5 occurrences of the '%s' schedule (Cron: '%s') will be: %s", self.spec.name,
                    self.schedule.expression, ", ".join(self._upcoming(now, 5)))
        if past_due:
            logger.info("Function '%s' is past due on startup. Executing now.", self.spec.name)
            return now, True, False
        if self.spec.trigger.get("runOnStartup"):
            logger.info("Function '%s' is configured to run on startup. Executing now.", self.spec.name)
            return now, False, True
        return None

    def _invoke(self, invocation_time: datetime, past_due: bool, run_on_startup: bool) -> None:
        assert self.status is not None
        details: dict[str, Any] = {"past_due": past_due}
        if past_due:
            details["unscheduled_reason"] = "IsPastDue"
            details["original_schedule"] = format_dotnet_date(self.status.next)
        elif run_on_startup:
            details["unscheduled_reason"] = "RunOnStartup"
        status_given = self.status if self._monitor is not None else None
        if status_given is not None:
            details["schedule_status"] = status_given.to_json()
        firing = TimerFiring(past_due=past_due, schedule_status=status_given,
                             reason=f"Timer fired at {invocation_time.isoformat()}", details=details)
        try:
            self._fire(self.spec, firing)
        except Exception:  # the host keeps the schedule whatever the invocation did
            logger.exception("Error occurred during scheduled invocation for '%s'.", self.spec.name)
        if self._dead:
            return
        adjusted = invocation_time
        if not past_due and not run_on_startup and self.status.next > invocation_time:
            adjusted = self.status.next  # fired a little early: do not schedule the same occurrence twice
        self.status = ScheduleStatus(last=adjusted, next=self._next(adjusted), last_updated=adjusted)
        if self._monitor is not None:
            self._monitor.update_status(self.timer_name, self.status)

    def _next(self, after: datetime) -> datetime:
        return next_or_max(self.schedule, after)

    def _upcoming(self, now: datetime, count: int) -> list[str]:
        out, moment = [], now
        for _ in range(count):
            moment = self._next(moment)
            out.append(moment.isoformat())
        return out
