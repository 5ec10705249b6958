"""Starting jobs: write the row first, log it, then send the message that starts it (one place for all kinds).

Rows are written before any message is sent, so a message always finds its job; a job whose ID
exists already (a re-fired timer, a double-clicked backup) is not created again, and its existing
row is what the caller gets back. Starts of many jobs go out as fan-out messages of at most
:data:`~dr_core.jobs.messages.FANOUT_SIZE` jobs, paced per subscription to ARM's write bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dr_core.ports import JobConflictError

from .events import log_transition
from .messages import FANOUT_SIZE, WorkMessage

if TYPE_CHECKING:
    from dr_core.ports import JobStore, WorkQueue

    from .job import Job

__all__ = ["ARM_WRITES", "ARM_WRITES_PER_SECOND", "ARM_WRITE_BURST", "JobLauncher", "Pace", "paced_fanouts"]

# ARM's write bucket per subscription and principal (Azure Resource Manager request limits and
# throttling, 2024 token bucket): 200 requests at once, then 10 per second. Starts are paced to it,
# so a fleet is accepted at the rate ARM takes writes instead of meeting a wall of 429s.
ARM_WRITE_BURST = 200
ARM_WRITES_PER_SECOND = 10


@dataclass(frozen=True)
class Pace:
    """How fast job starts go out per subscription: ``burst`` at once, then ``per_second``."""

    burst: int
    per_second: float


ARM_WRITES = Pace(ARM_WRITE_BURST, ARM_WRITES_PER_SECOND)


def paced_fanouts(jobs: Sequence[Job], pace: Pace = ARM_WRITES) -> list[tuple[WorkMessage, int]]:
    """Fan-out messages of at most 32 jobs, each visible when ARM's bucket has room for the first request of each.

    Per subscription, the first ``pace.burst`` starts go at once, the rest at ``pace.per_second``
    (backups: ARM's write bucket, one POST each; snapshots: the reads they may spend). A 429 that
    still happens (others share the bucket) waits on the queue for ARM's Retry-After.
    """
    by_subscription: dict[str, list[str]] = {}
    for job in jobs:
        by_subscription.setdefault(job.resource_id.subscription_id, []).append(job.job_id)
    messages: list[tuple[WorkMessage, int]] = []
    for ids in by_subscription.values():
        for first in range(0, len(ids), FANOUT_SIZE):
            chunk = ids[first:first + FANOUT_SIZE]
            over = first + len(chunk) - pace.burst
            messages.append((WorkMessage("fanout", jobs=tuple(chunk)), max(0, math.ceil(over / pace.per_second))))
    return messages


class JobLauncher:
    def __init__(self, *, jobs: JobStore, queue: WorkQueue) -> None:
        self._jobs = jobs
        self._queue = queue

    def launch(self, job: Job) -> tuple[Job, bool]:
        """Create ``job``, log it and, unless it has ended already (a refused restore), start it.

        Returns ``(job, True)``, or ``(the existing job, False)`` when its ID exists.
        """
        try:
            self._jobs.create(job)
        except JobConflictError:
            existing = self._jobs.get(job.job_id)
            return (existing if existing is not None else job), False
        log_transition(job, now=job.updated_at)
        if not job.state.terminal:
            self._queue.send([(WorkMessage.resume(job), 0)])
        return job, True

    def launch_many(self, jobs: Sequence[Job], *, pace: Pace = ARM_WRITES) -> list[Job]:
        """Create the jobs that don't exist yet (in transactions), log each, then start them paced; the new ones."""
        created_ids = {job.job_id for job in self._jobs.create_many(jobs)}
        created = [job for job in jobs if job.job_id in created_ids]
        for job in created:
            log_transition(job, now=job.updated_at)
        self._queue.send(paced_fanouts(created, pace))
        return created
