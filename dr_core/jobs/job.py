"""Jobs: one per backup or restore, and the state machine that moves them.

A :class:`Job` changes only through its step methods (:meth:`Job.begin_start`,
:meth:`Job.record_started`, :meth:`Job.poll_again`, :meth:`Job.succeed`, :meth:`Job.fail`,
...). Each sets every field its step touches and returns a :class:`Step`: which message the
job needs next, and when. The caller saves the job (conditionally, see
:mod:`dr_core.azure.tables`) and only then sends that message, so state lives in the row, never in
messages.

Moments are ``datetime`` objects here; they become text only at the storage edge.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.errors import ArmError
from dr_core.kernel.ids import ApimResourceId

__all__ = [
    "InvalidTransitionError",
    "Job",
    "JobKind",
    "JobState",
    "ServiceFacts",
    "Step",
    "make_job_id",
    "parse_job_id",
    "partition_of",
]


class JobKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"


class JobState(StrEnum):
    PLANNED = "Planned"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    REFUSED = "Refused"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def announced_on_end(self) -> bool:
        """States a person must hear about (once)."""
        return self in (JobState.FAILED, JobState.TIMED_OUT)


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED})

# The only moves a job may make. Starting -> Planned is "ARM said not now (409/429), wait".
_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset({JobState.STARTING, JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED}),
    JobState.STARTING: frozenset({JobState.PLANNED, JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED,
                                  JobState.FAILED, JobState.TIMED_OUT}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.TIMED_OUT: frozenset(),
    JobState.REFUSED: frozenset(),
}

_JOB_ID_RE = re.compile(
    r"^(?P<kind>backup|restore)-(?P<slot>\d{8}T\d{6}Z)-(?P<service>[A-Za-z0-9-]{1,50})-(?P<h>[0-9a-f]{8})$"
)
_MAX_JOB_ID = 100


class InvalidTransitionError(ValueError):
    """A state change the state machine does not allow."""


def make_job_id(kind: JobKind, instance: ApimResourceId, slot: datetime, *, unique: bool = False) -> str:
    """The job of ``instance`` in ``slot``.

    By default the same inputs always give the same ID (idempotent planning: a re-fired timer
    or a double-clicked backup finds its job). ``unique`` mixes in a random nonce, for jobs
    that must never meet an earlier one (restores: a refused request must not block the next).
    """
    slot = slot.astimezone(UTC).replace(microsecond=0)
    nonce = f"|{uuid.uuid4().hex}" if unique else ""
    digest = hashlib.sha256(f"{kind.value}|{instance.key}{nonce}".encode()).hexdigest()[:8]
    return f"{kind.value}-{slot:%Y%m%dT%H%M%SZ}-{instance.service_name}-{digest}"


def parse_job_id(job_id: object) -> tuple[JobKind, datetime]:
    """Validate a job ID (it may come from an HTTP path or a queue message) and return its kind and slot.

    :raises ValueError: if it is not a job ID apim-dr makes.
    """
    if not isinstance(job_id, str) or len(job_id) > _MAX_JOB_ID:
        raise ValueError("not a job ID")
    match = _JOB_ID_RE.match(job_id)
    if not match:
        raise ValueError("not a job ID: expected {backup|restore}-{yyyyMMddTHHmmssZ}-{service}-{8 hex}")
    try:
        slot = datetime.strptime(match.group("slot"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise ValueError("not a job ID: its time stamp is not a date") from e
    return JobKind(match.group("kind")), slot


def partition_of(kind: JobKind, slot: datetime) -> str:
    """The table partition of a job: one per kind and UTC day of its slot (derivable from the ID)."""
    return f"{kind.value}-{slot.astimezone(UTC):%Y%m%d}"


@dataclass(frozen=True)
class Step:
    """What a step produced: the message the job needs next (after ``delay`` seconds), once the row is saved.

    ``transition`` says whether the step is worth a structured log line (state changes and
    new attempts are; a poll that found the operation still running is not).
    """

    next_op: Literal["start", "poll"] | None = None
    delay: int = 0
    transition: bool = True


@dataclass(frozen=True)
class ServiceFacts:
    """What a finished backup records about its source: tier, units and region."""

    sku: str | None
    sku_capacity: int | None
    region: str | None


@dataclass
class Job:
    job_id: str
    kind: JobKind
    instance: str
    service_name: str
    state: JobState
    trigger: str
    slot: datetime
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    storage_account: str = ""
    container: str = ""
    blob_name: str = ""
    access_type: str = ""
    client_id: str | None = None
    source_instance: str | None = None
    starting_at: datetime | None = None
    start_attempts: int = 0
    start_uncertain: bool = False
    unanswered_posts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    operation_url: str | None = None
    poll_seq: int = 0
    polls: int = 0
    next_action_at: datetime | None = None
    wait_reason: str | None = None
    blob_size: int | None = None
    sku: str | None = None
    sku_capacity: int | None = None
    region: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    remediation: str | None = None
    announced: bool = False
    etag: str | None = field(default=None, compare=False)

    @property
    def resource_id(self) -> ApimResourceId:
        return ApimResourceId.parse(self.instance)

    @property
    def duration_seconds(self) -> float | None:
        """From ARM accepting the operation to its end (what the operation itself took)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def elapsed_seconds(self, now: datetime) -> float:
        """From the job's creation to its end, or to ``now`` while it runs."""
        end = self.finished_at or now
        return max(0.0, (end - self.created_at).total_seconds())

    def start_lease_end(self, lease: timedelta) -> datetime:
        """Until then, a ``Starting`` job's own worker may still be about to record the ``Location``."""
        return (self.starting_at or self.updated_at) + lease

    def past_deadline(self, now: datetime) -> bool:
        return now >= self.deadline

    # -- steps --------------------------------------------------------------------------------------
    def begin_start(self, now: datetime) -> Step:
        """Planned (or a Starting job whose earlier attempt is known not to have run) -> Starting, before the POST."""
        self._move(JobState.STARTING, now)
        self.starting_at = now
        self.start_attempts += 1
        self.start_uncertain = False
        self.wait_reason = None
        return Step()

    def record_started(self, now: datetime, *, location: str, delay: int) -> Step:
        """ARM accepted the operation: remember where to poll it; the first poll after ``delay``."""
        self._move(JobState.RUNNING, now)
        self.operation_url = location
        self.started_at = now
        self.poll_seq = 1
        self.wait_reason = None
        self.next_action_at = now + timedelta(seconds=delay)
        return Step("poll", delay)

    def retry_start_later(self, now: datetime, *, reason: str, delay: int) -> Step:
        """ARM refused the start and nothing runs (409 ServiceLocked, 429): back to Planned, try again later."""
        self._move(JobState.PLANNED, now)
        self.start_uncertain = False
        return self._schedule(now, "start", reason, delay)

    def await_start_outcome(self, now: datetime, *, reason: str, delay: int, unanswered: bool = False) -> Step:
        """The start's outcome is unknown (no answer, 5xx, or the instance is busy): stay Starting, check later.

        ``unanswered``: this attempt's POST got no real answer, so ARM may have accepted it; from
        then on a ``409 ServiceLocked`` for this job may be its own operation.
        """
        self._touch(now)
        self.start_uncertain = True
        if unanswered:
            self.unanswered_posts += 1
        return self._schedule(now, "start", reason, delay, transition=self.wait_reason != reason)

    def count_poll(self) -> None:
        self.polls += 1

    def poll_again(self, now: datetime, *, delay: int, reason: str | None = None) -> Step:
        """The operation still runs (or the poll should be repeated): the next poll, with a new sequence number."""
        self._touch(now)
        self.poll_seq += 1
        return self._schedule(now, "poll", reason, delay, transition=False)

    def succeed(self, now: datetime, *, facts: ServiceFacts | None = None, blob_size: int | None = None) -> Step:
        if facts is not None:
            self.sku, self.sku_capacity, self.region = facts.sku, facts.sku_capacity, facts.region
        if blob_size is not None:
            self.blob_size = blob_size
        if self.started_at is None:
            self.started_at = self.starting_at
        self._move(JobState.SUCCEEDED, now)
        self.wait_reason = None
        return Step()

    def fail(self, now: datetime, error: ArmError) -> Step:
        self._move(JobState.FAILED, now)
        self.error_code, self.error_message, self.remediation = error.code, error.message, error.remediation
        self.wait_reason = None
        return Step()

    def time_out(self, now: datetime, *, minutes: int) -> Step:
        was = self.state.value
        self._move(JobState.TIMED_OUT, now)
        self.error_code = "TimedOut"
        self.error_message = (f"The {self.kind.value} did not finish within {minutes} minutes "
                              f"(it was {was} after {self.polls} polls).")
        self.remediation = ArmError("TimedOut", self.error_message).remediation
        self.wait_reason = None
        return Step()

    def refuse(self, now: datetime, *, message: str, remediation: str) -> Step:
        """A restore that failed preflight: kept for audit, never started."""
        self._move(JobState.REFUSED, now)
        self.error_code = "PreflightFailed"
        self.error_message = message[:2000]
        self.remediation = remediation[:2000]
        return Step()

    def mark_announced(self) -> Step:
        self.announced = True
        return Step(transition=False)

    def _move(self, new_state: JobState, now: datetime) -> None:
        if new_state not in _ALLOWED[self.state]:
            raise InvalidTransitionError(f"job {self.job_id}: {self.state.value} -> {new_state.value} is not allowed")
        self.state = new_state
        self._touch(now)
        if new_state.terminal:
            self.finished_at = now
            self.next_action_at = None

    def _touch(self, now: datetime) -> None:
        self.updated_at = now

    def _schedule(self, now: datetime, op: Literal["start", "poll"], reason: str | None, delay: int, *,
                  transition: bool = True) -> Step:
        self.wait_reason = reason
        self.next_action_at = now + timedelta(seconds=delay)
        return Step(op, delay, transition)

    # -- views ------------------------------------------------------------------------------------
    def public_view(self, *, now: datetime) -> dict[str, Any]:
        """What status endpoints and the CLI show. Never includes secrets (none are stored)."""
        duration = self.duration_seconds
        view: dict[str, Any] = {
            "id": self.job_id,
            "kind": self.kind.value,
            "state": self.state.value,
            "instance": self.instance,
            "serviceName": self.service_name,
            "trigger": self.trigger,
            "createdAt": iso_or_none(self.created_at),
            "updatedAt": iso_or_none(self.updated_at),
            "startedAt": iso_or_none(self.started_at),
            "finishedAt": iso_or_none(self.finished_at),
            "deadline": iso_or_none(self.deadline),
            "elapsedSeconds": round(self.elapsed_seconds(now), 1),
            "durationSeconds": None if duration is None else round(duration, 1),
            "polls": self.polls,
            "nextPollAt": None if self.state.terminal else iso_or_none(self.next_action_at),
            "waitingFor": self.wait_reason,
            "backup": {
                "storageAccount": self.storage_account,
                "container": self.container,
                "blobName": self.blob_name,
                "sizeBytes": self.blob_size,
                "sku": self.sku,
                "skuCapacity": self.sku_capacity,
                "location": self.region,
                "accessType": self.access_type,
            },
            "error": None,
        }
        if self.source_instance:
            view["sourceInstance"] = self.source_instance
        if self.error_code:
            view["error"] = self.error_json()
        return view

    def error_json(self) -> dict[str, str | None]:
        """Why the job failed or was refused, and what to do, as the API and the records carry it."""
        return {"code": self.error_code, "message": self.error_message, "remediation": self.remediation}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
