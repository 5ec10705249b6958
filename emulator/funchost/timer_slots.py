"""A timer function on one host instance: its listener lock, and its timer listener while it holds it.

``SingletonListener`` wraps ``TimerListener`` on the real host: the timer runs on whichever
instance holds ``locks/{hostId}/Host.Functions.{name}.Listener``, and starts afresh (reading the
schedule status again, so a missed occurrence fires past due) on the instance that takes the lock
over. See ``singleton`` and ``timers`` for the sources.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import HostClock
from .hoststorage import function_id
from .metadata import FunctionSpec
from .ncrontab import CronSchedule
from .schedule_monitor import StorageScheduleMonitor, monitor_applies
from .singleton import ListenerLock, SingletonOptions, listener_lock_blob
from .timers import Fire, TimerListener

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["SingletonTimer"]

logger = logging.getLogger(__name__)


class SingletonTimer:
    def __init__(
        self,
        spec: FunctionSpec,
        schedule: CronSchedule,
        *,
        container: ContainerClient,
        host_id: str,
        options: SingletonOptions,
        clock: HostClock,
        fire: Fire,
        stop_grace: float,
        on_lock: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.spec = spec
        self.schedule = schedule
        self.timer_name = function_id(spec.name)
        self._clock = clock
        self._fire = fire
        self._stop_grace = stop_grace
        self._on_lock = on_lock
        use_monitor = spec.trigger.get("useMonitor")
        # TimerTriggerAttribute.UseMonitor defaults to true; TimerSchedule.Create turns it off for
        # schedules that fire more than once a minute.
        self.uses_monitor = (use_monitor is None or bool(use_monitor)) and monitor_applies(schedule, clock.now())
        self._monitor = StorageScheduleMonitor(container, host_id) if self.uses_monitor else None
        self._listener: TimerListener | None = None
        self._listener_lock = threading.Lock()
        self.lock = ListenerLock(
            container, listener_lock_blob(host_id, self.timer_name), options,
            on_acquired=self._start_listener, on_lost=self._stop_listener, name=spec.name,
        )

    @property
    def listening(self) -> bool:
        """Whether this instance runs the timer now: it holds the listener lock and its listener has started."""
        with self._listener_lock:
            listener = self._listener
        return self.lock.held and listener is not None and listener.started.is_set()

    def wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.listening:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def start(self) -> None:
        self.lock.start()

    def stop(self) -> None:
        """SingletonListener.StopAsync: release the lock, then stop the timer (waiting for a running invocation)."""
        self.lock.stop(self._stop_grace, release=True)
        self._stop_listener()

    def kill(self) -> None:
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.kill()
        self.lock.stop(0, release=False)

    def _start_listener(self) -> None:
        listener = TimerListener(self.spec, self.schedule, timer_name=self.timer_name, clock=self._clock,
                                 monitor=self._monitor, fire=self._fire)
        with self._listener_lock:
            self._listener = listener
        logger.info("%s: this instance holds the listener lock and runs the timer", self.spec.name)
        listener.start()
        self._announce(True)

    def _stop_listener(self) -> None:
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop(self._stop_grace)
            self._announce(False)

    def _announce(self, held: bool) -> None:
        if self._on_lock is not None:
            try:
                self._on_lock(self.spec.name, held)
            except Exception:
                logger.exception("timer lock callback failed")
