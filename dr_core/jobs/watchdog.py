"""The watchdog: re-send work for unfinished jobs whose next step is overdue, and for ended jobs with work left.

It covers a message lost between a row update and its enqueue, and jobs past their deadline (the
worker turns those into ``TimedOut`` and announces them). Duplicates are harmless: a stale message
finds its job already past that step.

Ended jobs get a message too when something is left to do after their end:

- follow-ups still pending (``Job.follow_ups``): the host died after the terminal state was saved,
  before the manifest, the RPO check, the standby sync ... ran; the worker runs them now;
- a backup that ended ``Failed`` or ``TimedOut`` without knowing how its operation ended
  (``Job.unsettled``: its deadline passed while it ran, or ARM refused its polls): the worker checks
  the operation and the blob again (``ArmOperation.settle_late``) for :data:`LATE_CHECK_WINDOW`, and a
  backup found finished after all is labelled and adopted, never left invisible to the catalog.
  The watchdog is the place for it because it already reads every recent job every five minutes;
  the check itself is the job's own (its blob name, its operation URL), done by the worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from .ids import JobKind
from .messages import WorkMessage

if TYPE_CHECKING:
    from datetime import datetime

    from dr_core.kernel.clock import Clock
    from dr_core.ports import JobStore, WorkQueue

    from .job import Job

__all__ = ["LATE_CHECK_WINDOW", "STALL_GRACE", "Watchdog"]

logger = logging.getLogger(__name__)

# The watchdog re-sends work for a job whose next step is this late.
STALL_GRACE = timedelta(minutes=2)
# How long after its end an unsettled backup job is checked again (an operation outlives its job's deadline
# by minutes to hours, not days).
LATE_CHECK_WINDOW = timedelta(hours=6)
_DAYS = 2


class Watchdog:
    def __init__(self, *, jobs: JobStore, queue: WorkQueue, clock: Clock) -> None:
        self._jobs = jobs
        self._queue = queue
        self._clock = clock

    def requeue_stalled(self, *, days: int = _DAYS) -> list[str]:
        """Re-send the resuming message of every unfinished job of the last ``days`` days that is overdue."""
        now = self._clock.now()
        requeued: list[tuple[WorkMessage, int]] = []
        for job in self._jobs.recent_jobs(list(JobKind), days=days, now=now):
            if job.state.terminal:
                if self._left_to_do(job, now):
                    requeued.append((WorkMessage.resume(job), 0))
                continue
            due = job.next_action_at or job.updated_at
            if now - due > STALL_GRACE or job.past_deadline(now):
                requeued.append((WorkMessage.resume(job), 0))
        self._queue.send(requeued)
        if requeued:
            logger.warning("watchdog re-sent work for %d stalled jobs: %s", len(requeued),
                           ", ".join(m.job for m, _ in requeued[:20]))
        return [m.job for m, _ in requeued]

    @staticmethod
    def _left_to_do(job: Job, now: datetime) -> bool:
        """An ended job whose follow-ups are overdue, or a backup whose operation is still to be settled."""
        if job.follow_ups and now - job.updated_at > STALL_GRACE:
            return True
        ended = job.finished_at or job.updated_at
        return job.unsettled and now - ended <= LATE_CHECK_WINDOW
