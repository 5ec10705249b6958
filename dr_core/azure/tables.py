"""The app's table (``apimdrjobs``): job rows, restore locks and records, each behind its own port.

Three adapters share the one table, each in partitions of its own, named by one typed key scheme
(:class:`RowKind`, :func:`job_partition`, :data:`LOCK_PARTITION`, :func:`record_partition`):

=============  =================================  ==============================================
rows           ``PartitionKey``                   ``RowKey``
=============  =================================  ==============================================
jobs           ``{kind}-{yyyyMMdd}`` of its slot  the job ID (the partition is derivable from it)
restore locks  ``restore-lock``                   a hash of the target's resource ID
records        ``record-{kind}``                  the record's key
=============  =================================  ==============================================

Every read of jobs is a point read or an exact partition query built by :func:`job_partition`
(a kind and a UTC day), so a lock or a record can never come back as a job; :func:`row_kind` tells
the three apart positively for anyone listing the whole table. Why one table rather than three:
docs/architecture.md ("Where state lives"). Every change is ETag-conditional, so two workers can
never both move a job forward: the loser gets :class:`~dr_core.ports.JobConflictError` and stops.
Times are stored as ISO-8601 text (:func:`dr_core.kernel.clock.iso`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from dr_core.jobs.ids import JobKind, parse_job_id
from dr_core.jobs.job import JOB_PARTS, Attempt, Job, Trigger
from dr_core.kernel.clock import from_iso, iso
from dr_core.kernel.phases import JobState
from dr_core.kernel.threads import parallel_map
from dr_core.kernel.wire import JsonObject
from dr_core.ports import JobConflictError, LockHolder, RecordConflictError, RecordKind, StoredRecord

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from dr_core.kernel.ids import ApimResourceId

__all__ = [
    "LOCK_PARTITION",
    "RowKind",
    "TableJobStore",
    "TableRecordStore",
    "TableRestoreLocks",
    "is_job_row",
    "job_from_entity",
    "job_partition",
    "job_to_entity",
    "record_partition",
    "row_kind",
]

logger = logging.getLogger(__name__)

LOCK_PARTITION = "restore-lock"
_RECORD_PREFIX = "record-"
_JOB_PARTITION_RE = re.compile(rf"^(?:{'|'.join(re.escape(k.value) for k in JobKind)})-\d{{8}}$")
_RECORD_PARTITION_RE = re.compile(rf"^{_RECORD_PREFIX}(?:{'|'.join(re.escape(k.value) for k in RecordKind)})$")
_TRANSACTION_LIMIT = 100  # Azure Table storage: at most 100 operations per transaction.
_PARALLEL_TRANSACTIONS = 4
_MAX_RECORD_CHARS = 30_000  # a table string property holds 64 KiB of UTF-16
_DATETIME_FIELDS = frozenset(f.name for f in fields(Job) if "datetime" in str(f.type))
_INT_FIELDS = ("start_attempts", "unanswered_posts", "poll_seq", "polls", "blob_size", "sku_capacity", "attempt",
               "max_attempts", "poll_errors", "follow_up_runs")
# A job's typed lists, one JSON column each (absent when empty): how each item is read back.
_JSON_COLUMNS: dict[str, Any] = {
    "attempts": Attempt.from_json,
    "follow_ups": str,
}
_WHAT = "the jobs table"


# -- the key scheme ----------------------------------------------------------------------------------------
class RowKind(StrEnum):
    JOB = "job"
    LOCK = "lock"
    RECORD = "record"


def job_partition(kind: JobKind, slot: datetime) -> str:
    """The partition of a job: one per kind and UTC day of its slot (derivable from the ID)."""
    return f"{kind.value}-{slot.astimezone(UTC):%Y%m%d}"


def record_partition(kind: RecordKind) -> str:
    return f"{_RECORD_PREFIX}{RecordKind(kind).value}"


def row_kind(partition: str) -> RowKind | None:
    """What rows of ``partition`` are, by an exact match of the key scheme; None for partitions apim-dr never writes."""
    if _JOB_PARTITION_RE.match(partition):
        return RowKind.JOB
    if partition == LOCK_PARTITION:
        return RowKind.LOCK
    if _RECORD_PARTITION_RE.match(partition):
        return RowKind.RECORD
    return None


def is_job_row(entity: Mapping[str, Any]) -> bool:
    """Whether a row of the table is a job (for tools that list the whole table)."""
    return row_kind(str(entity.get("PartitionKey", ""))) is RowKind.JOB


# -- job rows ------------------------------------------------------------------------------------------------
def job_to_entity(job: Job) -> JsonObject:
    """The table row of a job: camel-cased properties, times as ISO text, no nulls."""
    kind, slot = parse_job_id(job.job_id)
    entity: JsonObject = {"PartitionKey": job_partition(kind, slot), "RowKey": job.job_id}
    for f in fields(job):
        if f.name in ("job_id", "etag"):
            continue
        value = getattr(job, f.name)
        if value is None:
            continue
        if f.name in JOB_PARTS:
            value = json.dumps(value.to_json(), separators=(",", ":"))
        elif isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, list):
            if not value:
                continue
            value = json.dumps([item.to_json() if hasattr(item, "to_json") else item for item in value],
                               separators=(",", ":"), default=str)
        entity[_camel(f.name)] = value
    return entity


def job_from_entity(entity: Mapping[str, Any]) -> Job:
    """The job a row holds; columns the row lacks take their defaults, columns the job lacks are ignored."""
    values: JsonObject = {"job_id": entity["RowKey"]}
    for f in fields(Job):
        if f.name in ("job_id", "etag"):
            continue
        key = _camel(f.name)
        if key in entity:
            values[f.name] = entity[key]
    values["kind"] = JobKind(values["kind"])
    values["state"] = JobState(values["state"])
    values["trigger"] = Trigger(values["trigger"])
    for name in _DATETIME_FIELDS:
        if name in values:
            values[name] = from_iso(values[name])
    for name in _INT_FIELDS:
        if values.get(name) is not None:
            values[name] = int(values[name])
    _read_json_columns(str(entity["RowKey"]), values)
    job = Job(**values)
    metadata = getattr(entity, "metadata", None) or {}
    job.etag = metadata.get("etag")
    return job


def _read_json_columns(job_id: str, values: JsonObject) -> None:
    """The row's JSON columns as the job's typed lists and parts."""
    for name, read in _JSON_COLUMNS.items():
        if name in values:
            values[name] = _json_list(job_id, name, values[name], read)
    for name, part in JOB_PARTS.items():
        if name in values:
            values[name] = part.from_json(_json_object(values[name]))


def _json_list(job_id: str, name: str, text: Any, read: Any) -> list[Any]:
    """A JSON column of a job row; a column that does not read (never written so by apim-dr) counts as empty."""
    try:
        items = json.loads(text) if isinstance(text, str) else None
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return [read(item) for item in items]
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        logger.warning("job %s: column %s does not read (%s); taken as empty", job_id, _camel(name), e)
        return []


def _json_object(text: object) -> JsonObject:
    """A part's JSON column, defensively: anything but a JSON object reads as an empty part."""
    try:
        data = json.loads(str(text))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


@translates(Service.STORAGE)
class TableJobStore:
    """:class:`~dr_core.ports.JobStore` in the table."""

    what = _WHAT

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def create(self, job: Job) -> Job:
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
        chunks: list[tuple[str, list[tuple[Job, JsonObject]]]] = []
        by_partition: dict[str, list[tuple[Job, JsonObject]]] = {}
        for job in jobs:
            entity = job_to_entity(job)
            by_partition.setdefault(entity["PartitionKey"], []).append((job, entity))
        for partition, rows in by_partition.items():
            chunks += [(partition, rows[i:i + _TRANSACTION_LIMIT]) for i in range(0, len(rows), _TRANSACTION_LIMIT)]

        def submit(chunk: list[tuple[Job, JsonObject]]) -> bool:
            try:
                self._table.submit_transaction([("create", entity) for _, entity in chunk])
            except TableTransactionError as e:
                logger.info("job batch of %d hit existing rows (%s)", len(chunk), getattr(e, "error_code", ""))
                return False
            return True

        outcomes = parallel_map(submit, [chunk for _, chunk in chunks], max_workers=_PARALLEL_TRANSACTIONS,
                                name="table-batch")
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
        try:
            entity = self._table.get_entity(job_partition(kind, slot), job_id)
        except ResourceNotFoundError:
            return None
        return job_from_entity(entity)

    def update(self, job: Job) -> Job:
        if not job.etag:
            raise ValueError(f"job {job.job_id} has no ETag; read it before updating")
        try:
            metadata = self._table.update_entity(
                job_to_entity(job), mode=UpdateMode.REPLACE, etag=job.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as e:
            raise JobConflictError(f"job {job.job_id} changed meanwhile") from e
        job.etag = metadata.get("etag")
        return job

    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime) -> list[Job]:
        """One exact partition query per kind and day, newest day first."""
        partitions = [job_partition(k, now - timedelta(days=d)) for d in range(days) for k in kinds]
        return [job_from_entity(entity) for partition in partitions
                for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})]


# -- restore locks -------------------------------------------------------------------------------------------
def _lock_key(target: ApimResourceId) -> str:
    return hashlib.sha256(target.key.encode()).hexdigest()[:32]


@translates(Service.STORAGE)
class TableRestoreLocks:
    """:class:`~dr_core.ports.RestoreLocks` in the table: one row per target in the ``restore-lock`` partition."""

    what = _WHAT

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def lock_holder(self, target: ApimResourceId) -> LockHolder | None:
        try:
            row = self._table.get_entity(LOCK_PARTITION, _lock_key(target))
        except ResourceNotFoundError:
            return None
        return LockHolder(str(row["JobId"]), str(row.metadata["etag"]))

    def create_lock(self, target: ApimResourceId, job_id: str) -> bool:
        try:
            self._table.create_entity(self._lock_row(target, job_id))
        except ResourceExistsError:
            return False
        return True

    def replace_lock(self, target: ApimResourceId, job_id: str, *, etag: str) -> bool:
        try:
            self._table.update_entity(self._lock_row(target, job_id), mode=UpdateMode.REPLACE, etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def delete_lock(self, target: ApimResourceId, *, etag: str) -> None:
        try:
            self._table.delete_entity(LOCK_PARTITION, _lock_key(target), etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
        except AzureError:
            logger.info("restore lock of %s not released now; the next restore takes it over", target)

    @staticmethod
    def _lock_row(target: ApimResourceId, job_id: str) -> dict[str, str]:
        return {"PartitionKey": LOCK_PARTITION, "RowKey": _lock_key(target), "JobId": job_id, "Target": str(target)}


# -- records -------------------------------------------------------------------------------------------------
@translates(Service.STORAGE)
class TableRecordStore:
    """:class:`~dr_core.ports.RecordStore` in the table: one partition per record kind, the JSON in ``Data``."""

    what = _WHAT

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get_record(self, kind: RecordKind, key: str) -> StoredRecord | None:
        try:
            row = self._table.get_entity(record_partition(kind), key)
        except ResourceNotFoundError:
            return None
        return _record_from_row(kind, row)

    def put_record(self, record: StoredRecord) -> StoredRecord:
        row = {"PartitionKey": record_partition(record.kind), "RowKey": record.key,
               "Data": json.dumps(record.data, separators=(",", ":"), default=str)}
        if len(row["Data"]) > _MAX_RECORD_CHARS:
            raise ValueError(f"record {record.kind}/{record.key} is too large ({len(row['Data'])} characters)")
        try:
            if record.etag is None:
                metadata = self._table.create_entity(row)
            else:
                metadata = self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=record.etag,
                                                     match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as e:
            raise RecordConflictError(f"record {record.kind}/{record.key} changed meanwhile") from e
        record.etag = metadata.get("etag")
        return record

    def records(self, kind: RecordKind) -> list[StoredRecord]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": record_partition(kind)})
        return [_record_from_row(kind, row) for row in rows]


def _record_from_row(kind: RecordKind, row: Any) -> StoredRecord:
    try:
        data = json.loads(row.get("Data") or "{}")
    except ValueError:
        data = {}
    metadata = getattr(row, "metadata", None) or {}
    return StoredRecord(RecordKind(kind), str(row["RowKey"]), data if isinstance(data, dict) else {},
                        metadata.get("etag"))
