"""Restore drills: restore the latest backup into a dedicated drill instance and check what arrived.

For every protected instance with a ``drillTarget``, the hourly timer (:meth:`Drills.run_due`)
starts a drill once the last one is ``drillEveryDays`` old; operators start one on demand
(``apim-dr drill start``, ``POST /api/drills``). A drill is:

1. The newest restorable backup of the instance that has a manifest (:mod:`dr_core.backup.manifest`):
   normally the newest backup. One without a manifest cannot be verified and is passed over (the
   drill record names it in ``passedOver``); with none at all, no drill starts
   (:class:`NoVerifiableBackupError`) and the timer tries again the next hour.
2. A restore job (trigger ``drill``) through :meth:`dr_core.restore.restorer.Restorer.start`: every
   preflight check, no confirmation. A drill target that is a protected instance (a primary) is
   refused by name before that; the preflight would refuse it too.
3. When the restore ends (:meth:`Drills.after`, a job follower; the timer catches up if it was
   skipped), ARM reads of the drill instance (names of APIs, products, named values) are compared
   with the manifest: ``missing`` (in the backup's source, not restored) and ``unexpected``
   (restored, not in the source) per collection. No difference: ``passed``.

Each drill is one record (:class:`~.record.DrillRecord`, key = its restore job ID) with RTO (restore requested ->
``Succeeded``, seconds) and the RPO at drill time (drill requested - backup created, hours). A
failed drill is announced once (``Notifier.announce_event``), also when its restore job failed: the
worker leaves that announcement to the drill (``announces``). Every start and end logs ``APIMDR_DRILL {json}``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dr_core.backup.manifest import manifest_blob_name, summary_from_manifest
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import (
    ArmCallError,
    AzureUnavailableError,
    ConflictError,
    DrError,
    InvalidRequestError,
    NotFoundError,
)
from dr_core.kernel.events import Event, event_id, log_event
from dr_core.kernel.phases import DrillPhase, JobState
from dr_core.kernel.settings import ProtectedInstance
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordConflictError
from dr_core.records import ErrorInfo, Versioned
from dr_core.restore.request import RestoreRequest

from .record import DrillRecord, Verification

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.locks import RestoreLock
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings
    from dr_core.ports import ApimManagement, BackupStore, JobStore, Notifier
    from dr_core.records import Records
    from dr_core.restore.restorer import Restorer

__all__ = ["LOG_FIELDS", "LOG_PREFIX", "DrillRefusedError", "Drills", "NoVerifiableBackupError"]

logger = logging.getLogger(__name__)

# One line per drill start and end: the record's contract fields, the verification as counts of
# missing and unexpected names. The alert rule and the status workbook in infra/monitor read them.
LOG_PREFIX = "APIMDR_DRILL "
LOG_FIELDS = ("instance", "target", "jobId", "backup", "backupCreatedAt", "requestedAt", "finishedAt", "state",
              "rtoSeconds", "rpoHoursAtDrill", "error", "missing", "unexpected")
_CANDIDATES = 5  # backups looked at for a manifest, newest first
_MAX_HISTORY = 500
# A drill whose verification could not read ARM keeps trying (hourly) this long after its restore ended.
_VERIFY_GIVE_UP = timedelta(hours=6)
_RECORD_BUDGET = 24_000  # characters of JSON; the store takes ~30,000


class DrillRefusedError(ConflictError):
    """The drill cannot start now: its target is a primary, or another restore runs into it."""

    code = "DrillRefused"


class NoVerifiableBackupError(NotFoundError):
    """No restorable backup of the instance has a manifest to verify a drill against."""

    code = "NoVerifiableBackup"


class _RetryLater(Exception):
    """Verification could not read what it needs right now (ARM or storage unreachable, throttled)."""


class _Unverifiable(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Drills:
    """Starts drills (scheduled and on demand), verifies them when their restore ends, keeps their history."""

    def __init__(self, *, settings: Settings, records: Records[DrillRecord], jobs: JobStore, lock: RestoreLock,
                 restorer: Restorer, resolver: InstanceResolver, arm: ApimManagement, backups: BackupStore,
                 notifier: Notifier, clock: Clock) -> None:
        self._settings = settings
        self._records = records
        self._jobs = jobs
        self._lock = lock
        self._restorer = restorer
        self._resolver = resolver
        self._arm = arm
        self._backups = backups
        self._notifier = notifier
        self._clock = clock

    # -- starting ----------------------------------------------------------------------------------
    def start(self, instance: ProtectedInstance | object, *, trigger: Trigger = Trigger.ON_DEMAND) -> DrillRecord:
        """Start a drill of ``instance`` (a protected instance, or a reference to one); returns its record.

        :raises InvalidRequestError: the instance has no drill target.
        :raises DrillRefusedError: the target is a primary, or busy with another restore.
        :raises NoVerifiableBackupError: no restorable backup has a manifest.
        """
        inst = instance if isinstance(instance, ProtectedInstance) else self._resolver.protected(instance)
        target = inst.posture.drill_target
        if target is None:
            raise InvalidRequestError(f"{inst.name} has no drill target",
                                      remediation="Set drillTarget (a dedicated instance of the same tier) in its "
                                                  "APIM_DR_INSTANCES entry.")
        if self._resolver.is_protected(target):
            raise DrillRefusedError(
                f"the drill target {target.service_name} of {inst.name} is a protected instance (a primary); a drill "
                "never restores into a primary", code="DrillTargetIsPrimary",
                remediation=f"Name a dedicated drill instance in {inst.name}'s drillTarget, or stop protecting "
                            f"{target.service_name}.")
        holder = self._lock.holder(target)
        if holder is not None:
            raise DrillRefusedError(f"restore {holder.job_id} into the drill target {target.service_name} is still "
                                    f"{holder.state.value}", code="DrillTargetBusy",
                                    remediation="Follow that restore; start the drill when it has ended.")
        now = self._clock.now()
        backup, passed_over = self._pick_backup(inst, now)
        plan, job = self._restorer.start(
            RestoreRequest(target=str(target), source=str(inst.resource_id), backup=backup.blob_name),
            trigger=Trigger.DRILL)
        if job is None:
            raise DrillRefusedError(f"another restore into {target.service_name} started meanwhile",
                                    code="DrillTargetBusy", remediation="Start the drill when that restore has ended.")
        created = plan.backup.created if plan.backup is not None else backup.created
        drill = DrillRecord(
            instance=str(inst.resource_id), target=str(target), job_id=job.job_id, backup=backup.blob_name,
            backup_created_at=created, requested_at=job.created_at, finished_at=None, state=DrillPhase.RUNNING,
            rpo_hours_at_drill=round(max(0.0, (job.created_at - created).total_seconds()) / 3600, 2),
            trigger=trigger, passed_over=tuple(passed_over))
        if job.state is JobState.REFUSED:
            drill = replace(drill, state=DrillPhase.FAILED, finished_at=job.finished_at, error=ErrorInfo.of_job(job))
        return self._save(Versioned(job.job_id, drill)) or drill

    def _pick_backup(self, inst: ProtectedInstance, now: datetime) -> tuple[CatalogEntry, list[str]]:
        margin = timedelta(hours=self._settings.expiry_margin_hours)
        passed_over: list[str] = []
        for entry in self._backups.find(inst.container, inst.name):
            if not entry.restorable_for(None, now=now, margin=margin)[0]:
                continue
            manifest = self._backups.get_json(inst.container, manifest_blob_name(entry.blob_name))
            if summary_from_manifest(manifest) is not None:
                return entry, passed_over
            passed_over.append(entry.blob_name)
            if len(passed_over) >= _CANDIDATES:
                break
        where = f" ({len(passed_over)} newest restorable ones have no manifest)" if passed_over else ""
        raise NoVerifiableBackupError(
            f"no restorable backup of {inst.name} can be verified{where}",
            remediation="Take a backup (POST /api/backups or `apim-dr backup start`); its manifest is written when "
                        "it succeeds, if the Function App may read the instance's APIs, products and named values.")

    # -- finishing -----------------------------------------------------------------------------------
    def after(self, job: Job) -> None:
        """:class:`~dr_core.jobs.worker.JobFollower`: a drill's restore ended."""
        if job.kind is JobKind.RESTORE and job.trigger is Trigger.DRILL and job.state.terminal:
            self.finish(job)

    def announces(self, job: Job) -> bool:
        """A drill's failed restore is announced once, as a failed drill (which says it was a drill)."""
        return job.kind is JobKind.RESTORE and job.trigger is Trigger.DRILL

    def finish(self, job: Job) -> DrillRecord | None:
        """Verify and record a drill whose restore has ended (idempotent); its record, or None if still running."""
        if not job.state.terminal:
            return None
        record = self._records.get(job.job_id) or Versioned(job.job_id, self._rebuilt(job))
        drill = record.value
        if not drill.running:
            return drill
        ended = self._ended(job, drill)
        if ended is None:
            return None
        record.value = ended
        return self._save(record)

    def _save(self, record: Versioned[DrillRecord]) -> DrillRecord | None:
        """Write a drill's new state (conditionally), log it, and announce it if it failed.

        On a lost race, what the other writer wrote (None if it is gone): that one logs and announces.
        """
        try:
            self._records.put(record)
        except RecordConflictError:
            latest = self._records.get(record.key)
            return latest.value if latest is not None else None
        _log(record.value)
        if record.value.failed:
            self._announce(record)
        return record.value

    def _ended(self, job: Job, drill: DrillRecord) -> DrillRecord | None:
        """The drill once its restore has ended: verified (passed or failed), or None to verify later."""
        now = self._clock.now()
        drill = replace(drill, finished_at=job.finished_at)
        if job.state is not JobState.SUCCEEDED:
            return replace(drill, state=DrillPhase.FAILED, error=ErrorInfo.of_job(job))
        drill = replace(drill, rto_seconds=round((job.finished_at or now).timestamp() - job.created_at.timestamp(), 1))
        try:
            verification = self._verify(job)
        except _RetryLater as e:
            if now - (job.finished_at or now) < _VERIFY_GIVE_UP:
                logger.warning("drill %s not verified yet (%s); the hourly drill timer tries again", job.job_id, e)
                return None
            return replace(drill, state=DrillPhase.FAILED, error=ErrorInfo(
                "DrillNotVerified", f"the drill target could not be read for "
                f"{_VERIFY_GIVE_UP.total_seconds() / 3600:.0f} h after the restore: {e}",
                "Check that the Function App's identity may read the drill instance's APIs, products and named "
                "values (APIM DR Operator) and that ARM is reachable."))
        except _Unverifiable as e:
            return replace(drill, state=DrillPhase.FAILED, error=e.error)
        differences = verification.differences()
        drill = replace(drill, verification=verification.fit(_RECORD_BUDGET),
                        state=DrillPhase.FAILED if differences else DrillPhase.SUCCEEDED)
        if not differences:
            return drill
        return replace(drill, error=ErrorInfo(
            "DrillVerificationFailed",
            "the restored configuration differs from the backup's source at backup time: " + "; ".join(differences),
            "Compare the drill instance with the backup's manifest. Changes made to the source while its backup ran, "
            "or to the drill instance after the restore, explain a difference; otherwise restores lose "
            "configuration: investigate before you rely on them."))

    def _verify(self, job: Job) -> Verification:
        """Manifest (what the source held at backup time) against ARM reads of the drill instance."""
        try:
            document = self._backups.get_json(job.container, manifest_blob_name(job.blob_name))
        except AzureUnavailableError as e:
            raise _RetryLater(e.message) from e
        expected = summary_from_manifest(document)
        if expected is None:
            raise _Unverifiable(ErrorInfo(
                "ManifestMissing", f"{job.container}/{manifest_blob_name(job.blob_name)} is missing or not a manifest",
                "Drills verify against the manifest written when the backup succeeded; run a drill of a newer "
                "backup."))
        try:
            found = self._arm.configuration_summary(job.resource_id)
        except AzureUnavailableError as e:
            raise _RetryLater(e.message) from e
        except ArmCallError as e:
            if e.error.retryable:
                raise _RetryLater(e.message) from e
            raise _Unverifiable(ErrorInfo(e.error_code, f"reading the drill instance failed: {e.message}",
                                          e.remediation)) from e
        return Verification.of(expected, found)

    def _rebuilt(self, job: Job) -> DrillRecord:
        """A drill whose record was never written (crash after the job was created): rebuilt from its job."""
        logger.warning("drill %s had no record; rebuilding it from its restore job", job.job_id)
        return DrillRecord(instance=job.source_instance, target=job.instance, job_id=job.job_id,
                           backup=job.blob_name, backup_created_at=None, requested_at=job.created_at,
                           finished_at=None, state=DrillPhase.RUNNING, trigger=Trigger.UNKNOWN)

    # -- the timer -----------------------------------------------------------------------------------
    def run_due(self) -> list[DrillRecord]:
        """The hourly timer: finish drills whose follow-up was missed, then start the drills that are due."""
        now = self._clock.now()
        drills = [self._catch_up(record, now) for record in self._records.all()]
        started: list[DrillRecord] = []
        for inst in self._settings.instances:
            if inst.posture.drill_target is None or not _due(inst, drills, now):
                continue
            try:
                started.append(self.start(inst, trigger=Trigger.SCHEDULE))
            except (DrillRefusedError, NoVerifiableBackupError) as e:
                level = logging.ERROR if e.error_code == "DrillTargetIsPrimary" else logging.WARNING
                logger.log(level, "drill of %s not started: %s", inst.name, e.message)
                _log(DrillRecord(instance=str(inst.resource_id), target=str(inst.posture.drill_target), job_id=None,
                                 backup=None, backup_created_at=None, requested_at=now, finished_at=None,
                                 state=DrillPhase.NOT_STARTED, error=ErrorInfo.of_error(e)))
            except DrError as e:
                logger.error("drill of %s not started: (%s) %s", inst.name, e.error_code, e.message)
        return started

    def _catch_up(self, record: Versioned[DrillRecord], now: datetime) -> DrillRecord:
        """Finish or announce what a missed follow-up left; the drill as it stands afterwards."""
        drill = record.value
        if drill.failed:
            self._announce(record)
            return drill
        if not drill.running:
            return drill
        try:
            job = self._jobs.get(record.key)
        except ValueError:
            job = None
        except DrError as e:
            logger.warning("drill %s: its job could not be read (%s)", record.key, e.message)
            return drill
        if job is not None:
            return self.finish(job) or drill
        requested = drill.requested_at or now
        if now - requested <= timedelta(minutes=self._settings.restore_timeout_minutes) + _VERIFY_GIVE_UP:
            return drill
        record.value = replace(drill, state=DrillPhase.FAILED, finished_at=now, error=ErrorInfo(
            "DrillJobMissing", f"the drill's restore job {record.key} no longer exists",
            "Start a new drill (`apim-dr drill start`)."))
        return self._save(record) or drill

    # -- history -------------------------------------------------------------------------------------
    def history(self, service: object | None = None) -> list[DrillRecord]:
        """Drills newest first, of one protected instance (resource ID, alias or name) or of all."""
        drills = [r.value for r in self._records.all()]
        if service is not None:
            key = self._resolver.named(service).resource_id.key
            drills = [d for d in drills if (d.instance or "").lower() == key]
        drills.sort(key=lambda d: d.requested_at.isoformat() if d.requested_at else "", reverse=True)
        return drills[:_MAX_HISTORY]

    # -- announcing ------------------------------------------------------------------------------------
    def _announce(self, record: Versioned[DrillRecord]) -> None:
        """A failed drill, once: the flag is set only after the notifier succeeded (else the timer retries)."""
        drill = record.value
        if not drill.failed or drill.announced:
            return
        instance = (drill.instance or "").rsplit("/", 1)[-1]
        target = (drill.target or "").rsplit("/", 1)[-1]
        error = drill.error or ErrorInfo()
        data = drill.to_json()
        lines = [f"apim-dr: restore drill of {instance} into {target} failed", f"Drill: {drill.job_id}",
                 f"Backup: {drill.backup} (created {data['backupCreatedAt']})",
                 f"Why: ({error.code}) {error.message}"]
        if error.remediation:
            lines.append(f"What to do: {error.remediation}")
        details = {k: data[k] for k in ("jobId", "instance", "target", "backup", "backupCreatedAt", "requestedAt",
                                        "finishedAt", "state", "rtoSeconds", "rpoHoursAtDrill", "error")}
        try:
            self._notifier.announce_event(Event("drill-failed", "\n".join(lines), details,
                                                event_id=event_id("drill-failed", drill.job_id or "")))
        except Exception as e:
            logger.warning("announcing failed drill %s did not work (%s); the hourly drill timer retries",
                           drill.job_id, type(e).__name__)
            return

        def mark(old: DrillRecord | None) -> DrillRecord | None:
            return replace(old, announced=True) if old is not None and not old.announced else None

        with contextlib.suppress(RecordConflictError):  # the flag not saved: the timer may announce it again
            self._records.update(record.key, mark)


def _due(inst: ProtectedInstance, drills: list[DrillRecord], now: datetime) -> bool:
    mine = [d for d in drills if (d.instance or "").lower() == inst.resource_id.key]
    if any(d.running for d in mine):
        return False
    last = max((d.requested_at for d in mine if d.requested_at is not None), default=None)
    return last is None or now >= last + timedelta(days=inst.posture.drill_every_days)


def _log(drill: DrillRecord) -> None:
    """``APIMDR_DRILL {json}``: the record's contract fields, the verification as counts."""
    data: JsonObject = drill.to_json()
    counts = drill.verification.counts() if drill.verification is not None else {"missing": 0, "unexpected": 0}
    line = {key: data.get(key) for key in LOG_FIELDS} | counts
    log_event(LOG_PREFIX, line, warning=drill.state in (DrillPhase.FAILED, DrillPhase.NOT_STARTED))
