"""Standby sync: after each successful backup of a primary, restore that backup into its standby.

Opt-in per instance (``standbySync`` with a ``standby``). The sync is an ordinary restore job
(trigger ``standby-sync``) started through :meth:`dr_core.restore.restorer.Restorer.start`, so every
preflight check applies; the standby is never confirmed over, so a standby that is itself a
protected instance (a primary) is refused by the preflight too. It is refused by name before
that, at run time, because discovery can make an instance protected after the settings were
checked.

One record per standby (kind ``standby``, key ``record_key(<standby resource id>)``) says where
the last sync stands and which backup the standby was last restored from; the standby's lag is
the age of that backup (:func:`lag_hours`).

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dr_core.azure.tables import JobConflictError, Record, record_key
from dr_core.catalog.tags import entry_from_tags, parse_backup_blob_name
from dr_core.jobs.job import Job, JobKind, JobState
from dr_core.jobs.notify import Event, log_event
from dr_core.kernel.clock import from_iso, iso, iso_or_none
from dr_core.kernel.errors import DrError
from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError
from dr_core.restore.restorer import RestoreRequest

if TYPE_CHECKING:
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.tables import JobStore
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.notify import Notifier
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.restore.restorer import Restorer

__all__ = ["KIND", "LOG_FIELDS", "LOG_PREFIX", "TRIGGER", "StandbySync", "SyncOutcome", "lag_hours", "standby_view"]

logger = logging.getLogger(__name__)

KIND = "standby"
TRIGGER = "standby-sync"
# One line per change of a standby record: the record's contract fields (the status workbook reads them).
LOG_PREFIX = "APIMDR_STANDBY "
LOG_FIELDS = ("primary", "standby", "jobId", "state", "backup", "backupCreatedAt", "requestedAt", "finishedAt",
              "lastSucceeded", "error")
_IN_FLIGHT = ("Planned", "Running")
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync attempt did: ``started``, ``refused``, ``busy`` (skipped) or ``already`` (nothing to do)."""

    outcome: str
    reason: str
    job_id: str | None = None


def lag_hours(data: dict[str, Any], now: datetime) -> float | None:
    """Age of the backup the standby was last restored from, in hours; None if it never was."""
    last = data.get("lastSucceeded")
    created = from_iso(last.get("backupCreatedAt")) if isinstance(last, dict) else None
    return None if created is None else round(max(0.0, (now - created).total_seconds()) / 3600, 2)


def standby_view(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A standby record as the CLI and status show it: the record plus its lag."""
    return {key: data.get(key) for key in ("primary", "standby", "state", "jobId", "backup", "backupCreatedAt",
                                           "requestedAt", "finishedAt", "lastSucceeded", "error", "lastSkipped")
            } | {"lagHours": lag_hours(data, now)}


class StandbySync:
    """Job follower and hourly catch-up that keep opted-in standbys on the newest backup."""

    def __init__(self, *, settings: Settings, store: JobStore, restorer: Restorer, resolver: InstanceResolver,
                 backups: BackupStore, notifier: Notifier, clock: Clock) -> None:
        self._settings = settings
        self._store = store
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
        elif job.kind is JobKind.RESTORE and job.trigger == TRIGGER:
            self.follow(job)

    def announces(self, job: Job) -> bool:
        return False

    # -- starting a sync -------------------------------------------------------------------------
    def sync(self, instance: ProtectedInstance, *, backup: str) -> SyncOutcome:
        """Restore ``backup`` (a blob name of ``instance``) into its standby, unless refused or busy."""
        standby = instance.standby
        assert standby is not None
        key = record_key(str(standby))
        current = self._store.get_record(KIND, key)
        data = current.data if current is not None else {}
        if data.get("backup") == backup and data.get("state") in (*_IN_FLIGHT, "Succeeded"):
            return SyncOutcome("already", f"{standby.service_name} has or is getting {backup}", data.get("jobId"))
        now = self._clock.now().replace(microsecond=0)
        attempt: dict[str, Any] = {
            "primary": str(instance.resource_id), "standby": str(standby), "jobId": None, "backup": backup,
            "backupCreatedAt": None, "requestedAt": iso(now), "finishedAt": None, "error": None,
        }

        def refused(error: dict[str, str | None], finished: str | None) -> SyncOutcome:
            # The backup's date from its tags: the restore's plan, which has it, did not get that far.
            created = plan_created or iso_or_none(self._backup_created(instance, backup))
            return self._refused(key, {**attempt, "backupCreatedAt": created, "finishedAt": finished, "error": error},
                                 current=current)

        plan_created: str | None = None
        if self._resolver.is_protected(standby):
            error: dict[str, str | None] = {"code": "StandbyIsPrimary",
                     "message": f"{standby.service_name} is a protected instance (a primary); standby sync never "
                                "restores into a primary",
                     "remediation": f"Name a dedicated standby for {instance.name}, or stop protecting "
                                    f"{standby.service_name} (APIM_DR_INSTANCES, discovery tag)."}
            return refused(error, iso(now))
        holder = self._store.restore_in_progress(standby)
        if holder is not None:
            return self._skip(key, instance, backup, now, why=f"restore {holder.job_id} into {standby.service_name} "
                              f"is still {holder.state.value}", job_id=holder.job_id)
        try:
            plan, job = self._restorer.start(
                RestoreRequest(target=str(standby), source=str(instance.resource_id), backup=backup), trigger=TRIGGER)
        except DrError as e:
            return refused({"code": e.error_code, "message": e.message, "remediation": e.remediation}, iso(now))
        if job is None:
            return self._skip(key, instance, backup, now, why=f"another restore into {standby.service_name} "
                              "started meanwhile", job_id=None)
        plan_created = iso(plan.backup.created) if plan.backup is not None else None
        attempt |= {"jobId": job.job_id, "requestedAt": iso(job.created_at)}
        if job.state is JobState.REFUSED:
            return refused(job.error_json(), iso_or_none(job.finished_at))
        attempt["backupCreatedAt"] = plan_created or iso_or_none(self._backup_created(instance, backup))
        record = self._write(key, lambda old: _merge(old, {**attempt, "state": "Planned"}), current=current)
        _log(record.data if record is not None else {**attempt, "state": "Planned"})
        return SyncOutcome("started", f"restore {job.job_id} of {backup} into {standby.service_name}", job.job_id)

    def _refused(self, key: str, attempt: dict[str, Any], *, current: Record | None = None) -> SyncOutcome:
        record = self._write(key, lambda old: _merge(old, {**attempt, "state": "Refused"}), current=current)
        error = attempt["error"] or {}
        _log(record.data if record is not None else {**attempt, "state": "Refused"})
        if record is not None:
            self._announce_refusal(record)
        return SyncOutcome("refused", f"({error.get('code')}) {error.get('message')}", attempt["jobId"])

    def _skip(self, key: str, instance: ProtectedInstance, backup: str, now: datetime, *, why: str,
              job_id: str | None) -> SyncOutcome:
        reason = f"{why}; {backup} is not synced (the next backup, or the hourly catch-up, syncs the newest one)"
        logger.info("standby sync of %s skipped: %s", instance.name, reason)
        skipped = {"backup": backup, "at": iso(now), "reason": reason[:500]}
        # The record (and so the structured log) keeps the attempt in flight; the skip is a note beside it.
        self._write(key, lambda old: {**old, "lastSkipped": skipped} if old else None)
        return SyncOutcome("busy", reason, job_id)

    # -- following the restore -------------------------------------------------------------------
    def follow(self, job: Job) -> None:
        """Move the standby record along with its sync job (idempotent; not its current job: ignored)."""
        state = _record_state(job)
        key = record_key(job.instance)

        def move(old: dict[str, Any]) -> dict[str, Any] | None:
            if old.get("jobId") != job.job_id or old.get("state") not in _IN_FLIGHT or old.get("state") == state:
                return None
            new = {**old, "state": state}
            if job.state.terminal:
                new["finishedAt"] = iso_or_none(job.finished_at)
            if job.state is JobState.SUCCEEDED:
                new["lastSucceeded"] = {"backup": old.get("backup"), "backupCreatedAt": old.get("backupCreatedAt"),
                                        "finishedAt": iso_or_none(job.finished_at)}
                new["error"] = None
                new["announced"] = None
            elif job.state.terminal:
                new["error"] = job.error_json()
            return new

        record = self._write(key, move)  # move leaves an unchanged record alone
        if record is None:
            return
        _log(record.data)
        if state == "Refused":
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
        key = record_key(str(instance.standby))
        record = self._store.get_record(KIND, key)
        data = record.data if record is not None else {}
        if data.get("state") in _IN_FLIGHT and data.get("jobId"):
            job = self._job(str(data["jobId"]))
            if job is None:
                error = {"code": "SyncJobMissing", "message": f"the sync job {data['jobId']} no longer exists",
                         "remediation": "Nothing to do: the next backup syncs the standby again."}
                gone = self._write(key, lambda old: {**old, "state": "Failed", "error": error}
                                   if old.get("jobId") == data["jobId"] and old.get("state") in _IN_FLIGHT else None)
                if gone is not None:
                    _log(gone.data)
            else:
                self.follow(job)
                if not job.state.terminal:
                    return SyncOutcome("busy", f"sync {job.job_id} is {job.state.value}", job.job_id)
            record = self._store.get_record(KIND, key)
            data = record.data if record is not None else {}
        elif record is not None and data.get("state") == "Refused":
            self._announce_refusal(record)
        now = self._clock.now()
        margin = timedelta(hours=self._settings.expiry_margin_hours)
        newest = next((e for e in self._backups.find(instance.container, instance.name)
                       if e.restorable_for(None, now=now, margin=margin)[0]), None)
        if newest is None or data.get("backup") == newest.blob_name:
            return None  # nothing to sync, or this backup was tried already (the next backup tries again)
        last = data.get("lastSucceeded")
        synced = from_iso(last.get("backupCreatedAt")) if isinstance(last, dict) else None
        if synced is not None and synced >= newest.created:
            return None
        logger.info("standby %s lags behind %s: syncing %s", instance.standby.service_name, instance.name,
                    newest.blob_name)
        return self.sync(instance, backup=newest.blob_name)

    # -- views -------------------------------------------------------------------------------------
    def standbys(self) -> list[dict[str, Any]]:
        """Every standby record with its lag, by primary."""
        now = self._clock.now()
        views = [standby_view(r.data, now) for r in self._store.records(KIND)]
        return sorted(views, key=lambda v: str(v.get("primary") or ""))

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
            return self._store.get(job_id)
        except ValueError:
            return None

    def _write(self, key: str, change: Callable[[dict[str, Any]], dict[str, Any] | None], *,
               current: Record | None = None) -> Record | None:
        """:meth:`JobStore.update_record` of the standby record (``current``: as just read); written, or None."""
        try:
            return self._store.update_record(KIND, key, change, attempts=_WRITE_ATTEMPTS, current=current)
        except JobConflictError:
            logger.warning("standby record %s kept changing; this update is left to the hourly catch-up", key)
            return None

    def _announce_refusal(self, record: Record) -> None:
        """Once per refusal streak: the flag is set only after the notifier succeeded."""
        data = record.data
        if data.get("state") != "Refused" or data.get("announced") == "Refused":
            return
        error = data.get("error") or {}
        standby = str(data.get("standby") or "").rsplit("/", 1)[-1]
        primary = str(data.get("primary") or "").rsplit("/", 1)[-1]
        lines = [f"apim-dr: standby sync of {standby} (primary {primary}) refused",
                 f"Backup: {data.get('backup')}", f"Why: ({error.get('code')}) {error.get('message')}"]
        if error.get("remediation"):
            lines.append(f"What to do: {error['remediation']}")
        last = data.get("lastSucceeded")
        lines.append(f"Standby last restored from: {last.get('backup') if isinstance(last, dict) else 'never'}")
        details = {key: data.get(key) for key in ("primary", "standby", "jobId", "backup", "state", "error",
                                                  "lastSucceeded")}
        try:
            self._notifier.announce_event(Event("standby-sync-refused", "\n".join(lines), details))
        except Exception as e:
            logger.warning("announcing the refused standby sync of %s failed (%s); the hourly catch-up retries",
                           standby, type(e).__name__)
            return
        self._write(record.key, lambda old: {**old, "announced": "Refused"} if old.get("state") == "Refused" else None)


def _log(data: dict[str, Any]) -> None:
    """``APIMDR_STANDBY {json}``: the record as it now stands (its contract fields only)."""
    log_event(LOG_PREFIX, {key: data.get(key) for key in LOG_FIELDS},
              warning=data.get("state") in ("Failed", "Refused"))


def _merge(old: dict[str, Any], attempt: dict[str, Any]) -> dict[str, Any]:
    """A new attempt replaces the last one; what the standby last got and what was announced stay."""
    return {**attempt, "lastSucceeded": old.get("lastSucceeded"), "announced": old.get("announced"),
            "lastSkipped": old.get("lastSkipped")}


def _record_state(job: Job) -> str:
    if job.state is JobState.SUCCEEDED:
        return "Succeeded"
    if job.state is JobState.REFUSED:
        return "Refused"
    if job.state.terminal:
        return "Failed"
    return "Running" if job.state is JobState.RUNNING else "Planned"
