"""One restore per target at a time: the lock a restore job holds on its target while it runs.

A lock row (:class:`~dr_core.ports.RestoreLocks`) is taken with a conditional write when the
restore job is created and released when the job ends; a lock whose job has ended is taken over,
so a release that never happened (a crash) blocks nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ids import JobKind

if TYPE_CHECKING:
    from dr_core.kernel.ids import ApimResourceId
    from dr_core.ports import JobStore, RestoreLocks

    from .job import Job

__all__ = ["RestoreLock"]

_ATTEMPTS = 3


class RestoreLock:
    def __init__(self, *, jobs: JobStore, locks: RestoreLocks) -> None:
        self._jobs = jobs
        self._locks = locks

    def holder(self, target: ApimResourceId) -> Job | None:
        """The unfinished restore holding the target's lock, if any (an ended holder does not count)."""
        holder = self._locks.lock_holder(target)
        if holder is None:
            return None
        job = self._jobs.get(holder.job_id)
        return job if job is not None and not job.state.terminal else None

    def take(self, target: ApimResourceId, job_id: str) -> bool:
        """Take the lock, or take it over from a job that has ended; False while another restore runs."""
        for _ in range(_ATTEMPTS):
            if self._locks.create_lock(target, job_id):
                return True
            holder = self._locks.lock_holder(target)
            if holder is None:
                continue  # released meanwhile: try to create it again
            job = self._jobs.get(holder.job_id)
            if job is not None and not job.state.terminal:
                return False
            return self._locks.replace_lock(target, job_id, etag=holder.etag)
        return False

    def release(self, job: Job) -> None:
        """Free the target once ``job`` (a restore) has ended; best effort: an ended holder is taken over anyway."""
        if job.kind not in (JobKind.RESTORE, JobKind.CONFIG_RESTORE):
            return
        holder = self._locks.lock_holder(job.resource_id)
        if holder is not None and holder.job_id == job.job_id:
            self._locks.delete_lock(job.resource_id, etag=holder.etag)
