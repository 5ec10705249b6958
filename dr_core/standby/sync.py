"""Standby sync: after each successful backup of a primary, restore that backup into its standby.

Opt-in per instance (``standbySync`` with a ``standby``). The sync is an ordinary restore job
(trigger ``standby-sync``) started through :meth:`dr_core.restore.restorer.Restorer.start`, so every
preflight check applies; the standby is never confirmed over, so a standby that is itself a
protected instance (a primary) is refused by the preflight too. It is refused by name before
that, at run time, because discovery can make an instance protected after the settings were
checked.

One record per standby (:class:`~.record.StandbyRecord`, keyed by the standby's resource ID) says
where the last sync stands and which backup the standby was last restored from; the standby's lag
is the age of that backup (:meth:`~.record.StandbyRecord.lag_hours`).

- A standby still busy with an earlier restore (a previous sync, or an operator's restore) is
  not queued up behind it: the sync of this backup is skipped (``lastSkipped`` says why) and
  the next backup, or the hourly catch-up, syncs the newest one.
- A sync that failed or was refused is not retried for the same backup: the next backup tries
  again. A refusal is announced once, when the standby's sync first becomes refused.
- Catch-up (:meth:`StandbySync.catch_up`, hourly): moves the record along with its job (the
  follower may have been skipped by a crash), and syncs a standby whose last sync attempt was
  for an older backup than the primary's newest restorable one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from dr_core.catalog.naming import parse_backup_blob_name
from dr_core.catalog.tags import entry_from_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import DrError
from dr_core.kernel.events import Event, event_id, log_event
from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError
from dr_core.kernel.phases import JobState, SyncPhase
from dr_core.ports import RecordConflictError
from dr_core.records import ErrorInfo
from dr_core.restore.request import RestoreRequest

from .record import LastSync, SkippedSync, StandbyRecord, standby_key

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.locks import RestoreLock
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import BackupStore, JobStore, Notifier
    from dr_core.records import Records, Versioned
    from dr_core.restore.restorer import Restorer

__all__ = ["LOG_FIELDS", "LOG_PREFIX", "StandbySync", "SyncOutcome", "SyncResult"]

logger = logging.getLogger(__name__)

# One line per change of a standby record: the record's contract fields (the status workbook reads them).
LOG_PREFIX = "APIMDR_STANDBY "
LOG_FIELDS = ("primary", "standby", "jobId", "state", "backup", "backupCreatedAt", "requestedAt", "finishedAt",
              "lastSucceeded", "error")
_WRITE_ATTEMPTS = 3


class SyncResult(StrEnum):
    STARTED = "started"
    REFUSED = "refused"
    BUSY = "busy"  # skipped: the standby is busy with another restore
    ALREADY = "already"  # nothing to do: the standby has or is getting this backup


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync attempt did, and why."""

    outcome: SyncResult
    reason: str
    job_id: str | None = None


class StandbySync:
    """Job follower and hourly catch-up that keep opted-in standbys on the newest backup."""

    def __init__(self, *, settings: Settings, records: Records[StandbyRecord], jobs: JobStore, lock: RestoreLock,
                 restorer: Restorer, resolver: InstanceResolver, backups: BackupStore, notifier: Notifier,
                 clock: Clock) -> None:
        self._settings = settings
        self._records = records
        self._jobs = jobs
        self._lock = lock
        self._restorer = restorer
        self._resolver = resolver
        self._backups = backups
        self._notifier = notifier
        self._clock = clock

    # -- follower ------------------------------------------------------------------------------------
    def after(self, job: Job) -> None:
        """A backup succeeded: sync it. A sync's restore ended: record how."""
        if job.kind is JobKind.BACKUP and job.state is JobState.SUCCEEDED:
            instance = self._synced(job.instance)
            if instance is not None:
                self.sync(instance, backup=job.blob_name)
        elif job.kind is JobKind.RESTORE and job.trigger is Trigger.STANDBY_SYNC:
            self.follow(job)

    def announces(self, job: Job) -> bool:
        return False

    # -- starting a sync -------------------------------------------------------------------------
    def sync(self, instance: ProtectedInstance, *, backup: str) -> SyncOutcome:
        """Restore ``backup`` (a blob name of ``instance``) into its standby, unless refused or busy."""
        standby = instance.standby
        assert standby is not None
        key = standby_key(standby)
        current = self._records.get(key)
        old = current.value if current is not None else None
        if old is not None and old.backup == backup and (old.state in (SyncPhase.SUCCEEDED,)
                                                        or (old.state is not None and old.state.in_flight)):
            return SyncOutcome(SyncResult.ALREADY, f"{standby.service_name} has or is getting {backup}", old.job_id)
        now = self._clock.now().replace(microsecond=0)
        attempt = StandbyRecord(primary=str(instance.resource_id), standby=str(standby), job_id=None,
                                state=SyncPhase.PLANNED, backup=backup, backup_created_at=None, requested_at=now,
                                finished_at=None)
        if self._resolver.is_protected(standby):
            error = ErrorInfo("StandbyIsPrimary",
                              f"{standby.service_name} is a protected instance (a primary); standby sync never "
                              "restores into a primary",
                              f"Name a dedicated standby for {instance.name}, or stop protecting "
                              f"{standby.service_name} (APIM_DR_INSTANCES, discovery tag).")
            return self._refused(key, instance, attempt, error, now, current=current)
        holder = self._lock.holder(standby)
        if holder is not None:
            return self._skip(key, instance, backup, now, why=f"restore {holder.job_id} into {standby.service_name} "
                              f"is still {holder.state.value}", job_id=holder.job_id)
        try:
            plan, job = self._restorer.start(
                RestoreRequest(target=str(standby), source=str(instance.resource_id), backup=backup),
                trigger=Trigger.STANDBY_SYNC)
        except DrError as e:
            return self._refused(key, instance, attempt, ErrorInfo.of_error(e), now, current=current)
        if job is None:
            return self._skip(key, instance, backup, now, why=f"another restore into {standby.service_name} "
                              "started meanwhile", job_id=None)
        created = plan.backup.created if plan.backup is not None else None
        attempt = replace(attempt, job_id=job.job_id, requested_at=job.created_at, backup_created_at=created)
        if job.state is JobState.REFUSED:
            return self._refused(key, instance, attempt, ErrorInfo.of_job(job), job.finished_at, current=current)
        if created is None:
            attempt = replace(attempt, backup_created_at=self._backup_created(instance, backup))
        record = self._write(key, lambda old: _merge(old, attempt), current=current)
        _log(record.value if record is not None else attempt)
        return SyncOutcome(SyncResult.STARTED, f"restore {job.job_id} of {backup} into {standby.service_name}",
                           job.job_id)

    def _refused(self, key: str, instance: ProtectedInstance, attempt: StandbyRecord, error: ErrorInfo,
                 finished: datetime | None, *, current: Versioned[StandbyRecord] | None) -> SyncOutcome:
        # The backup's date from its tags when the restore's plan, which has it, did not get that far.
        created = attempt.backup_created_at or self._backup_created(instance, attempt.backup or "")
        refused = replace(attempt, state=SyncPhase.REFUSED, backup_created_at=created, finished_at=finished,
                          error=error)
        record = self._write(key, lambda old: _merge(old, refused), current=current)
        _log(record.value if record is not None else refused)
        if record is not None:
            self._announce_refusal(record)
        return SyncOutcome(SyncResult.REFUSED, f"({error.code}) {error.message}", refused.job_id)

    def _skip(self, key: str, instance: ProtectedInstance, backup: str, now: datetime, *, why: str,
              job_id: str | None) -> SyncOutcome:
        reason = f"{why}; {backup} is not synced (the next backup, or the hourly catch-up, syncs the newest one)"
        logger.info("standby sync of %s skipped: %s", instance.name, reason)
        skipped = SkippedSync(backup, now, reason[:500])
        # The record (and so the structured log) keeps the attempt in flight; the skip is a note beside it.
        self._write(key, lambda old: replace(old, last_skipped=skipped) if old is not None else None)
        return SyncOutcome(SyncResult.BUSY, reason, job_id)

    # -- following the restore -------------------------------------------------------------------
    def follow(self, job: Job) -> None:
        """Move the standby record along with its sync job (idempotent; not its current job: ignored)."""
        phase = SyncPhase.of(job.state)

        def move(old: StandbyRecord | None) -> StandbyRecord | None:
            if old is None or old.job_id != job.job_id or old.state is None or not old.state.in_flight \
                    or old.state is phase:
                return None
            new = replace(old, state=phase)
            if job.state is JobState.SUCCEEDED:
                return replace(new, finished_at=job.finished_at, error=None, announced=None,
                               last_succeeded=LastSync(old.backup, old.backup_created_at, job.finished_at))
            if job.state.terminal:
                return replace(new, finished_at=job.finished_at, error=ErrorInfo.of_job(job))
            return new

        record = self._write(standby_key(job.instance), move)  # move leaves an unchanged record alone
        if record is None:
            return
        _log(record.value)
        if phase is SyncPhase.REFUSED:
            self._announce_refusal(record)

    # -- catch-up ----------------------------------------------------------------------------------
    def catch_up(self) -> list[SyncOutcome]:
        """The hourly timer: bring records up to date with their jobs, then sync standbys that lag behind."""
        outcomes: list[SyncOutcome] = []
        for instance in self._settings.instances:
            if not (instance.posture.standby_sync and instance.standby is not None):
                continue
            try:
                outcome = self._catch_up(instance)
            except DrError as e:
                logger.error("standby sync catch-up of %s failed: (%s) %s", instance.name, e.error_code, e.message)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _catch_up(self, instance: ProtectedInstance) -> SyncOutcome | None:
        assert instance.standby is not None
        key = standby_key(instance.standby)
        record = self._records.get(key)
        current = record.value if record is not None else None
        if current is not None and current.state is not None and current.state.in_flight and current.job_id:
            busy = self._follow_up(key, current.job_id)
            if busy is not None:
                return busy
            record = self._records.get(key)
            current = record.value if record is not None else None
        elif record is not None and current is not None and current.state is SyncPhase.REFUSED:
            self._announce_refusal(record)
        now = self._clock.now()
        margin = timedelta(hours=self._settings.expiry_margin_hours)
        newest = next((e for e in self._backups.find(instance.container, instance.name)
                       if e.restorable_for(None, now=now, margin=margin)[0]), None)
        if newest is None or (current is not None and current.backup == newest.blob_name):
            return None  # nothing to sync, or this backup was tried already (the next backup tries again)
        synced = current.last_succeeded.backup_created_at \
            if current is not None and current.last_succeeded is not None else None
        if synced is not None and synced >= newest.created:
            return None
        logger.info("standby %s lags behind %s: syncing %s", instance.standby.service_name, instance.name,
                    newest.blob_name)
        return self.sync(instance, backup=newest.blob_name)

    def _follow_up(self, key: str, job_id: str) -> SyncOutcome | None:
        """Move the record along with its sync job (a missed follower); a busy outcome while the job runs."""
        job = self._job(job_id)
        if job is None:
            error = ErrorInfo("SyncJobMissing", f"the sync job {job_id} no longer exists",
                              "Nothing to do: the next backup syncs the standby again.")
            gone = self._write(key, lambda old: replace(old, state=SyncPhase.FAILED, error=error)
                               if old is not None and old.job_id == job_id and old.state is not None
                               and old.state.in_flight else None)
            if gone is not None:
                _log(gone.value)
            return None
        self.follow(job)
        if not job.state.terminal:
            return SyncOutcome(SyncResult.BUSY, f"sync {job.job_id} is {job.state.value}", job.job_id)
        return None

    # -- views -------------------------------------------------------------------------------------
    def standbys(self) -> list[StandbyRecord]:
        """Every standby record, by primary."""
        return sorted((r.value for r in self._records.all()), key=lambda v: v.primary or "")

    # -- helpers -----------------------------------------------------------------------------------
    def _synced(self, resource_id: str) -> ProtectedInstance | None:
        try:
            key = ApimResourceId.parse(resource_id).key
        except InvalidResourceIdError:
            return None
        for instance in self._settings.instances:
            if instance.resource_id.key == key and instance.posture.standby_sync and instance.standby is not None:
                return instance
        return None

    def _backup_created(self, instance: ProtectedInstance, backup: str) -> datetime | None:
        try:
            tags = self._backups.tags(instance.container, backup)
        except DrError:
            tags = None
        entry = entry_from_tags(instance.container, backup, tags) if tags else None
        if entry is not None:
            return entry.created
        try:
            return parse_backup_blob_name(backup).created
        except ValueError:
            return None

    def _job(self, job_id: str) -> Job | None:
        try:
            return self._jobs.get(job_id)
        except ValueError:
            return None

    def _write(self, key: str, change: Callable[[StandbyRecord | None], StandbyRecord | None], *,
               current: Versioned[StandbyRecord] | None = None) -> Versioned[StandbyRecord] | None:
        """:meth:`Records.update <dr_core.records.Records.update>` of the standby record (``current``: as just
        read); the record written, or None."""
        try:
            return self._records.update(key, change, attempts=_WRITE_ATTEMPTS, current=current)
        except RecordConflictError:
            logger.warning("standby record %s kept changing; this update is left to the hourly catch-up", key)
            return None

    def _announce_refusal(self, record: Versioned[StandbyRecord]) -> None:
        """Once per refusal streak: the flag is set only after the notifier succeeded."""
        data = record.value
        if data.state is not SyncPhase.REFUSED or data.announced is SyncPhase.REFUSED:
            return
        error = data.error or ErrorInfo()
        standby = (data.standby or "").rsplit("/", 1)[-1]
        primary = (data.primary or "").rsplit("/", 1)[-1]
        lines = [f"apim-dr: standby sync of {standby} (primary {primary}) refused",
                 f"Backup: {data.backup}", f"Why: ({error.code}) {error.message}"]
        if error.remediation:
            lines.append(f"What to do: {error.remediation}")
        last = data.last_succeeded
        lines.append(f"Standby last restored from: {last.backup if last is not None else 'never'}")
        payload = data.to_json()
        details = {key: payload[key] for key in ("primary", "standby", "jobId", "backup", "state", "error",
                                                 "lastSucceeded")}
        try:
            self._notifier.announce_event(Event("standby-sync-refused", "\n".join(lines), details, event_id=event_id(
                "standby-sync-refused", (data.standby or "").lower(), data.job_id or "", data.backup or "")))
        except Exception as e:
            logger.warning("announcing the refused standby sync of %s failed (%s); the hourly catch-up retries",
                           standby, type(e).__name__)
            return
        self._write(record.key, lambda old: replace(old, announced=SyncPhase.REFUSED)
                    if old is not None and old.state is SyncPhase.REFUSED else None)


def _log(record: StandbyRecord) -> None:
    """``APIMDR_STANDBY {json}``: the record as it now stands (its contract fields only)."""
    data = record.to_json()
    log_event(LOG_PREFIX, {key: data[key] for key in LOG_FIELDS},
              warning=record.state in (SyncPhase.FAILED, SyncPhase.REFUSED))


def _merge(old: StandbyRecord | None, attempt: StandbyRecord) -> StandbyRecord:
    """A new attempt replaces the last one; what the standby last got and what was announced stay."""
    if old is None:
        return replace(attempt, last_succeeded=None, announced=None, last_skipped=None)
    return replace(attempt, last_succeeded=old.last_succeeded, announced=old.announced, last_skipped=old.last_skipped)
