"""Copying recovery points to the copy account: after each backup, and an hourly catch-up.

For every instance whose ``copy`` option is on (by default, once ``APIM_DR_COPY_STORAGE_ACCOUNT`` names a
second account), each succeeded backup is copied there with its sidecars (:mod:`dr_core.catalog.sidecars`),
the sidecars first and the point last:

1. each blob is copied **server-side** (:class:`~dr_core.ports.BlobCopier`: Put Blob From URL, the copy
   account reading the backup account with the app's own token); an existing copy is never overwritten;
2. each copy is **verified** against its source (:func:`~dr_core.copies.verify.verify_copy`: size, and the
   Content-MD5 where the source has one);
3. only then is the point **catalogued** in the copy account, with exactly the index tags it has in the
   backup account (so the copy's catalog query, the restore preflight and retention see it like the
   original); an unverified copy is never catalogued, so no restore ever reads it;
4. the instance's ``copy`` record keeps the newest verified copy (the lag the status page shows) or the
   last error; each point is one ``APIMDR_COPY {json}`` line.

The copy runs as a follower of the backup job (right after the manifest, which it copies along). A copy
missed then (a crash, the copy account briefly unreachable) is made by the hourly catch-up
(``copy_backups``, :meth:`BackupCopies.run_scheduled`), which compares the two catalogs per instance (one
tag query each) and copies what is missing, newest first: every backup that can still be restored, and
points of kinds that never expire.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from dr_core.catalog.sidecars import recovery_point_blobs
from dr_core.catalog.tags import entry_from_tags
from dr_core.jobs.ids import JobKind
from dr_core.kernel.clock import iso, iso_or_none
from dr_core.kernel.errors import DrError
from dr_core.kernel.phases import JobState
from dr_core.kernel.threads import thread_pool
from dr_core.kernel.wire import JsonObject
from dr_core.ports import CopyOutcome
from dr_core.records import ErrorInfo

from .record import CURSOR_KEY, CopiedPoint, CopyCursor, CopyRecord, copy_key
from .verify import Verification, verify_copy

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.job import Job
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import BackupStore, BlobCopier, BlobCopy
    from dr_core.records import Records

__all__ = ["LOG_PREFIX", "BackupCopies", "CopiesIncompleteError", "CopyReport", "InstanceCopies", "PointCopy",
           "PointOutcome"]

logger = logging.getLogger("apim_dr.copies")
_module_logger = logging.getLogger(__name__)

LOG_PREFIX = "APIMDR_COPY "
# The jobs whose recovery point is copied when they succeed.
_COPIED_JOBS = frozenset({JobKind.BACKUP, JobKind.SNAPSHOT})
PARALLEL_INSTANCES = 8
# The hourly timer stops starting instances after this long, within host.json's 5-minute functionTimeout.
SCHEDULED_BUDGET_SECONDS = 240.0


class CopiesIncompleteError(DrError):
    """A catch-up could not copy (or verify) everything it found missing, or could not read a catalog."""

    code = "CopiesIncomplete"


class PointOutcome(StrEnum):
    COPIED = "copied"  # copied (or found already there) and verified now, and catalogued
    WOULD_COPY = "would-copy"  # dry run
    FAILED = "failed"


@dataclass
class PointCopy:
    """One recovery point copied (or not): each of its blobs, the verification, what happened."""

    entry: CatalogEntry
    outcome: PointOutcome
    blobs: list[BlobCopy] = field(default_factory=list)
    verification: Verification | None = None
    detail: str | None = None
    seconds: float = 0.0

    def to_json(self) -> JsonObject:
        return {"blobName": self.entry.blob_name, "createdAt": iso(self.entry.created), "kind": self.entry.kind.value,
                "outcome": self.outcome.value, "checksum": None if self.verification is None or
                self.verification.checksum is None else self.verification.checksum.value,
                "contentMd5": None if self.verification is None else self.verification.md5,
                "sizeBytes": self.blobs[-1].source.size if self.blobs and self.blobs[-1].source else None,
                "blobs": [{"blobName": b.blob_name, "outcome": b.outcome.value, "method": b.method or None}
                          for b in self.blobs],
                "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass
class InstanceCopies:
    instance: ProtectedInstance
    points: list[PointCopy] = field(default_factory=list)
    error: DrError | None = None
    present: int = 0  # points the copy account's catalog already had

    def to_json(self) -> JsonObject:
        return {"instance": str(self.instance.resource_id), "serviceName": self.instance.name,
                "container": self.instance.container, "alreadyCopied": self.present,
                "points": [p.to_json() for p in self.points],
                "error": None if self.error is None else ErrorInfo.of_error(self.error).to_json()}


@dataclass
class CopyReport:
    account: str
    dry_run: bool
    generated_at: datetime
    instances: list[InstanceCopies] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        points = [p for inst in self.instances for p in inst.points]
        return {"instances": len(self.instances),
                **{outcome.value: sum(1 for p in points if p.outcome is outcome) for outcome in PointOutcome},
                "instanceErrors": sum(1 for inst in self.instances if inst.error is not None),
                "notReached": len(self.not_reached)}

    @property
    def failed(self) -> bool:
        totals = self.totals()
        return bool(totals[PointOutcome.FAILED.value] or totals["instanceErrors"])

    def to_json(self) -> JsonObject:
        return {"account": self.account, "dryRun": self.dry_run, "generatedAt": iso(self.generated_at),
                "instances": [i.to_json() for i in self.instances], "problems": list(self.problems),
                "notReached": list(self.not_reached), "totals": self.totals()}


class BackupCopies:
    """:class:`~dr_core.jobs.worker.JobFollower` (a backup's copy when it succeeds) and the hourly catch-up."""

    def __init__(self, *, settings: Settings, backups: BackupStore, copies: BackupStore, copier: BlobCopier,
                 records: Records[CopyRecord], resolver: InstanceResolver, clock: Clock,
                 parallel: int = PARALLEL_INSTANCES, monotonic: Callable[[], float] = time.monotonic,
                 cursor: Records[CopyCursor] | None = None) -> None:
        assert settings.copy_account is not None, "copies need APIM_DR_COPY_STORAGE_ACCOUNT"
        self._settings = settings
        self._account = settings.copy_account
        self._backups = backups
        self._copies = copies
        self._copier = copier
        self._records = records
        self._resolver = resolver
        self._clock = clock
        self._parallel = max(1, parallel)
        self._monotonic = monotonic
        # Where the last budgeted catch-up stopped: the next one starts there, so a fleet larger than one
        # run's budget is covered over several runs (as retention does).
        self._cursor = cursor

    # -- the follower -----------------------------------------------------------------------------------
    def after(self, job: Job) -> None:
        """A backup or a configuration snapshot succeeded: copy its recovery point (for a snapshot whose
        configuration had not changed, the existing point: its copy gets the refreshed tags)."""
        if job.kind not in _COPIED_JOBS or job.state is not JobState.SUCCEEDED or not job.blob_name:
            return
        try:
            instance = self._resolver.protected(job.instance)
        except DrError as e:
            _module_logger.warning("no copy of %s: the instance could not be resolved (%s)", job.blob_name, e.message)
            return
        if instance.posture.copy:
            self.copy_backup(instance, job.blob_name)

    def announces(self, job: Job) -> bool:
        return False

    def copy_backup(self, instance: ProtectedInstance, blob_name: str) -> PointCopy | None:
        """Copy one backup of ``instance`` (by blob name) with its sidecars; None if it is not catalogued."""
        try:
            tags = self._backups.tags(instance.container, blob_name)
        except DrError as e:
            self._failed(instance, blob_name, e)
            return None
        entry = entry_from_tags(instance.container, blob_name, tags) if tags else None
        if entry is None or tags is None:
            _module_logger.warning("no copy of %s/%s: it carries no catalog tags", instance.container, blob_name)
            return None
        return self.copy_point(instance, entry, tags)

    # -- one recovery point ------------------------------------------------------------------------------
    def copy_point(self, instance: ProtectedInstance, entry: CatalogEntry, tags: dict[str, str]) -> PointCopy:
        """Copy, verify and catalogue one recovery point (its sidecars first); record and log the outcome."""
        started = self._monotonic()
        result = PointCopy(entry, PointOutcome.FAILED)
        try:
            for name in recovery_point_blobs(entry):
                copied = self._copier.copy(entry.container, name)
                result.blobs.append(copied)
                if name == entry.blob_name:
                    result.verification = verify_copy(copied)
                elif copied.outcome is not CopyOutcome.SOURCE_MISSING and not verify_copy(copied).ok:
                    result.detail = f"sidecar {verify_copy(copied).detail}"
                    break
            else:
                assert result.verification is not None
                if result.verification.ok:
                    self._copies.set_tags(entry.container, entry.blob_name, dict(tags))
                    result.outcome = PointOutcome.COPIED
                result.detail = result.verification.detail
        except DrError as e:
            result.detail = f"{e.message}. {e.remediation}" if e.remediation else e.message
            result.seconds = self._monotonic() - started
            self._log(instance, result, logging.ERROR)
            self._failed(instance, entry.blob_name, e)
            return result
        result.seconds = self._monotonic() - started
        if result.outcome is PointOutcome.COPIED:
            self._log(instance, result, logging.INFO)
            self._succeeded(instance, entry, result)
        else:
            self._log(instance, result, logging.ERROR)
            self._failed(instance, entry.blob_name, DrError(
                result.detail or "the copy could not be verified", code="CopyNotVerified",
                remediation="The copy is left uncatalogued (no restore reads it). Compare the two blobs; delete "
                            "the copy by hand if it is wrong, and the next catch-up copies it again."))
        return result

    # -- the catch-up -----------------------------------------------------------------------------------
    def run_scheduled(self) -> CopyReport:
        """The hourly timer: every copied instance within the time budget; raise if anything failed."""
        report = self.catch_up(dry_run=False, budget_seconds=SCHEDULED_BUDGET_SECONDS)
        if report.failed:
            totals = report.totals()
            raise CopiesIncompleteError(
                f"copies: {totals[PointOutcome.FAILED.value]} recovery point(s) not copied and "
                f"{totals['instanceErrors']} instance(s) whose catalogs could not be read; see the APIMDR_COPY lines",
                remediation="Read the failed lines' detail; the next run tries again.")
        return report

    def catch_up(self, service: str | None = None, *, dry_run: bool = False,
                 budget_seconds: float | None = None) -> CopyReport:
        """Copy what the copy account lacks, for one instance (``service``) or every copied one.

        :raises InvalidRequestError: ``service`` is malformed. :raises UnknownInstanceError: not protected.
        """
        started = self._monotonic()
        now = self._clock.now()
        report = CopyReport(self._account, dry_run, now)
        selected = self._resolver.select(service)
        report.problems = list(selected.problems)
        instances = _distinct([i for i in selected.instances if i.posture.copy])
        if service is not None and selected.instances and not instances:
            report.problems.append(f"{selected.instances[0].name} is not copied (its copy option is off)")
        use_cursor = budget_seconds is not None and service is None and self._cursor is not None
        if use_cursor:
            instances = _rotate(instances, self._resume_after())
        processed = 0
        with thread_pool(self._parallel, name="copies") as pool:
            for first in range(0, len(instances), self._parallel):
                if budget_seconds is not None and self._monotonic() - started >= budget_seconds:
                    report.not_reached = [str(i.resource_id) for i in instances[first:]]
                    break
                chunk = instances[first:first + self._parallel]
                report.instances += list(pool.map(lambda inst: self._catch_up(inst, now, dry_run), chunk))
                processed = first + len(chunk)
        if use_cursor and not dry_run:
            last = instances[processed - 1].resource_id.key if report.not_reached and processed else None
            self._save_cursor(CopyCursor(last, now, len(report.not_reached)))
        _log({"outcome": "summary", "account": self._account, "dryRun": dry_run, **report.totals(),
              "problems": len(report.problems)},
             level=logging.WARNING if report.failed or report.not_reached else logging.INFO)
        return report

    def _catch_up(self, instance: ProtectedInstance, now: datetime, dry_run: bool) -> InstanceCopies:
        result = InstanceCopies(instance)
        try:
            originals = self._backups.find(instance.container, instance.name)
            copied = self._copies.find(instance.container, instance.name)
        except DrError as e:
            result.error = e
            _log({"outcome": PointOutcome.FAILED.value, "instance": str(instance.resource_id),
                  "account": self._account, "blobName": None, "detail": f"a catalog could not be read: {e.message}"},
                 level=logging.ERROR)
            return result
        present = {e.blob_name: e for e in copied}
        result.present = len(present)
        for entry in originals:  # newest first: the lag shrinks fastest
            copy = present.get(entry.blob_name)
            if copy is not None:
                if copy.created != entry.created and not dry_run:
                    self._retag(instance, entry, result)  # a refreshed point (an unchanged snapshot)
                continue
            if not entry.restorable(now=now)[0]:
                continue  # an expired native backup: no restore could use its copy
            if dry_run:
                result.points.append(PointCopy(entry, PointOutcome.WOULD_COPY, detail="missing from the copy account"))
                continue
            try:
                tags = self._backups.tags(entry.container, entry.blob_name) or {}
            except DrError as e:
                result.points.append(PointCopy(entry, PointOutcome.FAILED, detail=e.message))
                self._failed(instance, entry.blob_name, e)
                continue
            result.points.append(self.copy_point(instance, entry, tags))
        newest = max((e for e in originals if e.blob_name in present), key=lambda e: e.created, default=None)
        if newest is not None and not dry_run:
            self._note_present(instance, newest, now)
        return result

    def _retag(self, instance: ProtectedInstance, entry: CatalogEntry, result: InstanceCopies) -> None:
        """The original's tags moved on (a snapshot found unchanged is a recovery point again, now): the copy's
        catalog follows. Tags only: the bytes were verified when copied."""
        try:
            tags = self._backups.tags(entry.container, entry.blob_name)
            if tags:
                self._copies.set_tags(entry.container, entry.blob_name, dict(tags))
        except DrError as e:
            result.points.append(PointCopy(entry, PointOutcome.FAILED, detail=f"re-tagging the copy: {e.message}"))
            self._failed(instance, entry.blob_name, e)

    # -- the catch-up's cursor --------------------------------------------------------------------------
    def _resume_after(self) -> str | None:
        assert self._cursor is not None
        try:
            record = self._cursor.get(CURSOR_KEY)
        except DrError as e:
            _module_logger.warning("copies: the cursor could not be read (%s); starting from the first instance",
                                   e.message)
            return None
        return record.value.resume_after if record is not None else None

    def _save_cursor(self, cursor: CopyCursor) -> None:
        assert self._cursor is not None
        try:
            self._cursor.update(CURSOR_KEY, lambda _: cursor, attempts=1)
        except DrError as e:  # the next run merely starts elsewhere
            _module_logger.warning("copies: the cursor was not saved: %s", e.message)

    # -- the record and the log -------------------------------------------------------------------------
    def _succeeded(self, instance: ProtectedInstance, entry: CatalogEntry, result: PointCopy) -> None:
        now = self._clock.now()
        verification = result.verification
        point = CopiedPoint(entry.blob_name, entry.created, now, entry.size if entry.size is not None else
                            (result.blobs[-1].source.size if result.blobs and result.blobs[-1].source else None),
                            verification.md5 if verification else None,
                            verification.checksum.value if verification and verification.checksum else None)
        self._update(instance, lambda record: record.with_copy(point, now))

    def _note_present(self, instance: ProtectedInstance, newest: CatalogEntry, now: datetime) -> None:
        """The copy catalog's newest point, for the lag (copies made earlier, or before there was a record)."""
        point = CopiedPoint(newest.blob_name, newest.created, None, newest.size, None, None)

        def change(record: CopyRecord) -> CopyRecord | None:
            last = record.last_copied
            if last is not None and last.created_at >= newest.created:
                return None
            return replace(record, last_copied=point)  # an error stays until a copy succeeds

        self._update(instance, change)

    def _failed(self, instance: ProtectedInstance, blob_name: str | None, error: DrError) -> None:
        now = self._clock.now()
        self._update(instance, lambda record: record.with_error(blob_name, ErrorInfo.of_error(error), now))

    def _update(self, instance: ProtectedInstance, change: Callable[[CopyRecord], CopyRecord | None]) -> None:
        fresh = CopyRecord(str(instance.resource_id), self._account)
        try:
            self._records.update(copy_key(instance.resource_id), lambda old: change(old or fresh))
        except DrError as e:  # the copy itself stands; only the lag shown is stale until the next write
            _module_logger.warning("copy record of %s not written: %s", instance.name, e.message)

    def _log(self, instance: ProtectedInstance, result: PointCopy, level: int) -> None:
        created = result.entry.created
        lag = (self._clock.now() - created).total_seconds()
        _log({"instance": str(instance.resource_id), "account": self._account, "container": result.entry.container,
              **result.to_json(), "lagSeconds": round(lag, 1), "at": iso_or_none(self._clock.now())}, level=level)


def _rotate(instances: list[ProtectedInstance], resume_after: str | None) -> list[ProtectedInstance]:
    """Sorted by resource ID, starting after ``resume_after`` (wrapping round)."""
    ordered = sorted(instances, key=lambda i: i.resource_id.key)
    if resume_after is None:
        return ordered
    start = next((n for n, inst in enumerate(ordered) if inst.resource_id.key > resume_after), 0)
    return ordered[start:] + ordered[:start]


def _distinct(instances: list[ProtectedInstance]) -> list[ProtectedInstance]:
    """One entry per (container, service name): the catalog queries are the same for both."""
    seen: set[tuple[str, str]] = set()
    out: list[ProtectedInstance] = []
    for inst in instances:
        key = (inst.container, inst.name.lower())
        if key not in seen:
            seen.add(key)
            out.append(inst)
    return out


def _log(record: JsonObject, *, level: int) -> None:
    logger.log(level, "%s%s", LOG_PREFIX, json.dumps(record, separators=(",", ":"), default=str))
