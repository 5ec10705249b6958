"""Taking a configuration snapshot: many paced ARM reads over several invocations, then one document.

A snapshot job moves like this, one step per invocation, never waiting on ARM:

1. ``Planned``: read the service (its tier decides which kinds exist), write the first queue of reads to
   the staging container, ``-> Running``.
2. ``Running``, each step: take up to :data:`READS_PER_STEP` reads from the subscription's shared ARM
   read budget (:class:`~dr_core.jobs.pacing.ReadBudget`; none left: come back when there are), make
   them (a few at a time), keep the items they returned (secrets removed, :mod:`.sanitize`) in a new
   staging chunk, and the reads they added in a new staging state, both named after the step; then
   commit the step on the job (conditionally). A crash between writing the staging blobs and the commit
   loses nothing: the next step starts again from the state the job names, and overwrites the
   half-written step. A ``429`` puts the read back and waits ``Retry-After``; ARM unreachable waits too;
   an item deleted between being listed and being read is skipped and counted.
3. No reads left: build the document from the chunks. If its content hash equals the instance's newest
   snapshot's, nothing is written: that snapshot's tags get the new recovery-point time (the catalog
   shows a recovery point now) and the job records "same as". Otherwise the document is written, once,
   with its catalog tags. ``-> Succeeded``; the staging blobs are deleted.

The reads a snapshot made (pages and gets), how often ARM throttled it, and what it produced are on
the job (:class:`~dr_core.snapshots.progress.SnapshotProgress`), shown by ``GET /api/operations/{id}``.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from dr_core.catalog.entry import RecoveryPointKind
from dr_core.catalog.tags import confirmed_snapshot_tags, snapshot_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import ServiceFacts
from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, ConflictError, DrError
from dr_core.kernel.phases import JobState
from dr_core.kernel.threads import parallel_map
from dr_core.ports import ARM_API_VERSION, ConfigPage

from .document import NotCaptured, SnapshotDocument, SnapshotItem
from .kinds import parse_item_id
from .progress import SnapshotProgress
from .reading import ReadTask, first_reads, items_and_reads
from .sanitize import item_properties

if TYPE_CHECKING:
    from dr_core.jobs.job import Job
    from dr_core.jobs.messages import WorkMessage
    from dr_core.jobs.pacing import ReadBudget
    from dr_core.jobs.worker import Journal
    from dr_core.kernel.clock import Clock
    from dr_core.ports import ApimManagement, BackupStore, ConfigurationReader, StagingStore

__all__ = ["READS_PER_STEP", "SnapshotCapture"]

logger = logging.getLogger(__name__)

READS_PER_STEP = 200  # at most this many reads per invocation (about 10 s at ARM's pace)
PARALLEL_READS = 8  # reads in flight at once within a step
_UNREACHABLE_DELAY = 30
_STAGING_FORMAT = 1


@dataclass
class _State:
    """What the staging container holds between steps: the reads still to make, the chunks written so far."""

    tasks: list[ReadTask]
    chunks: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps({"v": _STAGING_FORMAT, "tasks": [t.to_json() for t in self.tasks],
                           "chunks": self.chunks}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> _State:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("v") != _STAGING_FORMAT:
            raise ValueError("not a snapshot staging state")
        chunks = body.get("chunks")
        if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
            raise ValueError("a staging state's chunks are names")
        return cls([ReadTask.from_json(t) for t in body.get("tasks") or []], list(chunks))


@dataclass
class _Outcome:
    task: ReadTask
    page: ConfigPage | None = None
    error: ArmError | None = None
    unreachable: bool = False


class SnapshotCapture:
    """The worker's handler of snapshot jobs."""

    kinds = (JobKind.SNAPSHOT,)

    def __init__(self, *, arm: ApimManagement, reader: ConfigurationReader, budget: ReadBudget,
                 staging: StagingStore, backups: BackupStore, journal: Journal, clock: Clock) -> None:
        self._arm = arm
        self._reader = reader
        self._budget = budget
        self._staging = staging
        self._backups = backups
        self._journal = journal
        self._clock = clock

    def step(self, job: Job, message: WorkMessage, now: datetime) -> None:
        if job.state is JobState.PLANNED:
            self._begin(job, now)
            return
        if job.state is not JobState.RUNNING or message.op != "poll" or message.seq != job.poll_seq:
            logger.info("stale message for snapshot %s (%s seq %s, job at %s/%s) dropped", job.job_id, message.op,
                        message.seq, job.state.value, job.poll_seq)
            return
        progress = job.snapshot or SnapshotProgress()
        state = self._load(job, progress)
        if state is None:
            return
        if not state.tasks:
            self._finish(job, progress, state, now)
        else:
            self._read(job, progress, state, now)

    # -- 1. begin -------------------------------------------------------------------------------------------
    def _begin(self, job: Job, now: datetime) -> None:
        try:
            info = self._arm.get_service(job.resource_id)
        except ArmCallError as e:
            if e.error.retryable:
                self._journal.commit(job, job.postpone(now, reason=f"ARM: {e.error.code}",
                                                       delay=_delay(e.error.retry_after or _UNREACHABLE_DELAY)))
            else:
                self._journal.finish(job, job.fail(now, e.error))
            return
        except AzureUnavailableError as e:
            self._journal.commit(job, job.postpone(now, reason=e.message[:200], delay=_UNREACHABLE_DELAY))
            return
        tasks = first_reads(info.sku)
        progress = SnapshotProgress(step=1, reads=1, pending=len(tasks), tier=info.sku)
        self._staging.put(_state_name(job, 1), _State(tasks).to_bytes())
        self._journal.commit(job, job.begin_reading(now, progress=progress, sku=info.sku, region=info.location))

    # -- 2. read ---------------------------------------------------------------------------------------------
    def _read(self, job: Job, progress: SnapshotProgress, state: _State, now: datetime) -> None:
        subscription = job.resource_id.subscription_id
        grant = self._budget.take(subscription, min(len(state.tasks), READS_PER_STEP), now=now)
        if grant.granted == 0:
            self._journal.commit(job, job.read_more(now, progress=progress, delay=_delay(grant.retry_after),
                                                    reason="waiting for ARM's read budget"))
            return
        batch, rest = state.tasks[:grant.granted], state.tasks[grant.granted:]
        outcomes = parallel_map(lambda task: self._read_one(job, task), batch, max_workers=PARALLEL_READS,
                                name="snapshot")
        items: list[SnapshotItem] = []
        missing: list[NotCaptured] = []
        again: list[ReadTask] = []
        added: list[ReadTask] = []
        wait = 0.0
        progress = replace(progress, reads=progress.reads + len(batch))
        service_id = str(job.resource_id)
        for outcome in outcomes:
            if outcome.page is not None:
                found, reads = items_and_reads(outcome.task, outcome.page, progress.tier)
                for item_id, body in found:
                    properties, left_out = item_properties(item_id, body, service_id=service_id)
                    items.append(SnapshotItem(item_id, properties))
                    missing += left_out
                added += reads
                continue
            error = outcome.error
            if outcome.unreachable or (error is not None and error.retryable):
                again.append(outcome.task)
                throttled = int(error is not None and error.status == 429)
                progress = replace(progress, throttled=progress.throttled + throttled)
                wait = max(wait, (error.retry_after if error and error.retry_after else _UNREACHABLE_DELAY))
            elif error is not None and error.status == 404:
                progress = replace(progress, vanished=progress.vanished + 1)  # deleted while we read
            elif error is not None and error.status == 400:
                missing.append(NotCaptured(outcome.task.describe(), f"ARM refused the read: {error.message[:200]}"))
            else:
                assert error is not None
                self._journal.finish(job, job.fail(now, error))
                return
        step = progress.step + 1
        chunk = _chunk_name(job, step)
        self._staging.put(chunk, _chunk_bytes(items, missing))
        new_state = _State(again + rest + added, [*state.chunks, chunk])
        self._staging.put(_state_name(job, step), new_state.to_bytes())
        progress = replace(progress, step=step, items=progress.items + len(items), pending=len(new_state.tasks),
                           not_captured=progress.not_captured + len(missing))
        reason = "ARM throttled or unreachable; reading again after Retry-After" if wait else None
        self._journal.commit(job, job.read_more(now, progress=progress, delay=_delay(wait) if wait else 0,
                                                reason=reason))

    def _read_one(self, job: Job, task: ReadTask) -> _Outcome:
        try:
            return _Outcome(task, page=self._reader.read(job.resource_id, task.kind, task.names, page=task.page,
                                                         single=task.single))
        except ArmCallError as e:
            return _Outcome(task, error=e.error)
        except AzureUnavailableError:
            return _Outcome(task, unreachable=True)

    # -- 3. finish -------------------------------------------------------------------------------------------
    def _finish(self, job: Job, progress: SnapshotProgress, state: _State, now: datetime) -> None:
        items: list[SnapshotItem] = []
        missing: list[NotCaptured] = []
        for chunk in state.chunks:
            data = self._staging.get(chunk)
            if data is None:
                self._restart(job, progress, now, f"staging chunk {chunk} is missing")
                return
            try:
                chunk_items, chunk_missing = _chunk_from_bytes(data)
            except (ValueError, KeyError, TypeError, OSError) as e:
                self._restart(job, progress, now, f"staging chunk {chunk} is damaged: {type(e).__name__}")
                return
            items += chunk_items
            missing += chunk_missing
        taken_at = job.started_at or job.created_at
        try:
            document = SnapshotDocument.build(instance=job.instance, sku=job.sku, taken_at=taken_at,
                                              api_version=ARM_API_VERSION, items=_unique(items), not_captured=missing)
        except ValueError as e:  # pragma: no cover - _unique removes duplicates
            self._journal.finish(job, job.fail(now, ArmError("SnapshotInvalid", str(e))))
            return
        try:
            progress = self._store(job, progress, document, taken_at)
        except DrError as e:
            self._journal.commit(job, job.postpone(now, reason=f"writing the snapshot: {e.message[:160]}",
                                                   delay=_UNREACHABLE_DELAY))
            return
        job.snapshot = progress
        step = job.succeed(now, facts=ServiceFacts(job.sku, None, job.region), blob_size=progress.document_size)
        self._journal.finish(job, step)
        try:
            self._staging.delete_prefix(f"{job.job_id}/")
        except DrError as e:
            logger.warning("staging of snapshot %s not cleaned up (%s); the lifecycle rule will", job.job_id,
                           e.message)

    def _store(self, job: Job, progress: SnapshotProgress, document: SnapshotDocument,
               taken_at: datetime) -> SnapshotProgress:
        """Write the document, or confirm the newest snapshot when the configuration has not changed."""
        content_hash = document.content_hash
        newest = next((e for e in self._backups.find(job.container, job.service_name)
                       if e.kind is RecoveryPointKind.SNAPSHOT), None)
        if newest is not None and newest.content_hash and content_hash.startswith(newest.content_hash):
            if newest.created < taken_at:
                self._backups.set_tags(newest.container, newest.blob_name,
                                       confirmed_snapshot_tags(newest, point=taken_at, job_id=job.job_id,
                                                               location=job.region or ""))
            job.blob_name = newest.blob_name
            return replace(progress, content_hash=content_hash, same_as=newest.blob_name,
                           document_size=newest.size)
        data = document.to_bytes()
        tags = snapshot_tags(service_name=job.service_name, sku=job.sku or "", point=taken_at, taken=taken_at,
                             job_id=job.job_id, size=len(data), content_hash=content_hash, location=job.region or "")
        metadata = {"source_resource_id": job.instance, "job_id": job.job_id, "api_version": ARM_API_VERSION,
                    "content_hash": content_hash, "items": str(len(document.items))}
        try:
            self._backups.put_document(job.container, job.blob_name, data, tags=tags, metadata=metadata)
        except ConflictError:
            # Written by this job before a crash (the name is the job's own): adopt it if it is the same.
            existing = self._backups.tags(job.container, job.blob_name) or {}
            if existing.get("apimdr_job") != job.job_id:
                raise
            self._backups.set_tags(job.container, job.blob_name, tags)
        return replace(progress, content_hash=content_hash, document_size=len(data))

    # -- staging ---------------------------------------------------------------------------------------------
    def _load(self, job: Job, progress: SnapshotProgress) -> _State | None:
        data = self._staging.get(_state_name(job, progress.step))
        if data is None:
            self._restart(job, progress, self._clock.now(), f"staging state of step {progress.step} is missing")
            return None
        try:
            return _State.from_bytes(data)
        except (ValueError, KeyError) as e:
            self._restart(job, progress, self._clock.now(), f"staging state of step {progress.step} is damaged: {e}")
            return None

    def _restart(self, job: Job, progress: SnapshotProgress, now: datetime, why: str) -> None:
        """The staging container lost this job's state (deleted by hand, lifecycle): read everything again."""
        logger.warning("snapshot %s reads again from the start: %s", job.job_id, why)
        tasks = first_reads(progress.tier)
        step = progress.step + 1
        self._staging.put(_state_name(job, step), _State(tasks).to_bytes())
        fresh = SnapshotProgress(step=step, reads=progress.reads, throttled=progress.throttled, pending=len(tasks),
                                 tier=progress.tier)
        self._journal.commit(job, job.read_more(now, progress=fresh, delay=0, reason=f"reading again: {why}"[:200]))


def _state_name(job: Job, step: int) -> str:
    return f"{job.job_id}/state-{step:06d}.json"


def _chunk_name(job: Job, step: int) -> str:
    return f"{job.job_id}/items-{step:06d}.json.gz"


def _chunk_bytes(items: list[SnapshotItem], missing: list[NotCaptured]) -> bytes:
    body = {"items": [i.to_json() for i in items], "notCaptured": [n.to_json() for n in missing]}
    return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=3)


def _chunk_from_bytes(data: bytes) -> tuple[list[SnapshotItem], list[NotCaptured]]:
    body = json.loads(gzip.decompress(data))
    items = [SnapshotItem(parse_item_id(raw["id"]), raw.get("properties") or {}) for raw in body.get("items") or []]
    missing = [NotCaptured(str(raw["id"]), str(raw["reason"])) for raw in body.get("notCaptured") or []]
    return items, missing


def _unique(items: list[SnapshotItem]) -> list[SnapshotItem]:
    """An item listed twice (a page re-read after a crash, a list that shifted between pages): keep the last."""
    by_id = {str(i.item_id).lower(): i for i in items}
    return list(by_id.values())


def _delay(seconds: float) -> int:
    return max(1, math.ceil(seconds))

