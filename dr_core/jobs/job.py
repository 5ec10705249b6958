"""A job: one backup or restore, the row that says where it stands, and the state machine that moves it.

A :class:`Job` is made by :meth:`Job.new_backup` or :meth:`Job.new_restore` and changes only through
its step methods (:meth:`Job.begin_start`, :meth:`Job.record_started`, :meth:`Job.poll_again`,
:meth:`Job.succeed`, :meth:`Job.fail`, ...). Each sets every field its step touches and returns a
:class:`Step`: whether the job must be resumed, and when. The caller saves the job (conditionally)
and only then sends the message that resumes it (:meth:`WorkMessage.resume
<dr_core.jobs.messages.WorkMessage.resume>`), so state lives in the row, never in messages.

A backup or restore runs one ARM operation per :class:`Attempt` (``attempts``): a backup whose operation
failed for a transient reason gets a new one (:meth:`Job.try_again`), with a blob name of its own, up to
its ``max_attempts`` within its deadline. The work that follows a job's end (``follow_ups``: manifest, RPO
check, standby sync, drill verification) is recorded with the terminal state, in the same save, and
cleared as it is done, so a redelivered message or the watchdog finishes what a crash interrupted.

Moments are ``datetime`` objects here; they become text only at the storage edge.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dr_core.catalog.naming import backup_blob_name, snapshot_blob_name
from dr_core.kernel.clock import from_iso, iso_or_none
from dr_core.kernel.errors import ArmError, FailureKind
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState
from dr_core.kernel.settings import StorageAccessType
from dr_core.kernel.wire import JsonObject
from dr_core.snapshots.progress import ConfigRestoreProgress, SnapshotProgress

from .ids import JobKind, make_job_id

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.kernel.settings import ProtectedInstance, Settings

__all__ = [
    "JOB_PARTS",
    "TRANSITIONS",
    "Attempt",
    "AttemptOutcome",
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
# Running is a job of many steps and no single start to guard (a snapshot's reads). Running -> Planned is
# "the operation failed for a transient reason: a new attempt, later". Failed / TimedOut -> Succeeded is a
# backup whose operation the job had stopped following (its deadline passed, its polls were refused) and
# which was found finished after all (Job.adopt_late): the job's end agrees with the operation's.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset({JobState.STARTING, JobState.RUNNING, JobState.FAILED, JobState.TIMED_OUT,
                                 JobState.REFUSED}),
    # Starting -> Refused: ARM refused a native backup of an instance whose tier has none, which snapshots
    # protect instead (recovery: auto). Nothing ran; nobody needs to be told.
    JobState.STARTING: frozenset({JobState.PLANNED, JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED,
                                  JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED}),
    # Running -> Refused: a job of many steps that finds, having read, that it must not go on (a snapshot
    # restore whose plan is blocked); nothing was changed.
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT,
                                 JobState.REFUSED, JobState.PLANNED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.SUCCEEDED}),
    JobState.TIMED_OUT: frozenset({JobState.SUCCEEDED}),
    JobState.REFUSED: frozenset(),
}
_MAX_ATTEMPT_MESSAGE = 1000  # per attempt in the row (a table property holds 32 K characters)
_MAX_BACKOFF_SECONDS = 3600


class AttemptOutcome(StrEnum):
    """How one operation of a job ended, as far as apim-dr knows."""

    RUNNING = "running"  # ARM accepted it; the job follows it
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # ARM said it failed (or it ended without writing a backup)
    UNSETTLED = "unsettled"  # the job stopped following it before it ended; the watchdog checks it later


@dataclass
class Attempt:
    """One ARM operation of a job: where it wrote (backup) or read (restore), when, and how it ended."""

    number: int
    blob_name: str
    started_at: datetime | None = None  # when ARM accepted it (None: the start's answer was lost)
    operation_url: str | None = None
    finished_at: datetime | None = None
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    error_code: str | None = None
    error_message: str | None = None
    transient: bool | None = None  # the error's kind: a new attempt may succeed (kernel/errors.py's table)

    def end(self, now: datetime, outcome: AttemptOutcome, error: ArmError | None = None) -> None:
        self.finished_at, self.outcome = now, outcome
        if error is not None:
            self.error_code, self.error_message = error.code, (error.message or "")[:_MAX_ATTEMPT_MESSAGE]
            self.transient = error.kind is not FailureKind.PERMANENT

    def public_view(self) -> dict[str, Any]:
        """What the API, the CLI and the announcement show (the operation URL is apim-dr's own business)."""
        return {
            "number": self.number,
            "blobName": self.blob_name,
            "startedAt": iso_or_none(self.started_at),
            "finishedAt": iso_or_none(self.finished_at),
            "outcome": self.outcome.value,
            "error": None if self.error_code is None else {
                "code": self.error_code, "message": self.error_message,
                "kind": "transient" if self.transient else "permanent"},
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.public_view(), "operationUrl": self.operation_url,
                "error": None if self.error_code is None else {
                    "code": self.error_code, "message": self.error_message, "transient": self.transient}}

    @classmethod
    def from_json(cls, data: Any) -> Attempt:
        """One attempt as the row holds it; :raises ValueError: not an attempt."""
        if not isinstance(data, dict) or not isinstance(data.get("number"), int):
            raise ValueError("not an attempt")
        raw_error = data.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        return cls(
            number=data["number"],
            blob_name=str(data.get("blobName") or ""),
            started_at=from_iso(data["startedAt"]) if data.get("startedAt") else None,
            operation_url=data.get("operationUrl") or None,
            finished_at=from_iso(data["finishedAt"]) if data.get("finishedAt") else None,
            outcome=AttemptOutcome(data.get("outcome", AttemptOutcome.RUNNING.value)),
            error_code=error.get("code"),
            error_message=error.get("message"),
            transient=error.get("transient"),
        )




# The fields that hold a kind's own typed part (a dataclass with ``to_json`` / ``from_json``), each stored as
# one JSON column of the row: a new kind adds its part here and a field below.
JOB_PARTS: dict[str, type[SnapshotProgress] | type[ConfigRestoreProgress]] = {
    "snapshot": SnapshotProgress, "config_restore": ConfigRestoreProgress}


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
    # -- its operations (one per attempt), and the work after its end that is still to do
    attempt: int = 1  # the number of the attempt under way (or the last one)
    max_attempts: int = 1
    attempts: list[Attempt] = field(default_factory=list)
    poll_errors: int = 0  # polls in a row answered with an error that means "ask again"
    follow_ups: list[str] = field(default_factory=list)  # followers still to run after the job's end
    follow_up_runs: int = 0
    # -- parts of one kind (one JSON column each; None on the other kinds)
    snapshot: SnapshotProgress | None = None
    config_restore: ConfigRestoreProgress | None = None
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
            max_attempts=instance.posture.max_attempts,
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
    def new_config_restore(cls, settings: Settings, *, target: ApimResourceId, source: str, snapshot: str,
                           container: str, trigger: Trigger, now: datetime,
                           progress: ConfigRestoreProgress) -> Job:
        """A restore of the configuration snapshot ``snapshot`` (of ``source``) into ``target``; a new ID each time."""
        return cls(
            job_id=make_job_id(JobKind.CONFIG_RESTORE, target, now, unique=True),
            kind=JobKind.CONFIG_RESTORE,
            instance=str(target),
            service_name=target.service_name,
            state=JobState.PLANNED,
            trigger=trigger,
            slot=now,
            created_at=now,
            updated_at=now,
            deadline=now + timedelta(minutes=settings.restore_timeout_minutes),
            storage_account=settings.backup_account,
            container=container,
            blob_name=snapshot,
            source_instance=source,
            next_action_at=now,
            config_restore=progress,
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
        self.poll_errors = 0
        self.wait_reason = None
        self.next_action_at = now + timedelta(seconds=delay)
        current = self._current_attempt(create=True)
        current.started_at, current.operation_url = now, location
        return Step(delay)

    @property
    def current_attempt(self) -> Attempt | None:
        """The operation of the attempt under way (or the last one), if one was started."""
        return self.attempts[-1] if self.attempts and self.attempts[-1].number == self.attempt else None

    def _current_attempt(self, *, create: bool = False) -> Attempt:
        current = self.current_attempt
        if current is None:
            assert create
            current = Attempt(self.attempt, self.blob_name, started_at=self.started_at or self.starting_at,
                              operation_url=self.operation_url)
            self.attempts.append(current)
        return current

    def attempt_backoff(self, first_seconds: int) -> int:
        """The wait before the next attempt: ``first_seconds``, doubled for each further one (at most an hour)."""
        return int(min(first_seconds * 2 ** max(0, self.attempt - 1), _MAX_BACKOFF_SECONDS))

    def may_try_again(self, error: ArmError, now: datetime, *, delay: int) -> bool:
        """A backup whose operation failed with a transient error, attempts left, and time for one more."""
        return (self.kind is JobKind.BACKUP and error.kind is not FailureKind.PERMANENT
                and self.attempt < self.max_attempts and now + timedelta(seconds=delay) < self.deadline)

    def try_again(self, now: datetime, error: ArmError, *, delay: int) -> Step:
        """The operation failed for a transient reason: record it on its attempt, start a new one after ``delay``.

        The new attempt writes a blob of its own (never over what the failed one may have left), and is
        a new operation: a new POST, a new ``Location``, new polls.
        """
        self._current_attempt(create=True).end(now, AttemptOutcome.FAILED, error)
        self._move(JobState.PLANNED, now)
        self.attempt += 1
        self.blob_name = backup_blob_name(self.service_name, self.slot, attempt=self.attempt)
        self.starting_at = self.started_at = None
        self.operation_url = None
        self.start_uncertain = False
        self.unanswered_posts = 0
        self.poll_errors = 0
        self.error_code, self.error_message = error.code, error.message
        self.remediation = error.remediation
        return self._schedule(now, f"attempt {self.attempt} of {self.max_attempts} after {error.code}", delay)


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

    def count_poll(self, *, error: bool = False) -> int:
        """One more poll; ``error``: answered with an error that means "ask again". The errors in a row so far."""
        self.polls += 1
        self.poll_errors = self.poll_errors + 1 if error else 0
        return self.poll_errors


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
        adopted_late = self.state in (JobState.FAILED, JobState.TIMED_OUT)
        self._move(JobState.SUCCEEDED, now)
        self.wait_reason = None
        if self.kind in (JobKind.BACKUP, JobKind.RESTORE):  # one ARM operation each (a snapshot is many reads)
            self._current_attempt(create=True).end(now, AttemptOutcome.SUCCEEDED)
        if not adopted_late:
            # Earlier attempts' errors stay on them; the job itself has none. A job adopted after it had
            # ended keeps the error it ended with (what happened to the job, told to people at the time).
            self.error_code = self.error_message = self.remediation = None
        return Step()

    def adopt_late(self, now: datetime, *, facts: ServiceFacts | None = None, blob_size: int | None = None) -> Step:
        """A backup that had ended Failed or TimedOut while its operation was not settled, found finished after all.

        The error stays on record (it is what happened to the job); the state says what happened to the backup.
        """
        if self.kind is not JobKind.BACKUP or self.state not in (JobState.FAILED, JobState.TIMED_OUT):
            raise InvalidTransitionError(f"job {self.job_id}: only a failed or timed-out backup is adopted late")
        return self.succeed(now, facts=facts, blob_size=blob_size)

    def fail(self, now: datetime, error: ArmError, *, settled: bool = True) -> Step:
        """The job ends Failed with ``error``. ``settled``: its operation ended too (ARM said so); else the
        job stopped following an operation that may still finish (a refused poll), which the watchdog re-checks."""
        self._move(JobState.FAILED, now)
        self.error_code, self.error_message, self.remediation = error.code, error.message, error.remediation
        self.wait_reason = None
        current = self.current_attempt
        if current is not None and current.outcome is AttemptOutcome.RUNNING:
            current.end(now, AttemptOutcome.FAILED if settled else AttemptOutcome.UNSETTLED, error)
        return Step()

    def time_out(self, now: datetime, *, minutes: int) -> Step:
        was = self.state.value
        uncertain_start = self.state is JobState.STARTING and (self.start_uncertain or self.unanswered_posts > 0)
        self._move(JobState.TIMED_OUT, now)
        self.error_code = "TimedOut"
        self.error_message = (f"The {self.kind.value} did not finish within {minutes} minutes "
                              f"(it was {was} after {self.polls} polls).")
        self.remediation = ArmError("TimedOut", self.error_message).remediation
        self.wait_reason = None
        current = self.current_attempt
        if current is None and uncertain_start:
            current = self._current_attempt(create=True)  # a POST whose answer was lost may have started one
        if current is not None and current.outcome is AttemptOutcome.RUNNING:
            current.end(now, AttemptOutcome.UNSETTLED, ArmError("TimedOut", self.error_message))
        return Step()

    def settle_attempt(self, now: datetime, *, error: ArmError | None = None) -> Step:
        """An unsettled operation of an ended job turned out to have failed (or written nothing): settled."""
        current = self.current_attempt
        if current is not None and current.outcome is AttemptOutcome.UNSETTLED:
            current.end(now, AttemptOutcome.FAILED, error)
        self._touch(now)
        return Step(transition=False)

    @property
    def unsettled(self) -> bool:
        """A backup that ended without knowing how its operation ended (the watchdog checks it again)."""
        current = self.current_attempt
        return (self.kind is JobKind.BACKUP and self.state in (JobState.FAILED, JobState.TIMED_OUT)
                and current is not None and current.outcome is AttemptOutcome.UNSETTLED)

    def await_follow_ups(self, names: list[str]) -> None:
        """Record the work that follows the job's end, saved with the terminal state."""
        self.follow_ups = list(dict.fromkeys(names))
        self.follow_up_runs = 0

    def follow_ups_done(self, done: Collection[str], *, give_up: Collection[str] = ()) -> Step:
        """Clear the followers that ran (and those given up on); one more run counted."""
        self.follow_ups = [name for name in self.follow_ups if name not in done and name not in give_up]
        self.follow_up_runs += 1
        return Step(transition=False)

    def refuse(self, now: datetime, *, message: str, remediation: str) -> Step:
        """A restore that failed preflight: kept for audit, never started."""
        self._move(JobState.REFUSED, now)
        self.error_code = "PreflightFailed"
        self.error_message = message[:2000]
        self.remediation = remediation[:2000]
        return Step()

    def refuse_after_reading(self, now: datetime, *, message: str, remediation: str) -> Step:
        """Running -> Refused: what the job read says it must not go on (nothing was changed)."""
        self._move(JobState.REFUSED, now)
        self.error_code = "PreflightFailed"
        self.error_message, self.remediation = message[:2000], remediation[:2000]
        self.wait_reason = None
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
            "attempt": self.attempt,
            "maxAttempts": self.max_attempts,
            "attempts": [a.public_view() for a in self.attempts],
            "followUps": list(self.follow_ups),
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
        if self.config_restore is not None:
            view["configRestore"] = self.config_restore.view()
        if self.error_code:
            view["error"] = self.error_json()
        return view

    def error_json(self) -> dict[str, str | None]:
        """Why the job failed or was refused, and what to do, as the API and the records carry it."""
        return {"code": self.error_code, "message": self.error_message, "remediation": self.remediation}

    def as_dict(self) -> JsonObject:
        return asdict(self)
