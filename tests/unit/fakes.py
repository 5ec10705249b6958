"""In-memory stand-ins for the ports (dr_core.ports): the table (jobs, restore locks, records), the work queue,
the backup store, ARM, the notifier.

They keep the contracts of the real adapters (conditional updates with ETags, missing blobs
as ``None``, ARM refusals as ``ArmCallError``) so the worker, planner, restore and HTTP
handlers can be tested branch by branch in milliseconds. The real adapters are covered by
the integration and end-to-end suites against Azurite and the APIM emulator.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dr_core.azure.clients import AzureClients
from dr_core.catalog.entry import CatalogEntry
from dr_core.catalog.tags import entry_from_tags
from dr_core.context import DrContext
from dr_core.jobs.ids import JobKind, parse_job_id
from dr_core.jobs.job import Job
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.clock import ManualClock
from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, ConflictError, DrError
from dr_core.kernel.events import Event
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.settings import Settings, load_settings
from dr_core.ports import (
    BackupTarget,
    BlobChecksum,
    BlobCopy,
    BlobFacts,
    ConfigPage,
    ConfigurationSummary,
    CopyOutcome,
    DeleteOutcome,
    JobConflictError,
    LiveEntity,
    LockHolder,
    PollResult,
    RecordConflictError,
    RecordKind,
    ServiceInfo,
    StartedOperation,
    StoredRecord,
    WriteOutcome,
)

SUB = "00000000-0000-0000-0000-0000000000cc"
T0 = datetime(2026, 11, 30, 2, 0, 0, tzinfo=UTC)


def rid(name: str, rg: str = "rg-apim") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def settings(instances: list[Any] | None = None, **extra: str) -> Settings:
    values = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": "apimdrbackups",
        "APIM_DR_INSTANCES": json.dumps(instances if instances is not None else [
            {"resourceId": rid("apim-prod"), "alias": "prod", "standby": rid("apim-dr")},
            rid("apim-dev"),
        ]),
        "APIM_DR_MAX_POLL_DELAY_SECONDS": "300",
        **extra,
    }
    return load_settings(values)


class FakeTables:
    """The app's table: jobs, restore locks and records (JobStore, RestoreLocks and RecordStore in one)."""

    def __init__(self) -> None:
        self.rows: dict[str, Job] = {}
        self.locks: dict[str, tuple[str, str]] = {}
        self._etags = itertools.count(1)
        self.conflict_next_update = False
        self.updates = 0
        self.record_rows: dict[tuple[RecordKind, str], StoredRecord] = {}
        self.record_puts = 0
        self.conflict_next_record_put = False  # as if another writer had changed the record just before
        self.record_errors: dict[RecordKind, DrError] = {}  # kind -> error raised when that kind is read

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def create(self, job: Job) -> Job:
        if job.job_id in self.rows:
            raise JobConflictError(f"job {job.job_id} already exists")
        parse_job_id(job.job_id)
        job.etag = self._etag()
        self.rows[job.job_id] = copy.deepcopy(job)
        return job

    def create_many(self, jobs: Iterable[Job]) -> list[Job]:
        created = []
        for job in jobs:
            with contextlib.suppress(JobConflictError):
                created.append(self.create(job))
        return created

    def get(self, job_id: str) -> Job | None:
        parse_job_id(job_id)
        row = self.rows.get(job_id)
        return copy.deepcopy(row) if row is not None else None

    def update(self, job: Job) -> Job:
        self.updates += 1
        current = self.rows.get(job.job_id)
        if self.conflict_next_update or current is None or current.etag != job.etag:
            self.conflict_next_update = False
            raise JobConflictError(f"job {job.job_id} changed meanwhile")
        job.etag = self._etag()
        self.rows[job.job_id] = copy.deepcopy(job)
        return job

    def recent_jobs(self, kinds: Iterable[JobKind], *, days: int, now: datetime) -> list[Job]:
        wanted = set(kinds)
        return [copy.deepcopy(job) for job in list(self.rows.values())
                if job.kind in wanted and now - job.slot < timedelta(days=days)]

    def lock_holder(self, target: ApimResourceId) -> LockHolder | None:
        holder = self.locks.get(target.key)
        return None if holder is None else LockHolder(*holder)

    def create_lock(self, target: ApimResourceId, job_id: str) -> bool:
        if target.key in self.locks:
            return False
        self.locks[target.key] = (job_id, self._etag())
        return True

    def replace_lock(self, target: ApimResourceId, job_id: str, *, etag: str) -> bool:
        current = self.locks.get(target.key)
        if current is None or current[1] != etag:
            return False
        self.locks[target.key] = (job_id, self._etag())
        return True

    def delete_lock(self, target: ApimResourceId, *, etag: str) -> None:
        current = self.locks.get(target.key)
        if current is not None and current[1] == etag:
            del self.locks[target.key]

    def get_record(self, kind: RecordKind, key: str) -> StoredRecord | None:
        if kind in self.record_errors:
            raise self.record_errors[kind]
        record = self.record_rows.get((kind, key))
        return copy.deepcopy(record) if record is not None else None

    def put_record(self, record: StoredRecord) -> StoredRecord:
        self.record_puts += 1
        if self.conflict_next_record_put:
            self.conflict_next_record_put = False
            raise RecordConflictError(f"record {record.kind}/{record.key} changed meanwhile")
        current = self.record_rows.get((record.kind, record.key))
        if (record.etag is None and current is not None) or (
                record.etag is not None and (current is None or current.etag != record.etag)):
            raise RecordConflictError(f"record {record.kind}/{record.key} changed meanwhile")
        record.etag = self._etag()
        self.record_rows[(record.kind, record.key)] = copy.deepcopy(record)
        return record

    def records(self, kind: RecordKind) -> list[StoredRecord]:
        if kind in self.record_errors:
            raise self.record_errors[kind]
        return [copy.deepcopy(r) for (k, _), r in self.record_rows.items() if k == kind]

    # -- for tests ---------------------------------------------------------------------------------
    def put(self, job: Job) -> Job:
        """Store ``job`` as it is (any state) and return a copy carrying its ETag."""
        job.etag = self._etag()
        self.rows[job.job_id] = copy.deepcopy(job)
        return copy.deepcopy(job)


class FakeWorkQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[WorkMessage, int]] = []

    def send(self, messages: Any) -> None:
        self.sent.extend(messages)

    def ops(self) -> list[tuple[str, int]]:
        return [(m.op, d) for m, d in self.sent]

    def take(self) -> list[tuple[WorkMessage, int]]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class FakeBlob:
    size: int
    created: datetime
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    content_md5: str | None = None  # base64, as Blob Storage reports it (None: written in blocks)


class FakeBackupStore:
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], FakeBlob] = {}
        self.cors_rules = 0
        self.calls: list[str] = []
        self.immutable: set[tuple[str, str]] = set()
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}
        self.find_errors: dict[str, Exception] = {}  # service name -> what find() raises for it
        self.unindexed: set[str] = set()  # blob names find() does not see yet (Azure's tag index lags)
        # Scripted answers of delete() per (container, name): an outcome to report, or an error to raise.
        self.delete_answers: dict[tuple[str, str], DeleteOutcome | DrError] = {}
        self.deleted: list[tuple[str, str]] = []
        self.contents: dict[tuple[str, str], bytes] = {}  # documents written with put_document
        self.outage: DrError | None = None  # raised by every read (the account cannot be reached)

    def _reachable(self) -> None:
        if self.outage is not None:
            raise self.outage

    def add(self, container: str, name: str, *, size: int = 1024, created: datetime = T0,
            tags: dict[str, str] | None = None) -> FakeBlob:
        blob = FakeBlob(size, created, dict(tags or {}))
        self.blobs[(container, name)] = blob
        return blob

    def facts(self, container: str, blob_name: str) -> BlobFacts | None:
        self.calls.append("facts")
        blob = self.blobs.get((container, blob_name))
        return None if blob is None else BlobFacts(blob.size, blob.created)

    def label(self, container: str, blob_name: str, *, tags: dict[str, str], metadata: dict[str, str]) -> None:
        self.calls.append("label")
        blob = self.blobs[(container, blob_name)]
        blob.metadata = dict(metadata)
        blob.tags = dict(tags)

    def tags(self, container: str, blob_name: str) -> dict[str, str] | None:
        self._reachable()
        blob = self.blobs.get((container, blob_name))
        return None if blob is None else dict(blob.tags)

    def find(self, container: str, service_name: str) -> list[CatalogEntry]:
        self.calls.append("find")
        self._reachable()
        if service_name in self.find_errors:
            raise self.find_errors[service_name]
        # As the catalog query: the service's blobs that carry the catalog tag (older labels lack it).
        entries = [entry_from_tags(c, name, blob.tags) for (c, name), blob in self.blobs.items()
                   if c == container and blob.tags.get("apimdr_service") == service_name.lower()
                   and "apimdr_catalog" in blob.tags and name not in self.unindexed]
        found = [e for e in entries if e is not None]
        return sorted(found, key=lambda e: e.created, reverse=True)

    def finished_names(self, container: str, service_name: str) -> list[str]:
        self.calls.append("finished_names")
        self._reachable()
        if service_name in self.find_errors:
            raise self.find_errors[service_name]
        return [name for (c, name), blob in self.blobs.items()
                if c == container and blob.tags.get("apimdr_service") == service_name.lower()
                and blob.tags.get("apimdr_state") == "succeeded" and name not in self.unindexed]

    def set_tags(self, container: str, blob_name: str, tags: dict[str, str]) -> None:
        self.calls.append("set_tags")
        self.blobs[(container, blob_name)].tags = dict(tags)

    def cors_rule_count(self) -> int:
        self._reachable()
        return self.cors_rules

    def delete(self, container: str, blob_name: str) -> DeleteOutcome:
        self.calls.append("delete")
        key = (container, blob_name)
        answer = self.delete_answers.get(key)
        if isinstance(answer, DrError):
            raise answer
        if answer is not None:
            return answer
        if key in self.immutable:
            return DeleteOutcome.IMMUTABLE
        found = self.blobs.pop(key, None) is not None
        found = self.documents.pop(key, None) is not None or found
        if found:
            self.deleted.append(key)
        return DeleteOutcome.DELETED if found else DeleteOutcome.MISSING

    def put_json(self, container: str, blob_name: str, data: dict[str, Any]) -> None:
        self.documents[(container, blob_name)] = json.loads(json.dumps(data, default=str))

    def get_json(self, container: str, blob_name: str) -> dict[str, Any] | None:
        document = self.documents.get((container, blob_name))
        return copy.deepcopy(document) if document is not None else None

    def put_document(self, container: str, blob_name: str, data: bytes, *, tags: dict[str, str],
                     metadata: dict[str, str]) -> None:
        self.calls.append("put_document")
        if (container, blob_name) in self.blobs:
            raise ConflictError(f"{container}/{blob_name} exists already")
        blob = self.add(container, blob_name, size=len(data), tags=tags)
        blob.metadata = dict(metadata)
        self.contents[(container, blob_name)] = bytes(data)

    def get_document(self, container: str, blob_name: str, *, max_bytes: int) -> bytes | None:
        data = self.contents.get((container, blob_name))
        if data is not None and len(data) > max_bytes:
            raise ValueError(f"{container}/{blob_name} is {len(data)} bytes; at most {max_bytes}")
        return data


class FakeStagingStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.writes = 0
        self.fail_puts = 0  # the next N puts raise (storage unreachable)

    def put(self, name: str, data: bytes) -> None:
        if self.fail_puts:
            self.fail_puts -= 1
            raise AzureUnavailableError("staging container unreachable (fake)")
        self.writes += 1
        self.blobs[name] = bytes(data)

    def get(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def delete_prefix(self, prefix: str) -> int:
        gone = [n for n in self.blobs if n.startswith(prefix)]
        for name in gone:
            del self.blobs[name]
        return len(gone)


class FakeConfigurationReader:
    """An instance's configuration as ARM serves it: items by item ID, lists paged ``page_size`` at a time.

    Refuses what ARM would: an unknown kind, a list below a parent that does not exist (404), a page token it
    did not hand out. ``errors`` are raised by the next reads, one each (429s, 403s, outages).
    """

    def __init__(self, page_size: int = 2) -> None:
        self.configurations: dict[str, dict[str, dict[str, Any]]] = {}  # service -> item ID -> REST body
        self.page_size = page_size
        self.errors: list[ArmError | DrError] = []
        self.reads: list[tuple[str, str, tuple[str, ...], str | None, bool]] = []

    def add(self, service: str, item_id: str, **properties: Any) -> None:
        self.configurations.setdefault(service, {})[item_id] = {"properties": properties}

    def read(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, page: str | None = None,
             single: bool = False) -> ConfigPage:
        from dr_core.snapshots.kinds import kind_named, parse_item_id

        self.reads.append((instance.service_name, kind, names, page, single))
        if self.errors:
            error = self.errors.pop(0)
            raise error if isinstance(error, DrError) else ArmCallError(error)
        items = self.configurations.get(instance.service_name)
        if items is None:
            raise ArmCallError(ArmError("ResourceNotFound", f"The Resource '{instance}' was not found.", 404))
        parsed = {key: parse_item_id(key) for key in items}
        if single:
            key = kind_named(kind).item_id(*names)
            body = items.get(str(key))
            return ConfigPage(((key.name, body),)) if body is not None else ConfigPage()
        if kind == "api-revisions":
            base = names[0]
            found = [(i.names[0], {"isCurrent": i.names[0] == base}) for i in parsed.values()
                     if i.kind.key == "apis" and i.names[0].split(";rev=")[0] == base]
        else:
            item_kind = kind_named(kind)
            if names and item_kind.parent is not None:
                parent = kind_named(item_kind.parent).item_id(*names)
                if str(parent) not in items:
                    raise ArmCallError(ArmError("ResourceNotFound", f"{parent} was not found.", 404))
            found = [(i.names[-1], items[key]) for key, i in sorted(parsed.items())
                     if i.kind is item_kind and i.names[:-1] == names
                     and not (kind == "apis" and ";rev=" in i.names[0])]
        start = int(page) if page is not None else 0
        if page is not None and not (page.isdigit() and 0 < start <= len(found)):
            raise ArmCallError(ArmError("InvalidContinuation", f"page {page!r} was never handed out", 400))
        chunk = found[start:start + self.page_size]
        following = start + self.page_size
        return ConfigPage(tuple((n, copy.deepcopy(b)) for n, b in chunk),
                          str(following) if following < len(found) else None)


class FakeBlobCopier:
    """Server-side copies between two fake stores (blobs and JSON documents alike): never overwrites, and can be
    scripted to fail on a blob (``errors``) or to leave a copy of the wrong size (``short``)."""

    def __init__(self, source: FakeBackupStore, target: FakeBackupStore) -> None:
        self.source = source
        self.target = target
        self.calls: list[str] = []
        self.errors: dict[str, DrError] = {}
        self.short: set[str] = set()

    def _facts(self, store: FakeBackupStore, container: str, name: str) -> BlobChecksum | None:
        blob = store.blobs.get((container, name))
        if blob is not None:
            return BlobChecksum(blob.size, blob.content_md5, f'"{id(blob)}"')
        document = store.documents.get((container, name))
        if document is not None:
            return BlobChecksum(len(json.dumps(document)), None, '"doc"')
        return None

    def copy(self, container: str, blob_name: str) -> BlobCopy:
        self.calls.append(blob_name)
        if blob_name in self.errors:
            raise self.errors[blob_name]
        source = self._facts(self.source, container, blob_name)
        if source is None:
            return BlobCopy(blob_name, CopyOutcome.SOURCE_MISSING, None, None)
        outcome = CopyOutcome.PRESENT
        if self._facts(self.target, container, blob_name) is None:
            outcome = CopyOutcome.COPIED
            original = self.source.blobs.get((container, blob_name))
            if original is not None:  # the copy: same bytes and properties, no tags (catalogued after verifying)
                size = original.size - 1 if blob_name in self.short else original.size
                self.target.blobs[(container, blob_name)] = FakeBlob(size, original.created,
                                                                     content_md5=original.content_md5)
            else:
                self.target.documents[(container, blob_name)] = copy.deepcopy(
                    self.source.documents[(container, blob_name)])
        return BlobCopy(blob_name, outcome, source, self._facts(self.target, container, blob_name),
                        "put-blob-from-url" if outcome is CopyOutcome.COPIED else "",
                        source.content_md5 if outcome is CopyOutcome.COPIED else None)


Answer = StartedOperation | ArmError | Exception


class FakeArm:
    """Scripted ARM: services by name, then queued answers for starts and polls."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceInfo] = {}
        self.start_answers: list[Answer] = []
        self.poll_answers: list[PollResult] = []
        self.get_errors: list[ArmError | DrError] = []
        self.calls: list[tuple[str, str]] = []
        # What each service's configuration holds (names); a restore copies nothing by itself: tests set it.
        self.configurations: dict[str, ConfigurationSummary] = {}
        self.summary_errors: list[ArmError | DrError] = []
        self.summary_calls: list[str] = []  # apart from ``calls``: reads that follow a job, not its steps

    def add_service(self, name: str, *, sku: str = "Standard", state: str = "Succeeded",
                    identity: str | None = "SystemAssigned", client_ids: tuple[str, ...] = (),
                    tags: dict[str, str] | None = None) -> ServiceInfo:
        info = ServiceInfo(resource_id=ApimResourceId.parse(rid(name)), sku=sku, sku_capacity=1,
                           location="West Europe", provisioning_state=state, identity_type=identity,
                           user_assigned_client_ids=client_ids, tags=dict(tags or {}))
        self.services[name] = info
        return info

    def _answer_start(self, action: str, instance: ApimResourceId) -> StartedOperation:
        self.calls.append((action, instance.service_name))
        answer = self.start_answers.pop(0) if self.start_answers else StartedOperation(
            location=f"https://management.example/op/{len(self.calls)}", retry_after=5)
        if isinstance(answer, ArmError):
            raise ArmCallError(answer)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def begin_backup(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        return self._answer_start("backup", instance)

    def begin_restore(self, instance: ApimResourceId, target: BackupTarget) -> StartedOperation:
        return self._answer_start("restore", instance)

    def poll_once(self, instance: ApimResourceId, location: str) -> PollResult:
        self.calls.append(("poll", instance.service_name))
        return self.poll_answers.pop(0) if self.poll_answers else PollResult("running", 5)

    def get_service(self, instance: ApimResourceId) -> ServiceInfo:
        self.calls.append(("get", instance.service_name))
        if self.get_errors:
            error = self.get_errors.pop(0)
            raise error if isinstance(error, DrError) else ArmCallError(error)
        info = self.services.get(instance.service_name)
        if info is None:
            raise ArmCallError(ArmError("ResourceNotFound", f"The Resource '{instance}' was not found.", 404))
        return info

    def list_tagged(self, subscription_id: str, tag: tuple[str, str]) -> list[ServiceInfo]:
        self.calls.append(("list", subscription_id))
        name, value = tag[0].lower(), tag[1].lower()
        return [s for s in self.services.values()
                if {k.lower(): v.lower() for k, v in s.tags.items()}.get(name) == value]


    def configuration_summary(self, instance: ApimResourceId) -> ConfigurationSummary:
        self.summary_calls.append(instance.service_name)
        if self.summary_errors:
            error = self.summary_errors.pop(0)
            raise error if isinstance(error, DrError) else ArmCallError(error)
        if instance.service_name not in self.services and instance.service_name not in self.configurations:
            raise ArmCallError(ArmError("ResourceNotFound", f"The Resource '{instance}' was not found.", 404))
        return self.configurations.get(instance.service_name, ConfigurationSummary())


class FakeNotifier:
    def __init__(self) -> None:
        self.announced: list[str] = []
        self.events: list[Event] = []
        self.fail = False

    def announce(self, job: Job) -> None:
        if self.fail:
            raise RuntimeError("webhook answered HTTP 500")
        self.announced.append(job.job_id)

    def announce_event(self, event: Event) -> None:
        if self.fail:
            raise RuntimeError("webhook answered HTTP 500")
        self.events.append(event)


class FakeConfigurationWriter:
    """ARM's writes of configuration items, over the reader's configurations, with ETags as ARM keeps them.

    Refuses what ARM refuses: a stale or unknown ``If-Match`` (412), a write below a parent that does not exist
    (404). ``lro`` kinds answer 202 + Location and are done after ``lro_polls`` polls. ``errors`` are raised by
    the next writes, one each; ``before_put`` runs just before a PUT lands (someone else's change, say).
    """

    def __init__(self, reader: FakeConfigurationReader) -> None:
        self.reader = reader
        self.etags: dict[tuple[str, str], int] = {}
        self.errors: list[ArmError | DrError] = []
        self.writes: list[tuple[str, str, str, str | None]] = []  # (service, action, item, If-Match)
        self.gets = 0
        self.lro: set[str] = set()
        self.lro_polls = 1
        self._running: dict[str, list[int]] = {}
        self.before_put: Any = None

    def _key(self, instance: ApimResourceId, kind: str, names: tuple[str, ...]) -> tuple[str, str]:
        from dr_core.snapshots.kinds import kind_named

        return instance.service_name, str(kind_named(kind).item_id(*names))

    def etag(self, service: str, item: str) -> str:
        return f'"{self.etags.get((service, item), 1)}"'

    def get(self, instance: ApimResourceId, kind: str, names: tuple[str, ...]) -> LiveEntity | None:
        self.gets += 1
        service, item = self._key(instance, kind, names)
        body = self.reader.configurations.get(service, {}).get(item)
        return None if body is None else LiveEntity(copy.deepcopy(body), self.etag(service, item))

    def put(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], body: dict[str, Any], *,
            if_match: str | None) -> WriteOutcome:
        from dr_core.snapshots.kinds import kind_named

        service, item = self._key(instance, kind, names)
        self.writes.append((service, "put", item, if_match))
        if self.before_put is not None:
            self.before_put(service, item)
        if self.errors:
            error = self.errors.pop(0)
            raise error if isinstance(error, DrError) else ArmCallError(error)
        items = self.reader.configurations.setdefault(service, {})
        parent = kind_named(kind).item_id(*names).parent
        if parent is not None and str(parent) not in items:
            raise ArmCallError(ArmError("ResourceNotFound", f"{parent} was not found.", 404))
        if if_match is not None and (item not in items or if_match not in ("*", self.etag(service, item))):
            raise ArmCallError(ArmError("PreconditionFailed", "The entity's ETag does not match.", 412))
        items[item] = copy.deepcopy(body) if not kind_named(kind).link else {"properties": {}}
        self.etags[(service, item)] = self.etags.get((service, item), 1) + 1
        if kind in self.lro:
            location = f"https://management.example/op/{len(self.writes)}"
            self._running[location] = [self.lro_polls]
            return WriteOutcome(done=False, location=location, retry_after=2)
        return WriteOutcome()

    def delete(self, instance: ApimResourceId, kind: str, names: tuple[str, ...], *, if_match: str) -> WriteOutcome:
        service, item = self._key(instance, kind, names)
        self.writes.append((service, "delete", item, if_match))
        if self.errors:
            error = self.errors.pop(0)
            raise error if isinstance(error, DrError) else ArmCallError(error)
        items = self.reader.configurations.get(service, {})
        if item not in items:
            return WriteOutcome()
        if if_match not in ("*", self.etag(service, item)):
            raise ArmCallError(ArmError("PreconditionFailed", "The entity's ETag does not match.", 412))
        for child in [k for k in items if k.startswith(item + "/")]:
            del items[child]  # APIM deletes an item's parts with it
        del items[item]
        return WriteOutcome()

    def poll(self, instance: ApimResourceId, location: str) -> WriteOutcome:
        left = self._running[location]
        left[0] -= 1
        return WriteOutcome() if left[0] <= 0 else WriteOutcome(done=False, location=location, retry_after=2)


@dataclass
class World:
    """A context whose adapters are all fakes."""

    ctx: DrContext
    store: FakeTables
    queue: FakeWorkQueue
    backups: FakeBackupStore
    arm: FakeArm
    notifier: FakeNotifier
    clock: ManualClock
    reader: FakeConfigurationReader = field(default_factory=FakeConfigurationReader)
    staging: FakeStagingStore = field(default_factory=FakeStagingStore)
    writer: FakeConfigurationWriter | None = None
    copies: FakeBackupStore | None = None  # the copy account (when the settings name one)
    copier: FakeBlobCopier | None = None


def world(cfg: Settings | None = None, *, now: datetime = T0) -> World:
    cfg = cfg or settings()
    store, queue, backups, arm, notifier = FakeTables(), FakeWorkQueue(), FakeBackupStore(), FakeArm(), FakeNotifier()
    reader, staging = FakeConfigurationReader(), FakeStagingStore()
    writer = FakeConfigurationWriter(reader)
    clock = ManualClock(now)
    copies = FakeBackupStore() if cfg.copy_account else None
    copier = FakeBlobCopier(backups, copies) if copies is not None else None
    ctx = DrContext(settings=cfg, clients=AzureClients(cfg), clock=clock, _jobs=store, _locks=store, _records=store,
                    _queue=queue, _arm=arm, _backups=backups, _notifier=notifier, _storage_ready=True,
                    _config_reader=reader, _staging=staging, _config_writer=writer, _copy_backups=copies,
                    _copier=copier)
    return World(ctx, store, queue, backups, arm, notifier, clock, reader, staging, writer, copies, copier)
