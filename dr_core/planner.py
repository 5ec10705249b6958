"""Planning: turn a timer firing (or an HTTP request) into job rows and queue messages.

The timer only plans. One job per protected instance per schedule slot; the job ID is
derived from the instance and the slot, so a second firing for the same slot creates
nothing new. Rows are written (in 100-row transactions) before any message is sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .catalog import backup_blob_name
from .jobs import Job, JobConflictError, JobKind, JobState, from_iso, iso, make_job_id, now_utc
from .messages import FANOUT_SIZE, WorkMessage, send_messages
from .notify import log_transition

if TYPE_CHECKING:
    from .context import DrContext
    from .settings import ProtectedInstance

__all__ = ["PlanReport", "new_backup_job", "plan_scheduled_backups", "request_backup", "requeue_stalled_jobs"]

logger = logging.getLogger(__name__)

# A timer may fire a moment before its slot; such a firing still belongs to that slot.
_EARLY_FIRING_TOLERANCE = timedelta(seconds=2)
# The watchdog re-sends work for a job whose next step is this late.
_STALL_GRACE = timedelta(minutes=2)


@dataclass
class PlanReport:
    slot: datetime
    planned: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def new_backup_job(ctx: DrContext, instance: ProtectedInstance, slot: datetime, *, trigger: str,
                   now: datetime) -> Job:
    settings = ctx.settings
    slot = slot.astimezone(UTC).replace(microsecond=0)
    return Job(
        job_id=make_job_id(JobKind.BACKUP, instance.resource_id, slot),
        kind=JobKind.BACKUP,
        instance=str(instance.resource_id),
        service_name=instance.name,
        state=JobState.PLANNED,
        trigger=trigger,
        slot=iso(slot) or "",
        created_at=iso(now) or "",
        updated_at=iso(now) or "",
        deadline=iso(now + timedelta(minutes=settings.backup_timeout_minutes)) or "",
        storage_account=settings.backup_account,
        container=instance.container,
        blob_name=backup_blob_name(instance.name, slot),
        access_type=instance.access_type.value,
        client_id=instance.client_id,
        next_action_at=iso(now),
    )


def plan_scheduled_backups(ctx: DrContext, *, now: datetime | None = None, past_due: bool = False) -> PlanReport:
    """Write one ``Planned`` job per protected instance for the current slot, then enqueue them."""
    started = time.perf_counter()
    now = now or now_utc()
    slot = ctx.settings.schedule.latest_at_or_before(now + _EARLY_FIRING_TOLERANCE)
    report = PlanReport(slot=slot)
    if past_due:
        logger.warning("backup timer is past due; planning the missed slot %s", iso(slot))

    from .inventory import protected_instances

    inventory = protected_instances(
        ctx.settings, operations=ctx.operations if ctx.settings.discovery_subscriptions else None)
    report.problems.extend(inventory.problems)
    for problem in inventory.problems:
        logger.error("instance skipped: %s", problem)

    jobs = [new_backup_job(ctx, inst, slot, trigger="schedule", now=now) for inst in inventory.instances]
    created = ctx.store.create_many(jobs)
    created_ids = {j.job_id for j in created}
    report.planned = [j.job_id for j in jobs if j.job_id in created_ids]
    report.existing = [j.job_id for j in jobs if j.job_id not in created_ids]
    for job in created:
        log_transition(job)
    ids = report.planned
    messages = [(WorkMessage("fanout", jobs=tuple(ids[i:i + FANOUT_SIZE])), 0)
                for i in range(0, len(ids), FANOUT_SIZE)]
    send_messages(ctx.clients.work_queue(), messages)
    report.seconds = time.perf_counter() - started
    logger.info("planned %d backup jobs for slot %s (%d already existed, %d problems) in %.3f s",
                len(report.planned), iso(slot), len(report.existing), len(report.problems), report.seconds)
    return report


def request_backup(ctx: DrContext, reference: object, *, trigger: str = "on-demand",
                   now: datetime | None = None) -> tuple[Job, bool]:
    """An on-demand backup of one protected instance. Returns ``(job, created)``.

    Two requests in the same second map to the same job (and the same blob name), so a
    double click starts one backup.

    :raises ValueError: malformed reference. :raises UnknownInstanceError: not protected.
    """
    from .inventory import protected_instances, resolve_instance

    now = (now or now_utc()).replace(microsecond=0)
    configured = list(ctx.settings.instances)
    try:
        instance = resolve_instance(reference, configured)
    except LookupError:
        if not ctx.settings.discovery_subscriptions:
            raise
        inventory = protected_instances(ctx.settings, operations=ctx.operations)
        instance = resolve_instance(reference, inventory.instances)
    job = new_backup_job(ctx, instance, now, trigger=trigger, now=now)
    try:
        ctx.store.create(job)
    except JobConflictError:
        existing = ctx.store.get(job.job_id)
        assert existing is not None
        return existing, False
    log_transition(job)
    send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=job.job_id), 0)])
    return job, True


def requeue_stalled_jobs(ctx: DrContext, *, now: datetime | None = None, days: int = 2) -> list[str]:
    """The watchdog: re-send work for unfinished jobs whose next step is overdue.

    Covers a message lost between a row update and its enqueue, and jobs past their
    deadline (the worker turns those into ``TimedOut`` and announces them).
    """
    now = now or now_utc()
    requeued: list[tuple[WorkMessage, int]] = []
    for job in ctx.store.recent_jobs([JobKind.BACKUP, JobKind.RESTORE], days=days, now=now):
        if job.state.terminal:
            continue
        due = from_iso(job.next_action_at) or from_iso(job.updated_at) or now
        deadline = from_iso(job.deadline)
        overdue = now - due > _STALL_GRACE
        expired = deadline is not None and now >= deadline
        if not (overdue or expired):
            continue
        if job.state is JobState.RUNNING:
            requeued.append((WorkMessage("poll", job=job.job_id, seq=job.poll_seq), 0))
        else:
            requeued.append((WorkMessage("start", job=job.job_id), 0))
    send_messages(ctx.clients.work_queue(), requeued)
    if requeued:
        logger.warning("watchdog re-sent work for %d stalled jobs: %s", len(requeued),
                       ", ".join(m.job for m, _ in requeued[:20]))
    return [m.job for m, _ in requeued]
