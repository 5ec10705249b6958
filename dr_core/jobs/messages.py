"""The work queue and its messages: "work on job X" (plus a poll sequence), never the job's state itself.

``{"v": 1, "op": "start" | "poll" | "fanout", "job": id, "seq": n, "jobs": [ids]}``

``fanout`` carries many job IDs so that the timer sends a few messages for a thousand jobs;
the worker that receives it enqueues one ``start`` per job.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from dr_core.jobs.job import parse_job_id
from dr_core.kernel.errors import DrError

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

__all__ = ["FANOUT_SIZE", "InvalidMessageError", "StorageWorkQueue", "WorkMessage", "WorkQueue", "send_messages"]

logger = logging.getLogger(__name__)

FANOUT_SIZE = 32
_MAX_MESSAGE_CHARS = 48_000  # queue messages are at most 64 KiB once base64-encoded
_SEND_THREADS = 16

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


def send_messages(queue: QueueClient, messages: list[tuple[WorkMessage, int]]) -> None:
    """Send ``(message, visibility delay in seconds)`` pairs, in parallel when there are several.

    Queue storage has no batch send, so parallel requests keep the timer fast.
    """
    if not messages:
        return

    def send(item: tuple[WorkMessage, int]) -> None:
        message, delay = item
        queue.send_message(message.encode(), visibility_timeout=max(0, int(delay)) or None)

    if len(messages) == 1:
        send(messages[0])
        return
    with ThreadPoolExecutor(max_workers=min(_SEND_THREADS, len(messages))) as pool:
        list(pool.map(send, messages))


class WorkQueue(ABC):
    """Where the next step of a job is announced: ``(message, visibility delay in seconds)``."""

    @abstractmethod
    def send(self, messages: Sequence[tuple[WorkMessage, int]]) -> None:
        """Send every message; a message becomes visible after its delay."""


class StorageWorkQueue(WorkQueue):
    """Azure Queue storage: starts and fan-outs on the work queue, polls on the poll queue.

    Two queues (and two functions) so that polls never wait behind a backlog of starts: a
    thousand planned starts must not delay the status of operations that already run.
    """

    def __init__(self, work: QueueClient, polls: QueueClient) -> None:
        self._work = work
        self._polls = polls

    def send(self, messages: Sequence[tuple[WorkMessage, int]]) -> None:
        from dr_core.azure.errors import storage_errors

        polls = [m for m in messages if m[0].op == "poll"]
        others = [m for m in messages if m[0].op != "poll"]
        with storage_errors("the work queues"):
            send_messages(self._polls, polls)
            send_messages(self._work, others)
