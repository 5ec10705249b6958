"""Looking up one job by its ID, for the faces: ``GET /api/operations/{id}`` and ``apim-dr status <id>``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dr_core.kernel.errors import InvalidRequestError, NotFoundError

from .ids import parse_job_id

if TYPE_CHECKING:
    from dr_core.ports import JobStore

    from .job import Job

__all__ = ["Operations", "UnknownJobError"]


class UnknownJobError(NotFoundError):
    """A well-formed job ID that names no job."""


class Operations:
    def __init__(self, *, jobs: JobStore) -> None:
        self._jobs = jobs

    def get(self, job_id: object) -> Job:
        """The job ``job_id`` names.

        :raises InvalidRequestError: not a job ID apim-dr makes (it may come from a URL or a command line).
        :raises UnknownJobError: no such job.
        """
        try:
            parse_job_id(job_id)
        except ValueError as e:
            raise InvalidRequestError(str(e), fields={"id": "not an apim-dr job ID"}) from e
        assert isinstance(job_id, str)
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id}")
        return job
