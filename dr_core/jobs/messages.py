"""The work messages: "work on job X" (plus a poll sequence), never the job's state itself.

``{"v": 1, "op": "start" | "poll" | "fanout", "job": id, "seq": n, "jobs": [ids]}``

``fanout`` carries many job IDs so that the timer sends a few messages for a thousand jobs;
the worker that receives it enqueues one ``start`` per job. Which message resumes a job follows
from the job alone (:meth:`WorkMessage.resume`): the worker after each step, the watchdog for a
stalled job and the CLI taking a job over all ask it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from dr_core.kernel.errors import DrError
from dr_core.kernel.phases import JobState

from .ids import parse_job_id

if TYPE_CHECKING:
    from .job import Job

__all__ = ["FANOUT_SIZE", "InvalidMessageError", "WorkMessage"]

FANOUT_SIZE = 32
_MAX_MESSAGE_CHARS = 48_000  # queue messages are at most 64 KiB once base64-encoded

Op = Literal["start", "poll", "fanout"]


class InvalidMessageError(DrError):
    """A message apim-dr did not write. Raised so the host retries it and then parks it in the poison queue."""

    code = "InvalidMessage"


@dataclass(frozen=True)
class WorkMessage:
    op: Op
    job: str = ""
    seq: int = 0
    jobs: tuple[str, ...] = field(default=())

    @classmethod
    def resume(cls, job: Job) -> WorkMessage:
        """The message that moves ``job`` on from where its row says it stands: a poll of the running
        operation (with the row's sequence number, so an older poll is recognised as stale), else a start."""
        if job.state is JobState.RUNNING:
            return cls("poll", job=job.job_id, seq=job.poll_seq)
        return cls("start", job=job.job_id)

    def encode(self) -> str:
        body: dict[str, object] = {"v": 1, "op": self.op}
        if self.op == "fanout":
            body["jobs"] = list(self.jobs)
        else:
            body["job"] = self.job
            if self.op == "poll":
                body["seq"] = self.seq
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> WorkMessage:
        if not isinstance(text, str) or len(text) > _MAX_MESSAGE_CHARS:
            raise InvalidMessageError("message is not text or too long")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise InvalidMessageError(f"message is not JSON: {str(e)[:120]}") from e
        if not isinstance(data, dict) or data.get("v") != 1:
            raise InvalidMessageError("message is not an apim-dr v1 work message")
        op = data.get("op")
        if op == "fanout":
            jobs = data.get("jobs")
            if not isinstance(jobs, list) or not jobs or len(jobs) > FANOUT_SIZE * 4:
                raise InvalidMessageError("fanout message needs a non-empty list 'jobs'")
            for job_id in jobs:
                _check_job_id(job_id)
            return cls("fanout", jobs=tuple(jobs))
        if op not in ("start", "poll"):
            raise InvalidMessageError(f"unknown op {str(op)[:20]!r}")
        job_id = data.get("job")
        _check_job_id(job_id)
        seq = data.get("seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10**9:
            raise InvalidMessageError("seq must be a non-negative integer")
        return cls(op, job=str(job_id), seq=seq)


def _check_job_id(job_id: object) -> None:
    try:
        parse_job_id(job_id)
    except ValueError as e:
        raise InvalidMessageError(f"bad job ID: {e}") from e
