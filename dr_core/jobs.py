"""Jobs: one row per backup or restore in Azure Table storage, and their state machine.

State lives in the row, not in queue messages: a message only says "work on job X", so a
duplicated, late or redelivered message finds the job already past that step and does
nothing. Every change is an ETag-conditional replace (:meth:`JobStore.update`), so two
workers can never both move a job forward.

Row layout: ``PartitionKey = {kind}-{yyyyMMdd}`` of the job's slot, ``RowKey = job ID``.
The partition is derivable from the ID (point reads), and a timer's jobs share one
partition, so planning 1,000 instances is ten 100-row transactions.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from .ids import ApimResourceId

if TYPE_CHECKING:
    from azure.data.tables import TableClient

__all__ = ["Job", "JobConflictError", "JobKind", "JobState", "JobStore", "make_job_id", "parse_job_id"]

logger = logging.getLogger(__name__)

_TRANSACTION_LIMIT = 100  # Azure Table storage: at most 100 operations per transaction.
_PARALLEL_TRANSACTIONS = 4


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
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED)


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


class JobConflictError(Exception):
    """Someone else changed the job first (ETag mismatch) or the row already exists."""


class InvalidTransitionError(ValueError):
    """A state change the state machine does not allow."""


def make_job_id(kind: JobKind, instance: ApimResourceId, slot: datetime) -> str:
    """The job of ``instance`` in ``slot``: the same inputs always give the same ID (idempotent planning)."""
    slot = slot.astimezone(UTC).replace(microsecond=0)
    digest = hashlib.sha256(f"{kind.value}|{instance.key}".encode()).hexdigest()[:8]
    return f"{kind.value}-{slot:%Y%m%dT%H%M%SZ}-{instance.service_name}-{digest}"


def parse_job_id(job_id: object) -> tuple[JobKind, datetime]:
    """Validate a job ID (it may come from an HTTP path) and return its kind and slot.

    :raises ValueError: if it is not a job ID apim-dr makes.
    """
    if not isinstance(job_id, str) or len(job_id) > 100:
        raise ValueError("not a job ID")
    match = _JOB_ID_RE.match(job_id)
    if not match:
        raise ValueError("not a job ID: expected {backup|restore}-{yyyyMMddTHHmmssZ}-{service}-{8 hex}")
    slot = datetime.strptime(match.group("slot"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return JobKind(match.group("kind")), slot


def partition_of(kind: JobKind, slot: datetime) -> str:
    return f"{kind.value}-{slot.astimezone(UTC):%Y%m%d}"


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Job:
    job_id: str
    kind: JobKind
    instance: str
    service_name: str
    state: JobState
    trigger: str
    slot: str
    created_at: str
    updated_at: str
    deadline: str
    storage_account: str = ""
    container: str = ""
    blob_name: str = ""
    access_type: str = ""
    client_id: str | None = None
    source_instance: str | None = None
    starting_at: str | None = None
    start_attempts: int = 0
    start_uncertain: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    operation_url: str | None = None
    poll_seq: int = 0
    polls: int = 0
    next_action_at: str | None = None
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
        start, end = from_iso(self.started_at), from_iso(self.finished_at)
        return (end - start).total_seconds() if start and end else None

    @property
    def elapsed_seconds(self) -> float:
        """From the job's creation to its end, or to now while it runs."""
        created = from_iso(self.created_at) or now_utc()
        end = from_iso(self.finished_at) or now_utc()
        return max(0.0, (end - created).total_seconds())

    def transition(self, new_state: JobState, moment: datetime) -> None:
        if new_state not in _ALLOWED[self.state]:
            raise InvalidTransitionError(f"job {self.job_id}: {self.state.value} -> {new_state.value} is not allowed")
        self.state = new_state
        self.updated_at = iso(moment) or ""
        if new_state.terminal:
            self.finished_at = iso(moment)
            self.next_action_at = None

    def to_entity(self) -> dict[str, Any]:
        kind, slot = parse_job_id(self.job_id)
        entity: dict[str, Any] = {"PartitionKey": partition_of(kind, slot), "RowKey": self.job_id}
        for f in fields(self):
            if f.name in ("job_id", "etag"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            entity[_camel(f.name)] = value.value if isinstance(value, Enum) else value
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Job:
        values: dict[str, Any] = {"job_id": entity["RowKey"]}
        for f in fields(cls):
            if f.name in ("job_id", "etag"):
                continue
            key = _camel(f.name)
            if key in entity:
                values[f.name] = entity[key]
        values["kind"] = JobKind(values["kind"])
        values["state"] = JobState(values["state"])
        for int_field in ("start_attempts", "poll_seq", "polls", "blob_size", "sku_capacity"):
            if values.get(int_field) is not None:
                values[int_field] = int(values[int_field])
        job = cls(**values)
        metadata = getattr(entity, "metadata", None) or {}
        job.etag = metadata.get("etag")
        return job

    def public_view(self) -> dict[str, Any]:
        """What status endpoints and the CLI show. Never includes secrets (none are stored)."""
        view = {
            "id": self.job_id,
            "kind": self.kind.value,
            "state": self.state.value,
            "instance": self.instance,
            "serviceName": self.service_name,
            "trigger": self.trigger,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "deadline": self.deadline,
            "elapsedSeconds": round(self.elapsed_seconds, 1),
            "durationSeconds": None if self.duration_seconds is None else round(self.duration_seconds, 1),
            "polls": self.polls,
            "nextPollAt": self.next_action_at if not self.state.terminal else None,
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
            view["error"] = {"code": self.error_code, "message": self.error_message, "remediation": self.remediation}
        return view

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


class JobStore:
    """Job rows in one table. All writes are conditional; conflicts raise :class:`JobConflictError`."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def ensure_table(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._table.create_table()

    def create_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Insert jobs that don't exist yet, in 100-row transactions; return the ones created.

        The transactions run a few at a time: most of their cost is building and parsing the
        multipart batch bodies, which overlaps with the service's work on the others. A
        transaction with one existing row fails as a whole (a re-fired timer); for those, the
        existing rows are read once per partition and only the missing ones are inserted.
        """
        from concurrent.futures import ThreadPoolExecutor

        from azure.core.exceptions import ResourceExistsError
        from azure.data.tables import TableTransactionError

        chunks: list[tuple[str, list[tuple[Job, dict[str, Any]]]]] = []
        by_partition: dict[str, list[tuple[Job, dict[str, Any]]]] = {}
        for job in jobs:
            entity = job.to_entity()
            by_partition.setdefault(entity["PartitionKey"], []).append((job, entity))
        for partition, rows in by_partition.items():
            chunks += [(partition, rows[i:i + _TRANSACTION_LIMIT]) for i in range(0, len(rows), _TRANSACTION_LIMIT)]

        def submit(chunk: list[tuple[Job, dict[str, Any]]]) -> bool:
            try:
                self._table.submit_transaction([("create", entity) for _, entity in chunk])
            except TableTransactionError as e:
                logger.info("job batch of %d hit existing rows (%s)", len(chunk), getattr(e, "error_code", ""))
                return False
            return True

        with ThreadPoolExecutor(max_workers=min(_PARALLEL_TRANSACTIONS, len(chunks) or 1)) as pool:
            outcomes = list(pool.map(submit, [chunk for _, chunk in chunks]))
        created = [job for (_, chunk), ok in zip(chunks, outcomes, strict=True) if ok for job, _ in chunk]
        existing: dict[str, set[str]] = {}
        for (partition, chunk), ok in zip(chunks, outcomes, strict=True):
            if ok:
                continue
            if partition not in existing:
                existing[partition] = self._existing_ids(partition, [j.job_id for j, _ in by_partition[partition]])
            for job, entity in chunk:
                if job.job_id in existing[partition]:
                    continue
                try:
                    self._table.create_entity(entity)
                    created.append(job)
                except ResourceExistsError:
                    pass
        return created

    def _existing_ids(self, partition: str, job_ids: list[str]) -> set[str]:
        low, high = min(job_ids), max(job_ids)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
            parameters={"pk": partition, "low": low, "high": high}, select=["RowKey"],
        )
        return {row["RowKey"] for row in rows}

    def create(self, job: Job) -> Job:
        from azure.core.exceptions import ResourceExistsError

        try:
            metadata = self._table.create_entity(job.to_entity())
        except ResourceExistsError as e:
            raise JobConflictError(f"job {job.job_id} already exists") from e
        job.etag = metadata.get("etag")
        return job

    def get(self, job_id: str) -> Job | None:
        from azure.core.exceptions import ResourceNotFoundError

        kind, slot = parse_job_id(job_id)
        try:
            entity = self._table.get_entity(partition_of(kind, slot), job_id)
        except ResourceNotFoundError:
            return None
        return Job.from_entity(entity)

    def update(self, job: Job) -> Job:
        """Replace the row if nobody changed it since ``job`` was read."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        if not job.etag:
            raise ValueError(f"job {job.job_id} has no ETag; read it before updating")
        try:
            metadata = self._table.update_entity(
                job.to_entity(), mode=UpdateMode.REPLACE, etag=job.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as e:
            raise JobConflictError(f"job {job.job_id} changed meanwhile") from e
        job.etag = metadata.get("etag")
        return job

    def jobs_in_partitions(self, partitions: Iterable[str]) -> Iterator[Job]:
        for partition in partitions:
            for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}):
                yield Job.from_entity(entity)

    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime | None = None) -> Iterator[Job]:
        """Jobs whose slot falls in the last ``days`` days (partition scans, newest day first)."""
        now = now or now_utc()
        partitions = [partition_of(k, now - timedelta(days=d)) for d in range(days) for k in kinds]
        return self.jobs_in_partitions(partitions)
