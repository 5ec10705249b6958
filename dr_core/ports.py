"""The ports: what the use cases need from the outside world, as SDK-free Protocols, with the values they carry.

The adapters in :mod:`dr_core.azure` implement them with the official Azure SDKs; ``tests/unit/fakes.py``
implements them in memory. Nothing here imports an Azure SDK, so importing a use case never loads one.

==========================  ==========================================================================
port                        what it is
==========================  ==========================================================================
:class:`JobStore`           the job rows; every change conditional (ETag), a lost race raises
                            :class:`JobConflictError`
:class:`RestoreLocks`       one lock row per restore target (one restore at a time into an instance)
:class:`RecordStore`        small JSON records that are not jobs (RPO state, standby syncs, drills, ...)
:class:`WorkQueue`          the messages that resume jobs, each visible after its delay
:class:`BackupStore`        the backup account as the app sees it: blob facts, labels, tag queries, CORS
:class:`ApimManagement`     the ARM calls apim-dr makes on APIM instances
:class:`Notifier`           tells people (a webhook) about failures and events
:class:`~dr_core.kernel.clock.Clock`  the current moment
==========================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol

from dr_core.catalog.entry import CatalogEntry
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.clock import Clock
from dr_core.kernel.errors import ArmError, ConflictError
from dr_core.kernel.events import Event
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.wire import JsonObject

__all__ = [
    "ARM_API_VERSION",
    "ApimManagement",
    "BackupStore",
    "BackupTarget",
    "BlobChecksum",
    "BlobCopier",
    "BlobCopy",
    "BlobFacts",
    "Clock",
    "ConfigPage",
    "ConfigurationReader",
    "ConfigurationSummary",
    "ConfigurationWriter",
    "CopyOutcome",
    "DeleteOutcome",
    "JobConflictError",
    "JobStore",
    "LiveEntity",
    "LockHolder",
    "Notifier",
    "PollResult",
    "RecordConflictError",
    "RecordKind",
    "RecordStore",
    "RestoreLocks",
    "ServiceInfo",
    "StagingStore",
    "StartedOperation",
    "StoredRecord",
    "WorkQueue",
    "WriteOutcome",
]

ARM_API_VERSION = "2024-05-01"  # azure-mgmt-apimanagement 5.x default; recorded in each backup's metadata


class JobConflictError(ConflictError):
    """Someone else changed the job first (ETag mismatch), or a job with its ID exists already."""

    code = "JobConflict"


class RecordConflictError(ConflictError):
    """Someone else changed the record first (ETag mismatch), or it exists already."""

    code = "RecordConflict"


# -- jobs, locks, records -------------------------------------------------------------------------------
class JobStore(Protocol):
    """Job rows. Writes are conditional; a lost race raises :class:`JobConflictError`."""

    def create(self, job: Job) -> Job:
        """Insert a new job; :raises JobConflictError: if its ID exists."""
        ...

    def create_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Insert the jobs that don't exist yet; return the ones created (a re-fired timer creates none)."""
        ...

    def get(self, job_id: str) -> Job | None:
        """The job, or None; :raises ValueError: for a string that is not a job ID."""
        ...

    def update(self, job: Job) -> Job:
        """Replace the job if nobody changed it since it was read; :raises JobConflictError: otherwise."""
        ...

    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime) -> list[Job]:
        """Jobs of ``kinds`` whose slot falls in the last ``days`` days (UTC days, newest first)."""
        ...


class LockHolder(NamedTuple):
    job_id: str
    etag: str


class RestoreLocks(Protocol):
    """One lock row per restore target; the rules (take over an ended holder) are :mod:`dr_core.jobs.locks`'."""

    def lock_holder(self, target: ApimResourceId) -> LockHolder | None:
        """The job holding the target's lock and the lock's ETag, if a lock row exists."""
        ...

    def create_lock(self, target: ApimResourceId, job_id: str) -> bool:
        """Take a free lock; False if a lock row exists."""
        ...

    def replace_lock(self, target: ApimResourceId, job_id: str, *, etag: str) -> bool:
        """Take over a lock row unchanged since ``etag`` was read; False if it changed or vanished."""
        ...

    def delete_lock(self, target: ApimResourceId, *, etag: str) -> None:
        """Remove the lock row if unchanged since ``etag``; a changed or missing row is left alone."""
        ...


class RecordKind(StrEnum):
    """The kinds of records; each is a typed record class of its capability (see :mod:`dr_core.records`)."""

    RPO = "rpo"  # dr_core.posture.record.RpoRecord, one per protected instance
    STANDBY = "standby"  # dr_core.standby.record.StandbyRecord, one per standby
    DRILL = "drill"  # dr_core.drills.record.DrillRecord, one per drill (key: its restore job ID)
    RETENTION = "retention"  # dr_core.retention.cursor.RetentionCursor, one
    COPY = "copy"  # dr_core.copies.record.CopyRecord, one per instance whose backups are copied
    ARM_BUDGET = "arm-budget"  # dr_core.jobs.pacing.BudgetRecord, one per subscription (ARM reads apim-dr spends)


@dataclass
class StoredRecord:
    """A record as the store keeps it: JSON ``data`` (at most ~30,000 characters) and the ETag it was read with.

    ``etag`` None creates; otherwise the write replaces the record if nobody changed it since.
    """

    kind: RecordKind
    key: str
    data: JsonObject = field(default_factory=dict)
    etag: str | None = None


class RecordStore(Protocol):
    def get_record(self, kind: RecordKind, key: str) -> StoredRecord | None:
        """The record, or None."""
        ...

    def put_record(self, record: StoredRecord) -> StoredRecord:
        """Create (``etag`` None) or replace-if-unchanged; :raises RecordConflictError: if someone was first."""
        ...

    def records(self, kind: RecordKind) -> list[StoredRecord]:
        """Every record of a kind."""
        ...


# -- the work queue --------------------------------------------------------------------------------------
class WorkQueue(Protocol):
    """Where the next step of a job is announced: ``(message, visibility delay in seconds)``."""

    def send(self, messages: Sequence[tuple[WorkMessage, int]]) -> None:
        """Send every message; a message becomes visible after its delay."""
        ...


# -- the backup account ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlobFacts:
    size: int
    created: datetime | None


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    MISSING = "missing"
    IMMUTABLE = "immutable"  # a time-based retention policy or a legal hold protects it


class BackupStore(Protocol):
    """The backup account: APIM writes and reads the backups; the app looks at them, labels them, and prunes."""

    def facts(self, container: str, blob_name: str) -> BlobFacts | None:
        """Size and creation time of a blob; None if it does not exist."""
        ...

    def label(self, container: str, blob_name: str, *, tags: dict[str, str], metadata: dict[str, str]) -> None:
        """Put the catalog's index tags and the human-readable metadata on a finished backup (idempotent)."""
        ...

    def tags(self, container: str, blob_name: str) -> dict[str, str] | None:
        """A blob's index tags; None if the blob does not exist."""
        ...

    def find(self, container: str, service_name: str) -> list[CatalogEntry]:
        """Every finished backup of ``service_name`` in ``container``, newest first (one index-tag query)."""
        ...

    def finished_names(self, container: str, service_name: str) -> list[str]:
        """Names of every blob of ``service_name`` labelled finished, with or without the catalog tag."""
        ...

    def set_tags(self, container: str, blob_name: str, tags: dict[str, str]) -> None:
        """Replace a blob's index tags (metadata untouched); immutability allows it."""
        ...

    def cors_rule_count(self) -> int:
        """How many CORS rules the account's Blob service has (APIM backup fails while any exist)."""
        ...

    def delete(self, container: str, blob_name: str) -> DeleteOutcome:
        """Delete a backup (retention only); immutability is an outcome, not an error."""
        ...

    def put_json(self, container: str, blob_name: str, data: JsonObject) -> None:
        """Write a small JSON document beside the backups (e.g. what a backup contained)."""
        ...

    def get_json(self, container: str, blob_name: str) -> JsonObject | None:
        """Read such a document; None if it does not exist or is not a JSON object."""
        ...

    def put_document(self, container: str, blob_name: str, data: bytes, *, tags: dict[str, str],
                     metadata: dict[str, str]) -> None:
        """Create a recovery point's blob with its index tags (never overwrite: an existing name is a conflict)."""
        ...

    def get_document(self, container: str, blob_name: str, *, max_bytes: int) -> bytes | None:
        """A recovery point's bytes; None if it does not exist. :raises ValueError: larger than ``max_bytes``."""
        ...


class StagingStore(Protocol):
    """Scratch space in the app's own storage for work that spans invocations (a snapshot's reads so far)."""

    def put(self, name: str, data: bytes) -> None:
        """Write (or overwrite) ``name``."""
        ...

    def get(self, name: str) -> bytes | None:
        """``name``'s bytes; None if it does not exist."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose name starts with ``prefix``; how many were deleted."""
        ...


# -- the copy account ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlobChecksum:
    """What Blob Storage reports of a blob's content: its size and, when it has one, its Content-MD5 (base64)."""

    size: int
    content_md5: str | None
    etag: str | None = None


class CopyOutcome(StrEnum):
    COPIED = "copied"  # copied now
    PRESENT = "present"  # the copy existed already (an earlier run); never overwritten
    SOURCE_MISSING = "source-missing"  # nothing to copy (a sidecar that was never written)


@dataclass(frozen=True)
class BlobCopy:
    """One blob copied from the backup account to the copy account (same container and name), as seen after."""

    blob_name: str
    outcome: CopyOutcome
    source: BlobChecksum | None
    copy: BlobChecksum | None  # the copy as read back (None: not there)
    method: str = ""  # "put-blob-from-url" | "put-block-from-url" | "" (nothing sent)
    service_md5: str | None = None  # the Content-MD5 Blob Storage computed over the bytes it wrote (base64)


class BlobCopier(Protocol):
    """Server-side copies from the backup account to the copy account: the destination reads the source with
    the app's own token, no data passes through the app, and nothing existing is ever overwritten."""

    def copy(self, container: str, blob_name: str) -> BlobCopy:
        """Copy one blob (unless the copy exists) and read both sides back."""
        ...


# -- ARM -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupTarget:
    """Where APIM writes or reads a backup, and how it reaches the storage account."""

    storage_account: str
    container: str
    blob_name: str
    access_type: str
    client_id: str | None = None
    access_key: str | None = None  # only for AccessKey; never logged or stored


@dataclass(frozen=True)
class StartedOperation:
    location: str | None  # None when ARM finished synchronously (200)
    retry_after: float
    resource: JsonObject | None = None


@dataclass(frozen=True)
class PollResult:
    status: Literal["running", "succeeded", "failed", "retry"]
    retry_after: float
    resource: JsonObject | None = None
    error: ArmError | None = None


@dataclass(frozen=True)
class ServiceInfo:
    resource_id: ApimResourceId
    sku: str
    sku_capacity: int | None
    location: str
    provisioning_state: str
    identity_type: str | None
    user_assigned_client_ids: tuple[str, ...]
    tags: dict[str, str]

    @property
    def has_system_identity(self) -> bool:
        return "systemassigned" in (self.identity_type or "").replace(" ", "").lower()


@dataclass(frozen=True)
class ConfigurationSummary:
    """What an instance's configuration holds, by name: its APIs, products and named values.

    What a restore drill compares: the backup's source at backup time (its manifest) against the
    drill instance after the restore. Names are ARM resource names (``echo-api``), sorted.
    """

    apis: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    named_values: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {"apis": list(self.apis), "products": list(self.products), "namedValues": list(self.named_values)}


class ApimManagement(Protocol):
    """The management-plane calls apim-dr makes. Refusals raise :class:`~dr_core.kernel.errors.ArmCallError`,
    an unreachable ARM :class:`~dr_core.kernel.errors.AzureUnavailableError`."""

    def begin_backup(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        """Send ``POST .../backup`` and return without waiting (a lost answer: ``NoAnswerError``)."""
        ...

    def begin_restore(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        """Send ``POST .../restore`` and return without waiting (a lost answer: ``NoAnswerError``)."""
        ...

    def poll_once(self, instance: ApimResourceId, location: str) -> PollResult:
        """One ``GET`` of an operation's ``Location``; anything short of an answer is ``retry``."""
        ...

    def get_service(self, instance: ApimResourceId) -> ServiceInfo:
        """The instance's tier, region, state and identities."""
        ...

    def list_tagged(self, subscription_id: str, tag: tuple[str, str]) -> list[ServiceInfo]:
        """Every instance in the subscription carrying ``tag``."""
        ...

    def configuration_summary(self, instance: ApimResourceId) -> ConfigurationSummary:
        """Names of the instance's APIs, products and named values (every page of each list)."""
        ...


@dataclass(frozen=True)
class ConfigPage:
    """One answer of a configuration read: ``(name, REST body without read-only fields)`` pairs, and the
    continuation of a list that has more pages (None: this was the last, or a single item's GET)."""

    entries: tuple[tuple[str, JsonObject], ...] = ()
    next_page: str | None = None


class ConfigurationReader(Protocol):
    """ARM reads of an instance's configuration (its child resources), one request per call."""

    def read(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, page: str | None = None,
             single: bool = False) -> ConfigPage:
        """One page of the items of ``kind`` (a snapshot item kind's key) below ``names`` (the parents' names),
        or with ``single`` the one item ``names`` name (an empty page when it does not exist). The pseudo-kind
        ``api-revisions`` lists an API's revisions (names ``api;rev=N``, body ``{"isCurrent": ...}``).

        :raises ArmCallError: ARM refused (403, 404 of a parent, 429 with ``retry_after``).
        :raises AzureUnavailableError: ARM unreachable.
        """
        ...


@dataclass(frozen=True)
class LiveEntity:
    """One item as the instance holds it now: its REST body (no read-only fields) and its ETag."""

    body: JsonObject
    etag: str | None


@dataclass(frozen=True)
class WriteOutcome:
    """A PUT or DELETE ARM accepted: done, or (a long-running create) still running at ``location``."""

    done: bool = True
    location: str | None = None
    retry_after: float = 0.0


class ConfigurationWriter(Protocol):
    """ARM writes of an instance's configuration items, each conditional on the item's ETag."""

    def get(self, instance: ApimResourceId, kind: str, names: tuple[str, ...]) -> LiveEntity | None:
        """The item and its ETag; None if it does not exist."""
        ...

    def put(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], body: JsonObject, *,
            if_match: str | None) -> WriteOutcome:
        """Create or update the item (``If-Match``: the ETag it must still have; None: create).

        :raises ArmCallError: e.g. 412 ``PreconditionFailed`` when the item changed, 400 naming a field.
        """
        ...

    def delete(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, if_match: str) -> WriteOutcome:
        """Delete the item if it still has ``if_match`` (``*``: any). A missing item is done."""
        ...

    def poll(self, instance: ApimResourceId, location: str) -> WriteOutcome:
        """One GET of a long-running write's ``Location``."""
        ...


# -- people ----------------------------------------------------------------------------------------------
class Notifier(Protocol):
    def announce(self, job: Job) -> None:
        """Tell people about a failed or timed-out job. Raise on failure to deliver."""
        ...

    def announce_event(self, event: Event) -> None:
        """Tell people about an event (an RPO breach, a failed drill, ...). Raise on failure to deliver."""
        ...
