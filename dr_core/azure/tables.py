"""Where jobs live: the job rows, the one-restore-per-target lock, and listings.

:class:`JobStore` is the interface the use cases see; :class:`TableJobStore` keeps it in
Azure Table storage. Every change of a job is an ETag-conditional replace, so two workers
can never both move a job forward: the loser gets :class:`JobConflictError` and stops.

Row layout: ``PartitionKey = {kind}-{yyyyMMdd}`` of the job's slot, ``RowKey = job ID``. The
partition is derivable from the ID (point reads), and a timer's jobs share one partition, so
planning 1,000 instances is ten 100-row transactions. The restore lock is one row per target
in the partition ``restore-lock``. Times are stored as ISO-8601 text (:func:`dr_core.kernel.clock.iso`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from dr_core.azure.errors import storage_errors
from dr_core.jobs.job import Job, JobKind, JobState, parse_job_id, partition_of
from dr_core.kernel.clock import from_iso, iso
from dr_core.kernel.errors import ConflictError
from dr_core.kernel.ids import ApimResourceId

if TYPE_CHECKING:
    from azure.data.tables import TableClient

__all__ = [
    "LOCK_PARTITION",
    "RECORD_PARTITION_PREFIX",
    "JobConflictError",
    "JobStore",
    "Record",
    "TableJobStore",
    "is_job_row",
    "job_from_entity",
    "job_to_entity",
    "record_key",
]

logger = logging.getLogger(__name__)

LOCK_PARTITION = "restore-lock"
RECORD_PARTITION_PREFIX = "record-"  # one partition per record kind: record-rpo, record-standby, ...
_TRANSACTION_LIMIT = 100  # Azure Table storage: at most 100 operations per transaction.
_PARALLEL_TRANSACTIONS = 4
_DATETIME_FIELDS = frozenset(f.name for f in fields(Job) if "datetime" in str(f.type))
_INT_FIELDS = ("start_attempts", "unanswered_posts", "poll_seq", "polls", "blob_size", "sku_capacity")


class JobConflictError(ConflictError):
    """Someone else changed the job (or record) first (ETag mismatch) or the row already exists."""

    code = "JobConflict"


@dataclass
class Record:
    """A small piece of state that is not a job: an instance's RPO state, a drill result, a standby's sync.

    ``kind`` groups records (one table partition each), ``key`` names one (letters, digits, ``-``,
    ``_``, ``.``; see :func:`record_key`), ``data`` is JSON (at most ~30,000 characters).
    Writes are conditional like job writes: ``etag`` None creates, otherwise replaces if unchanged.
    """

    kind: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None


def record_key(text: str) -> str:
    """A table-safe key for ``text`` (a resource ID, a blob name): readable prefix plus a hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", text.rsplit("/", 1)[-1])[:60]
    return f"{readable}-{hashlib.sha256(text.lower().encode()).hexdigest()[:16]}"


class JobStore(ABC):
    """Jobs and restore locks. Writes are conditional; a lost race raises :class:`JobConflictError`."""

    @abstractmethod
    def create(self, job: Job) -> Job:
        """Insert a new job; :raises JobConflictError: if its ID exists."""

    @abstractmethod
    def create_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Insert the jobs that don't exist yet; return the ones created (a re-fired timer creates none)."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job, or None; :raises ValueError: for a string that is not a job ID."""

    @abstractmethod
    def update(self, job: Job) -> Job:
        """Replace the job if nobody changed it since it was read; :raises JobConflictError: otherwise."""

    @abstractmethod
    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime) -> Iterator[Job]:
        """Jobs whose slot falls in the last ``days`` days."""

    @abstractmethod
    def lock_holder_id(self, target: ApimResourceId) -> tuple[str, str] | None:
        """The job ID holding the target's restore lock and the lock's ETag, if a lock row exists."""

    @abstractmethod
    def create_lock(self, target: ApimResourceId, job_id: str) -> bool:
        """Take a free lock; False if a lock row exists."""

    @abstractmethod
    def replace_lock(self, target: ApimResourceId, job_id: str, *, etag: str) -> bool:
        """Take over a lock row unchanged since ``etag`` was read; False if it changed or vanished."""

    @abstractmethod
    def delete_lock(self, target: ApimResourceId, *, etag: str) -> None:
        """Remove the lock row if unchanged since ``etag``; a changed or missing row is left alone."""

    @abstractmethod
    def get_record(self, kind: str, key: str) -> Record | None:
        """The record, or None."""

    @abstractmethod
    def put_record(self, record: Record) -> Record:
        """Create (``etag`` None) or replace-if-unchanged; :raises JobConflictError: if someone was first."""

    @abstractmethod
    def records(self, kind: str) -> list[Record]:
        """Every record of a kind."""

    # -- built on the primitives above --------------------------------------------------------------
    def update_record(self, kind: str, key: str, change: Callable[[dict[str, Any]], dict[str, Any] | None], *,
                      attempts: int = 3, current: Record | None = None) -> Record | None:
        """Read, change and write a record with its ETag; read and change again if another writer was first.

        ``change`` gets a copy of the current data (``{}`` when there is no record) and returns the
        new data, or None to leave the record as it is (then None is returned). ``current`` is the
        record as the caller has just read it (it saves the first read).

        :raises JobConflictError: another writer was first ``attempts`` times.
        """
        for attempt in range(attempts):
            record = current if attempt == 0 and current is not None else self.get_record(kind, key)
            new = change(dict(record.data) if record is not None else {})
            if new is None:
                return None
            try:
                return self.put_record(Record(kind, key, new, record.etag if record is not None else None))
            except JobConflictError:
                continue
        raise JobConflictError(f"record {kind}/{key} kept changing ({attempts} attempts)")

    def restore_in_progress(self, target: ApimResourceId) -> Job | None:
        """The unfinished restore holding the target's lock, if any (an ended holder does not count)."""
        holder = self.lock_holder_id(target)
        if holder is None:
            return None
        job = self.get(holder[0])
        return job if job is not None and not job.state.terminal else None

    def take_restore_lock(self, target: ApimResourceId, job_id: str) -> bool:
        """One restore per target: take the lock, or take it over from a job that has ended."""
        for _ in range(3):
            if self.create_lock(target, job_id):
                return True
            holder = self.lock_holder_id(target)
            if holder is None:
                continue  # released meanwhile: try to create it again
            job = self.get(holder[0])
            if job is not None and not job.state.terminal:
                return False
            return self.replace_lock(target, job_id, etag=holder[1])
        return False

    def release_restore_lock(self, job: Job) -> None:
        """Free the target once ``job`` has ended (best effort: an ended holder is taken over anyway)."""
        holder = self.lock_holder_id(job.resource_id)
        if holder is not None and holder[0] == job.job_id:
            self.delete_lock(job.resource_id, etag=holder[1])


def is_job_row(entity: Mapping[str, Any]) -> bool:
    """Whether a row of the jobs table is a job (the table also holds restore locks and records)."""
    partition = str(entity.get("PartitionKey", ""))
    return partition != LOCK_PARTITION and not partition.startswith(RECORD_PARTITION_PREFIX)


def lock_key(target: ApimResourceId) -> str:
    return hashlib.sha256(target.key.encode()).hexdigest()[:32]


def job_to_entity(job: Job) -> dict[str, Any]:
    """The table row of a job: camel-cased properties, times as ISO text, no nulls."""
    kind, slot = parse_job_id(job.job_id)
    entity: dict[str, Any] = {"PartitionKey": partition_of(kind, slot), "RowKey": job.job_id}
    for f in fields(job):
        if f.name in ("job_id", "etag"):
            continue
        value = getattr(job, f.name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, Enum):
            value = value.value
        entity[_camel(f.name)] = value
    return entity


def job_from_entity(entity: Mapping[str, Any]) -> Job:
    values: dict[str, Any] = {"job_id": entity["RowKey"]}
    for f in fields(Job):
        if f.name in ("job_id", "etag"):
            continue
        key = _camel(f.name)
        if key in entity:
            values[f.name] = entity[key]
    values["kind"] = JobKind(values["kind"])
    values["state"] = JobState(values["state"])
    for name in _DATETIME_FIELDS:
        if name in values:
            values[name] = from_iso(values[name])
    for name in _INT_FIELDS:
        if values.get(name) is not None:
            values[name] = int(values[name])
    job = Job(**values)
    metadata = getattr(entity, "metadata", None) or {}
    job.etag = metadata.get("etag")
    return job


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


class TableJobStore(JobStore):
    """Jobs in one Azure table (``apimdrjobs``)."""

    _WHAT = "the jobs table"

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def create(self, job: Job) -> Job:
        with storage_errors(self._WHAT):
            try:
                metadata = self._table.create_entity(job_to_entity(job))
            except ResourceExistsError as e:
                raise JobConflictError(f"job {job.job_id} already exists") from e
        job.etag = metadata.get("etag")
        return job

    def create_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Insert in 100-row transactions, a few at a time.

        Most of a transaction's cost is building and parsing the multipart batch bodies, which
        overlaps with the service's work on the others. A transaction with one existing row
        fails as a whole (a re-fired timer); for those, the existing rows are read once per
        partition and only the missing ones are inserted.
        """
        chunks: list[tuple[str, list[tuple[Job, dict[str, Any]]]]] = []
        by_partition: dict[str, list[tuple[Job, dict[str, Any]]]] = {}
        for job in jobs:
            entity = job_to_entity(job)
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

        with storage_errors(self._WHAT):
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
                    with contextlib.suppress(ResourceExistsError):
                        self._table.create_entity(entity)
                        created.append(job)
        return created

    def _existing_ids(self, partition: str, job_ids: list[str]) -> set[str]:
        low, high = min(job_ids), max(job_ids)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
            parameters={"pk": partition, "low": low, "high": high}, select=["RowKey"],
        )
        return {row["RowKey"] for row in rows}

    def get(self, job_id: str) -> Job | None:
        kind, slot = parse_job_id(job_id)
        with storage_errors(self._WHAT):
            try:
                entity = self._table.get_entity(partition_of(kind, slot), job_id)
            except ResourceNotFoundError:
                return None
        return job_from_entity(entity)

    def update(self, job: Job) -> Job:
        if not job.etag:
            raise ValueError(f"job {job.job_id} has no ETag; read it before updating")
        with storage_errors(self._WHAT):
            try:
                metadata = self._table.update_entity(
                    job_to_entity(job), mode=UpdateMode.REPLACE, etag=job.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError) as e:
                raise JobConflictError(f"job {job.job_id} changed meanwhile") from e
        job.etag = metadata.get("etag")
        return job

    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime) -> Iterator[Job]:
        """Partition scans, newest day first."""
        partitions = [partition_of(k, now - timedelta(days=d)) for d in range(days) for k in kinds]
        for partition in partitions:
            with storage_errors(self._WHAT):
                entities = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))
            for entity in entities:
                yield job_from_entity(entity)

    def lock_holder_id(self, target: ApimResourceId) -> tuple[str, str] | None:
        with storage_errors(self._WHAT):
            try:
                row = self._table.get_entity(LOCK_PARTITION, lock_key(target))
            except ResourceNotFoundError:
                return None
        return str(row["JobId"]), str(row.metadata["etag"])

    def create_lock(self, target: ApimResourceId, job_id: str) -> bool:
        with storage_errors(self._WHAT):
            try:
                self._table.create_entity(self._lock_row(target, job_id))
            except ResourceExistsError:
                return False
        return True

    def replace_lock(self, target: ApimResourceId, job_id: str, *, etag: str) -> bool:
        with storage_errors(self._WHAT):
            try:
                self._table.update_entity(self._lock_row(target, job_id), mode=UpdateMode.REPLACE, etag=etag,
                                          match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def delete_lock(self, target: ApimResourceId, *, etag: str) -> None:
        try:
            self._table.delete_entity(LOCK_PARTITION, lock_key(target), etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
        except AzureError:
            logger.info("restore lock of %s not released now; the next restore takes it over", target)

    def get_record(self, kind: str, key: str) -> Record | None:
        with storage_errors(self._WHAT):
            try:
                row = self._table.get_entity(_record_partition(kind), key)
            except ResourceNotFoundError:
                return None
        return _record_from_row(kind, row)

    def put_record(self, record: Record) -> Record:
        row = {"PartitionKey": _record_partition(record.kind), "RowKey": record.key,
               "Data": json.dumps(record.data, separators=(",", ":"), default=str)}
        if len(row["Data"]) > _MAX_RECORD_CHARS:
            raise ValueError(f"record {record.kind}/{record.key} is too large ({len(row['Data'])} characters)")
        with storage_errors(self._WHAT):
            try:
                if record.etag is None:
                    metadata = self._table.create_entity(row)
                else:
                    metadata = self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=record.etag,
                                                         match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as e:
                raise JobConflictError(f"record {record.kind}/{record.key} changed meanwhile") from e
        record.etag = metadata.get("etag")
        return record

    def records(self, kind: str) -> list[Record]:
        with storage_errors(self._WHAT):
            rows = list(self._table.query_entities("PartitionKey eq @pk",
                                                   parameters={"pk": _record_partition(kind)}))
        return [_record_from_row(kind, row) for row in rows]

    @staticmethod
    def _lock_row(target: ApimResourceId, job_id: str) -> dict[str, str]:
        return {"PartitionKey": LOCK_PARTITION, "RowKey": lock_key(target), "JobId": job_id, "Target": str(target)}


_MAX_RECORD_CHARS = 30_000  # a table string property holds 64 KiB of UTF-16


def _record_partition(kind: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", kind):
        raise ValueError(f"record kind {kind!r} must be lowercase letters, digits and '-'")
    return f"{RECORD_PARTITION_PREFIX}{kind}"


def _record_from_row(kind: str, row: Any) -> Record:
    try:
        data = json.loads(row.get("Data") or "{}")
    except ValueError:
        data = {}
    metadata = getattr(row, "metadata", None) or {}
    return Record(kind, str(row["RowKey"]), data if isinstance(data, dict) else {}, metadata.get("etag"))
