"""A job: one backup or restore, the row that says where it stands, and the state machine that moves it.

A :class:`Job` is made by :meth:`Job.new_backup` or :meth:`Job.new_restore` and changes only through
its step methods (:meth:`Job.begin_start`, :meth:`Job.record_started`, :meth:`Job.poll_again`,
:meth:`Job.succeed`, :meth:`Job.fail`, ...). Each sets every field its step touches and returns a
:class:`Step`: whether the job must be resumed, and when. The caller saves the job (conditionally)
and only then sends the message that resumes it (:meth:`WorkMessage.resume
<dr_core.jobs.messages.WorkMessage.resume>`), so state lives in the row, never in messages.

Moments are ``datetime`` objects here; they become text only at the storage edge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from dr_core.catalog.naming import backup_blob_name, snapshot_blob_name
from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.errors import ArmError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState
from dr_core.kernel.settings import StorageAccessType
from dr_core.kernel.wire import JsonObject
from dr_core.snapshots.progress import SnapshotProgress

from .ids import JobKind, make_job_id

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.kernel.settings import ProtectedInstance, Settings

__all__ = [
    "JOB_PARTS",
    "TRANSITIONS",
    "InvalidTransitionError",
    "Job",
    "JobKind",
    "JobState",
    "ServiceFacts",
    "Step",
    "Trigger",
]


class Trigger(StrEnum):
    """What asked for a job (or a drill): recorded on it, shown by the API, the CLI and the log lines."""

    SCHEDULE = "schedule"  # a timer
    ON_DEMAND = "on-demand"  # POST /api/backups, POST /api/drills
    HTTP = "http"  # POST /api/restores
    CLI = "cli"
    STANDBY_SYNC = "standby-sync"  # a restore that keeps a standby on its primary's newest backup
    DRILL = "drill"  # a drill's restore
    UNKNOWN = "unknown"  # a drill rebuilt from its job, whose own trigger was never recorded


# The only moves a job may make. Starting -> Planned is "ARM said not now (409/429), wait". Planned ->
# Running is a job of many steps and no single start to guard (a snapshot's reads).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset({JobState.STARTING, JobState.RUNNING, JobState.FAILED, JobState.TIMED_OUT,
                                 JobState.REFUSED}),
    # Starting -> Refused: ARM refused a native backup of an instance whose tier has none, which snapshots
    # protect instead (recovery: auto). Nothing ran; nobody needs to be told.
    JobState.STARTING: frozenset({JobState.PLANNED, JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED,
                                  JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.TIMED_OUT: frozenset(),
    JobState.REFUSED: frozenset(),
}


# The fields that hold a kind's own typed part (a dataclass with ``to_json`` / ``from_json``), each stored as
# one JSON column of the row: a new kind adds its part here and a field below.
JOB_PARTS: dict[str, type[SnapshotProgress]] = {"snapshot": SnapshotProgress}


class InvalidTransitionError(ValueError):
    """A state change the state machine does not allow."""


@dataclass(frozen=True)
class Step:
    """What a step produced, for the one who saves it: resume the job after ``resume_after`` seconds (None: not
    at all), and whether the step is worth a structured log line (state changes and new attempts are; a poll
    that found the operation still running is not). Which message resumes it follows from the job itself.
    """

    resume_after: int | None = None
    transition: bool = True


@dataclass(frozen=True)
class ServiceFacts:
    """What a finished backup records about its source: tier, units and region."""

    sku: str | None
    sku_capacity: int | None
    region: str | None


@dataclass
class Job:
    """One job's row. Every kind has the first and the last group of fields; the middle ones are what a
    backup or restore (an ARM long-running operation on a backup blob) needs. The row is stored column by
    column (``dr_core/azure/tables.py``): a column the row lacks takes its default, one the job lacks is
    ignored, so a new kind adds its own typed part (a field holding a dataclass, as one JSON column)
    without touching the rows written before it."""

    # -- every job: what, for whom, since when, until when
    job_id: str
    kind: JobKind
    instance: str
    service_name: str
    state: JobState
    trigger: Trigger
    slot: datetime
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    next_action_at: datetime | None = None  # when its next step is due (the watchdog re-sends overdue ones)
    wait_reason: str | None = None  # why it waits, while it does
    # -- the backup blob: where APIM writes (backup) or reads (restore) it, and how it reaches the account
    storage_account: str = ""
    container: str = ""
    blob_name: str = ""
    access_type: str = ""
    client_id: str | None = None
    source_instance: str | None = None  # a restore's source instance
    # -- the ARM operation: its start (never sent twice), then its polls
    starting_at: datetime | None = None
    start_attempts: int = 0
    start_uncertain: bool = False
    unanswered_posts: int = 0
    started_at: datetime | None = None
    operation_url: str | None = None
    poll_seq: int = 0
    polls: int = 0
    # -- what a finished backup recorded about its source
    blob_size: int | None = None
    sku: str | None = None
    sku_capacity: int | None = None
    region: str | None = None
    # -- every job: how it ended, and whether people were told
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    remediation: str | None = None
    announced: bool = False
    # -- parts of one kind (one JSON column each; None on the other kinds)
    snapshot: SnapshotProgress | None = None
    # a native backup tried because the instance's tier may have backup (recovery: auto): a tier without
    # backup refuses it quietly instead of failing it (configuration snapshots protect such instances)
    tier_may_lack_backup: bool = False
    etag: str | None = field(default=None, compare=False)

    @classmethod
    def new_backup(cls, settings: Settings, instance: ProtectedInstance, slot: datetime, *, trigger: Trigger,
                   now: datetime) -> Job:
        """The backup of ``instance`` for ``slot``: the same inputs make the same job (and blob name)."""
        slot = slot.astimezone(UTC).replace(microsecond=0)
        return cls(
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

    @classmethod
    def new_snapshot(cls, settings: Settings, instance: ProtectedInstance, slot: datetime, *, trigger: Trigger,
                     now: datetime) -> Job:
        """The configuration snapshot of ``instance`` for ``slot``: the same inputs make the same job."""
        slot = slot.astimezone(UTC).replace(microsecond=0)
        return cls(
            job_id=make_job_id(JobKind.SNAPSHOT, instance.resource_id, slot),
            kind=JobKind.SNAPSHOT,
            instance=str(instance.resource_id),
            service_name=instance.name,
            state=JobState.PLANNED,
            trigger=trigger,
            slot=slot,
            created_at=now,
            updated_at=now,
            deadline=now + timedelta(minutes=settings.snapshot_timeout_minutes),
            storage_account=settings.backup_account,
            container=instance.container,
            blob_name=snapshot_blob_name(instance.name, slot),
            next_action_at=now,
            snapshot=SnapshotProgress(),
        )

    @classmethod
    def new_restore(cls, *, target: ApimResourceId, source: ApimResourceId, backup: CatalogEntry | None,
                    storage_account: str, access_type: StorageAccessType, client_id: str | None,
                    timeout_minutes: int, trigger: Trigger, now: datetime) -> Job:
        """A restore of ``backup`` (of ``source``) into ``target``; every restore gets a new ID."""
        return cls(
            job_id=make_job_id(JobKind.RESTORE, target, now, unique=True),
            kind=JobKind.RESTORE,
            instance=str(target),
            service_name=target.service_name,
            state=JobState.PLANNED,
            trigger=trigger,
            slot=now,
            created_at=now,
            updated_at=now,
            deadline=now + timedelta(minutes=timeout_minutes),
            storage_account=storage_account,
            container=backup.container if backup else "",
            blob_name=backup.blob_name if backup else "",
            access_type=access_type.value,
            client_id=client_id if access_type is StorageAccessType.USER_ASSIGNED else None,
            source_instance=str(source),
            sku=backup.sku if backup else None,
            next_action_at=now,
        )

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
        return Step(delay)

    def retry_start_later(self, now: datetime, *, reason: str, delay: int) -> Step:
        """ARM refused the start and nothing runs (409 ServiceLocked, 429): back to Planned, try again later."""
        self._move(JobState.PLANNED, now)
        self.start_uncertain = False
        return self._schedule(now, reason, delay)

    def await_start_outcome(self, now: datetime, *, reason: str, delay: int, unanswered: bool = False) -> Step:
        """The start's outcome is unknown (no answer, 5xx, or the instance is busy): stay Starting, check later.

        ``unanswered``: this attempt's POST got no real answer, so ARM may have accepted it; from
        then on a ``409 ServiceLocked`` for this job may be its own operation.
        """
        self._touch(now)
        self.start_uncertain = True
        if unanswered:
            self.unanswered_posts += 1
        return self._schedule(now, reason, delay, transition=self.wait_reason != reason)

    def postpone(self, now: datetime, *, reason: str, delay: int) -> Step:
        """Nothing could be done now (ARM unreachable, throttled): stay where the job stands, try after ``delay``."""
        self._touch(now)
        if self.state is JobState.RUNNING:
            self.poll_seq += 1
        return self._schedule(now, reason, delay, transition=self.wait_reason != reason)

    def begin_reading(self, now: datetime, *, progress: SnapshotProgress, sku: str | None,
                      region: str | None) -> Step:
        """Planned -> Running: a job of many reads has begun (the first read told the instance's tier)."""
        self._move(JobState.RUNNING, now)
        self.started_at = now
        self.sku, self.region = sku, region
        self.poll_seq = 1
        self.snapshot = progress
        return self._schedule(now, None, 0)

    def read_more(self, now: datetime, *, progress: SnapshotProgress, delay: int, reason: str | None = None) -> Step:
        """One more step of reading is done: record how far, and go on after ``delay`` (the read budget's wait)."""
        self._touch(now)
        self.poll_seq += 1
        self.snapshot = progress
        return self._schedule(now, reason, delay, transition=False)

    def count_poll(self) -> None:
        self.polls += 1

    def poll_again(self, now: datetime, *, delay: int, reason: str | None = None) -> Step:
        """The operation still runs (or the poll should be repeated): the next poll, with a new sequence number."""
        self._touch(now)
        self.poll_seq += 1
        return self._schedule(now, reason, delay, transition=False)

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

    def not_applicable(self, now: datetime, *, code: str, message: str, remediation: str) -> Step:
        """ARM refused a start that was only tried in case it applied (a native backup of a tier without one)."""
        self._move(JobState.REFUSED, now)
        self.error_code, self.error_message, self.remediation = code, message[:2000], remediation[:2000]
        self.wait_reason = None
        return Step()

    def mark_announced(self) -> Step:
        self.announced = True
        return Step(transition=False)

    def _move(self, new_state: JobState, now: datetime) -> None:
        if new_state not in TRANSITIONS[self.state]:
            raise InvalidTransitionError(f"job {self.job_id}: {self.state.value} -> {new_state.value} is not allowed")
        self.state = new_state
        self._touch(now)
        if new_state.terminal:
            self.finished_at = now
            self.next_action_at = None

    def _touch(self, now: datetime) -> None:
        self.updated_at = now

    def _schedule(self, now: datetime, reason: str | None, delay: int, *, transition: bool = True) -> Step:
        self.wait_reason = reason
        self.next_action_at = now + timedelta(seconds=delay)
        return Step(delay, transition)

    # -- views ------------------------------------------------------------------------------------
    def public_view(self, *, now: datetime) -> JsonObject:
        """What status endpoints and the CLI show. Never includes secrets (none are stored)."""
        duration = self.duration_seconds
        view: JsonObject = {
            "id": self.job_id,
            "kind": self.kind.value,
            "state": self.state.value,
            "instance": self.instance,
            "serviceName": self.service_name,
            "trigger": self.trigger.value,
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
        if self.snapshot is not None:
            view["snapshot"] = self.snapshot.view()
        if self.error_code:
            view["error"] = self.error_json()
        return view

    def error_json(self) -> dict[str, str | None]:
        """Why the job failed or was refused, and what to do, as the API and the records carry it."""
        return {"code": self.error_code, "message": self.error_message, "remediation": self.remediation}

    def as_dict(self) -> JsonObject:
        return asdict(self)
