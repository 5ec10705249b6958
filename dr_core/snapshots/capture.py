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

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from dr_core.catalog.entry import RecoveryPointKind
from dr_core.catalog.tags import confirmed_snapshot_tags, snapshot_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import ServiceFacts
from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, ConflictError, DrError
from dr_core.kernel.phases import JobState
from dr_core.ports import ARM_API_VERSION

from .document import NotCaptured, SnapshotDocument, SnapshotItem
from .progress import SnapshotProgress
from .staged import UNREACHABLE_DELAY, StagedReads

if TYPE_CHECKING:
    from dr_core.jobs.job import Job
    from dr_core.jobs.messages import WorkMessage
    from dr_core.jobs.worker import Journal
    from dr_core.kernel.clock import Clock
    from dr_core.ports import ApimManagement, BackupStore

__all__ = ["SnapshotCapture"]

logger = logging.getLogger(__name__)


class SnapshotCapture:
    """The worker's handler of snapshot jobs."""

    kinds = (JobKind.SNAPSHOT,)

    def __init__(self, *, arm: ApimManagement, reads: StagedReads, backups: BackupStore, journal: Journal,
                 clock: Clock) -> None:
        self._arm = arm
        self._reads = reads
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
        result = self._reads.step(job.job_id, job.resource_id, job.snapshot or SnapshotProgress(), now=now)
        if result.error is not None:
            self._journal.finish(job, job.fail(now, result.error))
        elif result.items is None:
            self._journal.commit(job, job.read_more(now, progress=result.progress, delay=result.delay,
                                                    reason=result.reason))
        else:
            self._finish(job, result.progress, result.items, result.not_captured, now)

    def _begin(self, job: Job, now: datetime) -> None:
        try:
            info = self._arm.get_service(job.resource_id)
        except ArmCallError as e:
            if e.error.retryable:
                self._journal.commit(job, job.postpone(now, reason=f"ARM: {e.error.code}",
                                                       delay=max(1, int(e.error.retry_after or UNREACHABLE_DELAY))))
            else:
                self._journal.finish(job, job.fail(now, e.error))
            return
        except AzureUnavailableError as e:
            self._journal.commit(job, job.postpone(now, reason=e.message[:200], delay=UNREACHABLE_DELAY))
            return
        progress = self._reads.begin(job.job_id, info.sku, SnapshotProgress(reads=1))
        self._journal.commit(job, job.begin_reading(now, progress=progress, sku=info.sku, region=info.location))

    def _finish(self, job: Job, progress: SnapshotProgress, items: list[SnapshotItem], missing: list[NotCaptured],
                now: datetime) -> None:
        taken_at = job.started_at or job.created_at
        try:
            document = SnapshotDocument.build(instance=job.instance, sku=job.sku, taken_at=taken_at,
                                              api_version=ARM_API_VERSION, items=items, not_captured=missing)
        except ValueError as e:  # pragma: no cover - the reads' items are unique by ID
            self._journal.finish(job, job.fail(now, ArmError("SnapshotInvalid", str(e))))
            return
        try:
            progress = self._store(job, progress, document, taken_at)
        except DrError as e:
            if "ContainerNotFound" in e.message:
                # A configuration problem, not an outage: waiting would not make the container appear.
                self._journal.finish(job, job.fail(now, ArmError(
                    "ContainerNotFound", f"the backup container {job.container} does not exist in "
                    f"{job.storage_account}; the snapshot was read but could not be written")))
                return
            self._journal.commit(job, job.postpone(now, reason=f"writing the snapshot: {e.message[:160]}",
                                                   delay=UNREACHABLE_DELAY))
            return
        job.snapshot = progress
        step = job.succeed(now, facts=ServiceFacts(job.sku, None, job.region), blob_size=progress.document_size)
        self._journal.finish(job, step)
        try:
            self._reads.clean_up(job.job_id)
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
