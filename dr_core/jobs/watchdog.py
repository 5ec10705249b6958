"""The watchdog: re-send work for unfinished jobs whose next step is overdue.

It covers a message lost between a row update and its enqueue, and jobs past their deadline (the
worker turns those into ``TimedOut`` and announces them). Duplicates are harmless: a stale message
finds its job already past that step.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from .ids import JobKind
from .messages import WorkMessage

if TYPE_CHECKING:
    from dr_core.kernel.clock import Clock
    from dr_core.ports import JobStore, WorkQueue

__all__ = ["Watchdog"]

logger = logging.getLogger(__name__)

# The watchdog re-sends work for a job whose next step is this late.
STALL_GRACE = timedelta(minutes=2)
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
                continue
            due = job.next_action_at or job.updated_at
            if now - due > STALL_GRACE or job.past_deadline(now):
                requeued.append((WorkMessage.resume(job), 0))
        self._queue.send(requeued)
        if requeued:
            logger.warning("watchdog re-sent work for %d stalled jobs: %s", len(requeued),
                           ", ".join(m.job for m, _ in requeued[:20]))
        return [m.job for m, _ in requeued]
