"""Planning backups: turn a timer firing (or an on-demand request) into job rows and queue messages.

The timer only plans. One job per protected instance per schedule slot; the job ID is
derived from the instance and the slot, so a second firing for the same slot creates
nothing new. Rows are written (in 100-row transactions) before any message is sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.clock import iso

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.launcher import JobLauncher
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings

__all__ = ["BackupPlanner", "PlanReport"]

logger = logging.getLogger(__name__)

# A timer may fire a moment before its slot; such a firing still belongs to that slot.
_EARLY_FIRING_TOLERANCE = timedelta(seconds=2)


@dataclass
class PlanReport:
    slot: datetime
    planned: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class BackupPlanner:
    """Creates backup jobs: scheduled (every protected instance, once per slot) and on demand."""

    def __init__(self, *, settings: Settings, launcher: JobLauncher, resolver: InstanceResolver,
                 clock: Clock) -> None:
        self._settings = settings
        self._launcher = launcher
        self._resolver = resolver
        self._clock = clock

    def plan_scheduled(self, *, past_due: bool = False) -> PlanReport:
        """Write one ``Planned`` job per protected instance for the current slot, then enqueue them."""
        started = time.perf_counter()
        now = self._clock.now()
        slot = self._settings.schedule.latest_at_or_before(now + _EARLY_FIRING_TOLERANCE)
        report = PlanReport(slot=slot)
        if past_due:
            logger.warning("backup timer is past due; planning the missed slot %s", iso(slot))

        inventory = self._resolver.inventory()
        report.problems.extend(inventory.problems)
        for problem in inventory.problems:
            logger.error("instance skipped: %s", problem)

        jobs = [Job.new_backup(self._settings, inst, slot, trigger=Trigger.SCHEDULE, now=now)
                for inst in inventory.instances]
        created_ids = {j.job_id for j in self._launcher.launch_many(jobs)}
        report.planned = [j.job_id for j in jobs if j.job_id in created_ids]
        report.existing = [j.job_id for j in jobs if j.job_id not in created_ids]
        report.seconds = time.perf_counter() - started
        logger.info("planned %d backup jobs for slot %s (%d already existed, %d problems) in %.3f s",
                    len(report.planned), iso(slot), len(report.existing), len(report.problems), report.seconds)
        return report

    def request_backup(self, reference: object, *, trigger: Trigger = Trigger.ON_DEMAND) -> tuple[Job, bool]:
        """An on-demand backup of one protected instance. Returns ``(job, created)``.

        Two requests in the same second map to the same job (and the same blob name), so a
        double click starts one backup.

        :raises InvalidRequestError: malformed reference. :raises UnknownInstanceError: not protected.
        """
        instance = self._resolver.protected(reference)
        now = self._clock.now().replace(microsecond=0)
        return self._launcher.launch(Job.new_backup(self._settings, instance, now, trigger=trigger, now=now))
