"""``HostFleet``: N host instances of one app in this process, on one storage account.

What Flex Consumption does when it scales the app out: every instance runs the same code with the
same settings against the same queues and the same ``azure-webjobs-hosts`` container. The fleet
starts them, adds more, stops or kills one, and looks at all of their invocations together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .clock import HostClock, ManualClock
from .host import FunctionsHost
from .invoke import InvocationRecord

__all__ = ["HostFleet"]


class HostFleet:
    """Start ``instances`` hosts of ``project_dir`` sharing ``settings`` and one ``clock``.

    ``host_options`` go to every :class:`FunctionsHost` (``run_timers``, ``http_port``...);
    ``per_instance`` (index -> options) overrides them for one instance, e.g. a different
    ``queue_overrides`` or ``processor_count``. Instance IDs are ``instance-0``, ``instance-1``...
    """

    def __init__(
        self,
        project_dir: Path,
        settings: Mapping[str, str],
        *,
        instances: int = 2,
        clock: HostClock | None = None,
        per_instance: Mapping[int, Mapping[str, Any]] | None = None,
        **host_options: Any,
    ) -> None:
        self.project_dir = project_dir
        self.settings = dict(settings)
        self.clock = clock or ManualClock()
        self._host_options = host_options
        self._per_instance = {int(k): dict(v) for k, v in (per_instance or {}).items()}
        self.hosts: list[FunctionsHost] = []
        self._initial = instances
        self._next_index = 0

    def __enter__(self) -> HostFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> HostFleet:
        try:
            for _ in range(self._initial):
                self.add()
        except BaseException:
            self.stop()
            raise
        return self

    def add(self, **options: Any) -> FunctionsHost:
        """Start one more instance (a scale-out, or the replacement of one that was killed)."""
        index = self._next_index
        self._next_index += 1
        merged = {**self._host_options, **self._per_instance.get(index, {}), **options}
        merged.setdefault("instance_id", f"instance-{index}")
        host = FunctionsHost(self.project_dir, self.settings, clock=self.clock, **merged)
        self.hosts.append(host)
        host.start()
        return host

    def stop(self) -> None:
        for host in reversed(self.hosts):
            if host.running:
                host.stop()

    def kill(self, host: FunctionsHost | int) -> FunctionsHost:
        target = self.hosts[host] if isinstance(host, int) else host
        target.kill()
        return target

    @property
    def running(self) -> list[FunctionsHost]:
        return [h for h in self.hosts if h.running]

    @property
    def invocations(self) -> list[InvocationRecord]:
        """Every instance's invocations, by start time."""
        return sorted((r for h in self.hosts for r in h.invocations), key=lambda r: r.start)

    def timer_holder(self, name: str) -> FunctionsHost | None:
        """The running instance that holds the timer's listener lock, if any."""
        return next((h for h in self.running if h.timer_lock_held(name)), None)

    def wait_timer_holder(self, name: str, timeout: float) -> FunctionsHost:
        deadline = time.monotonic() + timeout
        while True:
            holder = self.timer_holder(name)
            if holder is not None:
                return holder
            if time.monotonic() > deadline:
                raise TimeoutError(f"no running instance holds the listener lock of {name} after {timeout:.0f} s")
            time.sleep(0.05)

    def wait_for(self, predicate: Callable[[InvocationRecord], bool], timeout: float = 30.0,
                 *, count: int = 1) -> list[InvocationRecord]:
        deadline = time.monotonic() + timeout
        while True:
            matching = [r for r in self.invocations if predicate(r)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(matching)} of {count} matching invocation(s) after {timeout:.1f} s")
            time.sleep(0.02)

    def drain(self, timeout: float = 30.0, *, include_delayed: bool = False) -> None:
        deadline = time.monotonic() + timeout
        for host in self.running:
            host.drain(max(0.1, deadline - time.monotonic()), include_delayed=include_delayed)
        # A message one instance released may have been taken by another meanwhile: check all again.
        for host in self.running:
            host.drain(max(0.1, deadline - time.monotonic()), include_delayed=include_delayed)
