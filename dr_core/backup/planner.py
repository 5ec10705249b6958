"""Planning: turn a timer firing (or an on-demand request) into job rows and queue messages.

The timer only plans. One job per protected instance per schedule slot; the job ID is
derived from the instance and the slot, so a second firing for the same slot creates
nothing new. Rows are written (in 100-row transactions) before any message is sent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dr_core.azure.tables import JobConflictError
from dr_core.catalog.tags import backup_blob_name
from dr_core.jobs.job import Job, JobKind, JobState, make_job_id
from dr_core.jobs.messages import FANOUT_SIZE, WorkMessage
from dr_core.jobs.notify import log_transition
from dr_core.kernel.clock import iso

if TYPE_CHECKING:
    from dr_core.azure.tables import JobStore
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.messages import WorkQueue
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings

__all__ = ["BackupPlanner", "PlanReport", "new_backup_job", "paced_fanouts"]

logger = logging.getLogger(__name__)

# A timer may fire a moment before its slot; such a firing still belongs to that slot.
_EARLY_FIRING_TOLERANCE = timedelta(seconds=2)
# ARM's write bucket per subscription and principal (Azure Resource Manager request limits and
# throttling, 2024 token bucket): 200 requests at once, then 10 per second. Starts are paced to it,
# so a fleet is accepted at the rate ARM takes writes instead of meeting a wall of 429s.
ARM_WRITE_BURST = 200
ARM_WRITES_PER_SECOND = 10
# The watchdog re-sends work for a job whose next step is this late.
_STALL_GRACE = timedelta(minutes=2)
_WATCHDOG_DAYS = 2


@dataclass
class PlanReport:
    slot: datetime
    planned: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def new_backup_job(settings: Settings, instance: ProtectedInstance, slot: datetime, *, trigger: str,
                   now: datetime) -> Job:
    slot = slot.astimezone(UTC).replace(microsecond=0)
    return Job(
        job_id=make_job_id(JobKind.BACKUP, instance.resource_id, slot),
        kind=JobKind.BACKUP,
        instance=str(instance.resource_id),
        service_name=instance.name,
        state=JobState.PLANNED,
        trigger=trigger,
        slot=slot,
        created_at=now,
        updated_at=now,
        deadline=now + timedelta(minutes=settings.backup_timeout_minutes),
        storage_account=settings.backup_account,
        container=instance.container,
        blob_name=backup_blob_name(instance.name, slot),
        access_type=instance.access_type.value,
        client_id=instance.client_id,
        next_action_at=now,
    )


def paced_fanouts(jobs: list[Job]) -> list[tuple[WorkMessage, int]]:
    """Fan-out messages of at most 32 jobs, each visible when ARM's write bucket has room for its POSTs.

    Per subscription, the first :data:`ARM_WRITE_BURST` starts go at once, the rest at
    :data:`ARM_WRITES_PER_SECOND`. A 429 that still happens (other writers share the bucket)
    waits on the queue for ARM's Retry-After.
    """
    by_subscription: dict[str, list[str]] = {}
    for job in jobs:
        by_subscription.setdefault(job.resource_id.subscription_id, []).append(job.job_id)
    messages: list[tuple[WorkMessage, int]] = []
    for ids in by_subscription.values():
        for first in range(0, len(ids), FANOUT_SIZE):
            chunk = ids[first:first + FANOUT_SIZE]
            over = first + len(chunk) - ARM_WRITE_BURST
            messages.append((WorkMessage("fanout", jobs=tuple(chunk)), max(0, math.ceil(over / ARM_WRITES_PER_SECOND))))
    return messages


class BackupPlanner:
    """Creates backup jobs (scheduled and on demand) and re-sends work for stalled ones."""

    def __init__(self, *, settings: Settings, store: JobStore, queue: WorkQueue, resolver: InstanceResolver,
                 clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
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

        jobs = [new_backup_job(self._settings, inst, slot, trigger="schedule", now=now)
                for inst in inventory.instances]
        created = self._store.create_many(jobs)
        created_ids = {j.job_id for j in created}
        report.planned = [j.job_id for j in jobs if j.job_id in created_ids]
        report.existing = [j.job_id for j in jobs if j.job_id not in created_ids]
        for job in created:
            log_transition(job, now=now)
        self._queue.send(paced_fanouts([j for j in jobs if j.job_id in created_ids]))
        report.seconds = time.perf_counter() - started
        logger.info("planned %d backup jobs for slot %s (%d already existed, %d problems) in %.3f s",
                    len(report.planned), iso(slot), len(report.existing), len(report.problems), report.seconds)
        return report

    def request_backup(self, reference: object, *, trigger: str = "on-demand") -> tuple[Job, bool]:
        """An on-demand backup of one protected instance. Returns ``(job, created)``.

        Two requests in the same second map to the same job (and the same blob name), so a
        double click starts one backup.

        :raises InvalidRequestError: malformed reference. :raises UnknownInstanceError: not protected.
        """
        instance = self._resolver.protected(reference)
        now = self._clock.now().replace(microsecond=0)
        job = new_backup_job(self._settings, instance, now, trigger=trigger, now=now)
        try:
            self._store.create(job)
        except JobConflictError:
            existing = self._store.get(job.job_id)
            assert existing is not None
            return existing, False
        log_transition(job, now=now)
        self._queue.send([(WorkMessage("start", job=job.job_id), 0)])
        return job, True

    def requeue_stalled(self, *, days: int = _WATCHDOG_DAYS) -> list[str]:
        """The watchdog: re-send work for unfinished jobs whose next step is overdue.

        Covers a message lost between a row update and its enqueue, and jobs past their
        deadline (the worker turns those into ``TimedOut`` and announces them).
        """
        now = self._clock.now()
        requeued: list[tuple[WorkMessage, int]] = []
        for job in self._store.recent_jobs([JobKind.BACKUP, JobKind.RESTORE], days=days, now=now):
            if job.state.terminal:
                continue
            due = job.next_action_at or job.updated_at
            if not (now - due > _STALL_GRACE or job.past_deadline(now)):
                continue
            if job.state is JobState.RUNNING:
                requeued.append((WorkMessage("poll", job=job.job_id, seq=job.poll_seq), 0))
            else:
                requeued.append((WorkMessage("start", job=job.job_id), 0))
        self._queue.send(requeued)
        if requeued:
            logger.warning("watchdog re-sent work for %d stalled jobs: %s", len(requeued),
                           ", ".join(m.job for m, _ in requeued[:20]))
        return [m.job for m, _ in requeued]
