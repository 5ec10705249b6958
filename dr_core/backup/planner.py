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
from dr_core.jobs.launcher import Pace
from dr_core.kernel.clock import iso
from dr_core.kernel.settings import Recovery

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.launcher import JobLauncher
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings

__all__ = ["BackupPlanner", "PlanReport"]

logger = logging.getLogger(__name__)

# A timer may fire a moment before its slot; such a firing still belongs to that slot.
_EARLY_FIRING_TOLERANCE = timedelta(seconds=2)
_SNAPSHOT_START_BURST = 100  # snapshot starts at once per subscription; then at the snapshot read rate


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

        backups = [self._backup(inst, slot, Trigger.SCHEDULE, now) for inst in inventory.instances
                   if inst.posture.recovery.native_backups]
        snapshots = [Job.new_snapshot(self._settings, inst, slot, trigger=Trigger.SCHEDULE, now=now)
                     for inst in inventory.instances if inst.posture.recovery.snapshots]
        jobs = backups + snapshots
        created_ids = {j.job_id for j in self._launcher.launch_many(backups)}
        # A snapshot's first step is one read; its later reads are taken from the shared read budget.
        created_ids |= {j.job_id for j in self._launcher.launch_many(
            snapshots, pace=Pace(_SNAPSHOT_START_BURST, self._settings.snapshot_reads_per_second))}
        report.planned = [j.job_id for j in jobs if j.job_id in created_ids]
        report.existing = [j.job_id for j in jobs if j.job_id not in created_ids]
        report.seconds = time.perf_counter() - started
        logger.info("planned %d jobs (%d backups, %d snapshots) for slot %s (%d already existed, %d problems) in "
                    "%.3f s", len(report.planned), len(backups), len(snapshots), iso(slot), len(report.existing),
                    len(report.problems), report.seconds)
        return report

    def _backup(self, instance: ProtectedInstance, slot: datetime, trigger: Trigger, now: datetime) -> Job:
        job = Job.new_backup(self._settings, instance, slot, trigger=trigger, now=now)
        job.tier_may_lack_backup = instance.posture.recovery is Recovery.AUTO
        return job

    def request_backup(self, reference: object, *, trigger: Trigger = Trigger.ON_DEMAND) -> tuple[Job, bool]:
        """An on-demand backup of one protected instance. Returns ``(job, created)``.

        Two requests in the same second map to the same job (and the same blob name), so a
        double click starts one backup.

        :raises InvalidRequestError: malformed reference. :raises UnknownInstanceError: not protected.
        """
        instance = self._resolver.protected(reference)
        now = self._clock.now().replace(microsecond=0)
        return self._launcher.launch(Job.new_backup(self._settings, instance, now, trigger=trigger, now=now))
