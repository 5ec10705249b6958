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

Each drill is one record (kind ``drill``, key = its restore job ID) with RTO (restore requested ->
``Succeeded``, seconds) and the RPO at drill time (drill requested - backup created, hours). A
failed drill is announced once (``Notifier.announce_event``), also when its restore job failed: the
worker leaves that announcement to the drill (``announces``). Every start and end logs ``APIMDR_DRILL {json}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dr_core.azure.tables import JobConflictError, Record
from dr_core.backup.manifest import COLLECTIONS, manifest_blob_name, summary_from_manifest
from dr_core.jobs.job import Job, JobKind, JobState
from dr_core.jobs.notify import Event, log_event
from dr_core.kernel.clock import from_iso, iso, iso_or_none
from dr_core.kernel.errors import (
    ArmCallError,
    AzureUnavailableError,
    ConflictError,
    DrError,
    InvalidRequestError,
    NotFoundError,
)
from dr_core.kernel.settings import ProtectedInstance
from dr_core.restore.restorer import RestoreRequest

if TYPE_CHECKING:
    from dr_core.azure.arm import ApimManagement, ConfigurationSummary
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.tables import JobStore
    from dr_core.catalog.tags import CatalogEntry
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.notify import Notifier
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings
    from dr_core.restore.restorer import Restorer

__all__ = [
    "KIND",
    "LOG_FIELDS",
    "LOG_PREFIX",
    "TRIGGER",
    "DrillRefusedError",
    "Drills",
    "NoVerifiableBackupError",
    "compare",
    "public_view",
]

logger = logging.getLogger(__name__)

KIND = "drill"
TRIGGER = "drill"
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
_TRIMMED_NAMES = 50


def public_view(data: dict[str, Any]) -> dict[str, Any]:
    """A drill record as the API and the CLI show it (bookkeeping left out)."""
    return {k: v for k, v in data.items() if k != "announced"}


class DrillRefusedError(ConflictError):
    """The drill cannot start now: its target is a primary, or another restore runs into it."""

    code = "DrillRefused"


class NoVerifiableBackupError(NotFoundError):
    """No restorable backup of the instance has a manifest to verify a drill against."""

    code = "NoVerifiableBackup"


class _RetryLater(Exception):
    """Verification could not read what it needs right now (ARM or storage unreachable, throttled)."""


class _Unverifiable(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


def compare(expected: tuple[str, ...] | list[str], found: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """One collection's verification; names compare case-insensitively, as ARM's do."""
    wanted = {n.lower() for n in expected}
    present = {n.lower() for n in found}
    return {
        "expected": sorted(expected), "found": sorted(found),
        "missing": sorted(n for n in expected if n.lower() not in present),
        "unexpected": sorted(n for n in found if n.lower() not in wanted),
    }


def _verification(expected: ConfigurationSummary, found: ConfigurationSummary) -> dict[str, Any]:
    wanted, seen = expected.to_json(), found.to_json()
    return {name: compare(wanted[name], seen[name]) for name in COLLECTIONS}


def _differences(verification: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name in COLLECTIONS:
        part = verification.get(name) or {}
        for what in ("missing", "unexpected"):
            names = part.get(what) or []
            if names:
                shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                out.append(f"{name} {what}: {shown}")
    return out


class Drills:
    """Starts drills (scheduled and on demand), verifies them when their restore ends, keeps their history."""

    def __init__(self, *, settings: Settings, store: JobStore, restorer: Restorer, resolver: InstanceResolver,
                 arm: ApimManagement, backups: BackupStore, notifier: Notifier, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._restorer = restorer
        self._resolver = resolver
        self._arm = arm
        self._backups = backups
        self._notifier = notifier
        self._clock = clock

    # -- starting ----------------------------------------------------------------------------------
    def start(self, instance: ProtectedInstance | object, *, trigger: str = "on-demand") -> dict[str, Any]:
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
        holder = self._store.restore_in_progress(target)
        if holder is not None:
            raise DrillRefusedError(f"restore {holder.job_id} into the drill target {target.service_name} is still "
                                    f"{holder.state.value}", code="DrillTargetBusy",
                                    remediation="Follow that restore; start the drill when it has ended.")
        now = self._clock.now()
        backup, passed_over = self._pick_backup(inst, now)
        plan, job = self._restorer.start(
            RestoreRequest(target=str(target), source=str(inst.resource_id), backup=backup.blob_name),
            trigger=TRIGGER)
        if job is None:
            raise DrillRefusedError(f"another restore into {target.service_name} started meanwhile",
                                    code="DrillTargetBusy", remediation="Start the drill when that restore has ended.")
        created = plan.backup.created if plan.backup is not None else backup.created
        data: dict[str, Any] = {
            "instance": str(inst.resource_id), "target": str(target), "jobId": job.job_id,
            "backup": backup.blob_name, "backupCreatedAt": iso(created), "requestedAt": iso(job.created_at),
            "finishedAt": None, "state": "running", "rtoSeconds": None,
            "rpoHoursAtDrill": round(max(0.0, (job.created_at - created).total_seconds()) / 3600, 2),
            "verification": None, "error": None, "trigger": trigger, "announced": False,
        }
        if passed_over:
            data["passedOver"] = passed_over
        if job.state is JobState.REFUSED:
            data |= {"state": "failed", "finishedAt": iso_or_none(job.finished_at),
                     "error": job.error_json()}
        record = Record(KIND, job.job_id, data)
        try:
            self._store.put_record(record)
        except JobConflictError:
            existing = self._store.get_record(KIND, job.job_id)
            return existing.data if existing is not None else data
        self._log(data)
        if data["state"] == "failed":
            self._announce(record)
        return data

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
        if job.kind is JobKind.RESTORE and job.trigger == TRIGGER and job.state.terminal:
            self.finish(job)

    def announces(self, job: Job) -> bool:
        """A drill's failed restore is announced once, as a failed drill (which says it was a drill)."""
        return job.kind is JobKind.RESTORE and job.trigger == TRIGGER

    def finish(self, job: Job) -> dict[str, Any] | None:
        """Verify and record a drill whose restore has ended (idempotent); its record, or None if still running."""
        if not job.state.terminal:
            return None
        record = self._store.get_record(KIND, job.job_id) or Record(KIND, job.job_id, self._rebuilt(job))
        data = record.data
        if data.get("state") != "running":
            return data
        now = self._clock.now()
        update: dict[str, Any] = {"finishedAt": iso_or_none(job.finished_at)}
        if job.state is JobState.SUCCEEDED:
            update["rtoSeconds"] = round((job.finished_at or now).timestamp() - job.created_at.timestamp(), 1)
            try:
                verification = self._verify(job)
            except _RetryLater as e:
                if now - (job.finished_at or now) < _VERIFY_GIVE_UP:
                    logger.warning("drill %s not verified yet (%s); the hourly drill timer tries again", job.job_id, e)
                    return None
                update |= {"state": "failed", "error": {
                    "code": "DrillNotVerified", "message": f"the drill target could not be read for "
                    f"{_VERIFY_GIVE_UP.total_seconds() / 3600:.0f} h after the restore: {e}",
                    "remediation": "Check that the Function App's identity may read the drill instance's APIs, "
                                   "products and named values (APIM DR Operator) and that ARM is reachable."}}
            except _Unverifiable as e:
                update |= {"state": "failed", "error": e.error}
            else:
                differences = _differences(verification)
                update |= {"verification": _fit(verification), "state": "failed" if differences else "passed"}
                if differences:
                    update["error"] = {
                        "code": "DrillVerificationFailed",
                        "message": "the restored configuration differs from the backup's source at backup time: "
                                   + "; ".join(differences),
                        "remediation": "Compare the drill instance with the backup's manifest. Changes made to the "
                                       "source while its backup ran, or to the drill instance after the restore, "
                                       "explain a difference; otherwise restores lose configuration: investigate "
                                       "before you rely on them."}
        else:
            update |= {"state": "failed",
                       "error": job.error_json()}
        record.data = {**data, **update}
        try:
            self._store.put_record(record)
        except JobConflictError:
            latest = self._store.get_record(KIND, job.job_id)
            return latest.data if latest is not None else None
        self._log(record.data)
        if record.data["state"] == "failed":
            self._announce(record)
        return record.data

    def _verify(self, job: Job) -> dict[str, Any]:
        """Manifest (what the source held at backup time) against ARM reads of the drill instance."""
        try:
            document = self._backups.get_json(job.container, manifest_blob_name(job.blob_name))
        except AzureUnavailableError as e:
            raise _RetryLater(e.message) from e
        expected = summary_from_manifest(document)
        if expected is None:
            raise _Unverifiable({
                "code": "ManifestMissing",
                "message": f"{job.container}/{manifest_blob_name(job.blob_name)} is missing or not a manifest",
                "remediation": "Drills verify against the manifest written when the backup succeeded; run a drill "
                               "of a newer backup."})
        try:
            found = self._arm.configuration_summary(job.resource_id)
        except AzureUnavailableError as e:
            raise _RetryLater(e.message) from e
        except ArmCallError as e:
            if e.error.retryable:
                raise _RetryLater(e.message) from e
            raise _Unverifiable({"code": e.error_code, "message": f"reading the drill instance failed: {e.message}",
                                 "remediation": e.remediation}) from e
        return _verification(expected, found)

    def _rebuilt(self, job: Job) -> dict[str, Any]:
        """A drill whose record was never written (crash after the job was created): rebuilt from its job."""
        logger.warning("drill %s had no record; rebuilding it from its restore job", job.job_id)
        return {"instance": job.source_instance, "target": job.instance, "jobId": job.job_id,
                "backup": job.blob_name, "backupCreatedAt": None, "requestedAt": iso(job.created_at),
                "finishedAt": None, "state": "running", "rtoSeconds": None, "rpoHoursAtDrill": None,
                "verification": None, "error": None, "trigger": "unknown", "announced": False}

    # -- the timer -----------------------------------------------------------------------------------
    def run_due(self) -> list[dict[str, Any]]:
        """The hourly timer: finish drills whose follow-up was missed, then start the drills that are due."""
        now = self._clock.now()
        records = [self._catch_up(record, now) for record in self._store.records(KIND)]
        started: list[dict[str, Any]] = []
        for inst in self._settings.instances:
            if inst.posture.drill_target is None or not self._due(inst, records, now):
                continue
            try:
                started.append(self.start(inst, trigger="schedule"))
            except (DrillRefusedError, NoVerifiableBackupError) as e:
                level = logging.ERROR if e.error_code == "DrillTargetIsPrimary" else logging.WARNING
                logger.log(level, "drill of %s not started: %s", inst.name, e.message)
                self._log({"instance": str(inst.resource_id), "target": str(inst.posture.drill_target),
                           "state": "not-started", "requestedAt": iso(now),
                           "error": {"code": e.error_code, "message": e.message, "remediation": e.remediation}})
            except DrError as e:
                logger.error("drill of %s not started: (%s) %s", inst.name, e.error_code, e.message)
        return started

    def _catch_up(self, record: Record, now: datetime) -> dict[str, Any]:
        """Finish or announce what a missed follow-up left; the drill's data as it stands afterwards."""
        data = record.data
        if data.get("state") == "failed":
            self._announce(record)
            return data
        if data.get("state") != "running":
            return data
        try:
            job = self._store.get(record.key)
        except ValueError:
            job = None
        except DrError as e:
            logger.warning("drill %s: its job could not be read (%s)", record.key, e.message)
            return data
        if job is not None:
            return self.finish(job) or data
        requested = from_iso(data.get("requestedAt")) or now
        if now - requested > timedelta(minutes=self._settings.restore_timeout_minutes) + _VERIFY_GIVE_UP:
            record.data = {**data, "state": "failed", "finishedAt": iso(now), "error": {
                "code": "DrillJobMissing", "message": f"the drill's restore job {record.key} no longer exists",
                "remediation": "Start a new drill (`apim-dr drill start`)."}}
            try:
                self._store.put_record(record)
            except JobConflictError:
                return data
            self._log(record.data)
            self._announce(record)
            return record.data
        return data

    @staticmethod
    def _due(inst: ProtectedInstance, records: list[dict[str, Any]], now: datetime) -> bool:
        mine = [d for d in records if str(d.get("instance") or "").lower() == inst.resource_id.key]
        if any(d.get("state") == "running" for d in mine):
            return False
        requested = [t for t in (from_iso(d.get("requestedAt")) for d in mine) if t is not None]
        last = max(requested, default=None)
        return last is None or now >= last + timedelta(days=inst.posture.drill_every_days)

    # -- history -------------------------------------------------------------------------------------
    def history(self, service: object | None = None) -> list[dict[str, Any]]:
        """Drills newest first, of one protected instance (resource ID, alias or name) or of all."""
        records = [r.data for r in self._store.records(KIND)]
        if service is not None:
            key = self._resolver.named(service).resource_id.key
            records = [d for d in records if str(d.get("instance") or "").lower() == key]
        records.sort(key=lambda d: str(d.get("requestedAt") or ""), reverse=True)
        return [public_view(d) for d in records[:_MAX_HISTORY]]

    # -- announcing and logging ------------------------------------------------------------------------
    def _announce(self, record: Record) -> None:
        """A failed drill, once: the flag is set only after the notifier succeeded (else the timer retries)."""
        data = record.data
        if data.get("state") != "failed" or data.get("announced"):
            return
        instance = str(data.get("instance") or "").rsplit("/", 1)[-1]
        target = str(data.get("target") or "").rsplit("/", 1)[-1]
        error = data.get("error") or {}
        lines = [f"apim-dr: restore drill of {instance} into {target} failed", f"Drill: {data.get('jobId')}",
                 f"Backup: {data.get('backup')} (created {data.get('backupCreatedAt')})",
                 f"Why: ({error.get('code')}) {error.get('message')}"]
        if error.get("remediation"):
            lines.append(f"What to do: {error['remediation']}")
        details = {k: data.get(k) for k in ("jobId", "instance", "target", "backup", "backupCreatedAt", "requestedAt",
                                            "finishedAt", "state", "rtoSeconds", "rpoHoursAtDrill", "error")}
        try:
            self._notifier.announce_event(Event("drill-failed", "\n".join(lines), details))
        except Exception as e:
            logger.warning("announcing failed drill %s did not work (%s); the hourly drill timer retries",
                           data.get("jobId"), type(e).__name__)
            return
        def mark(old: dict[str, Any]) -> dict[str, Any] | None:
            return {**old, "announced": True} if old and not old.get("announced") else None

        with contextlib.suppress(JobConflictError):  # the flag not saved: the timer may announce it again
            self._store.update_record(KIND, record.key, mark)

    @staticmethod
    def _log(data: dict[str, Any]) -> None:
        verification = data.get("verification") or {}
        counts = {what: sum(len((verification.get(c) or {}).get(what) or []) for c in COLLECTIONS)
                  for what in ("missing", "unexpected")}
        line = {key: data.get(key) for key in LOG_FIELDS} | counts
        log_event(LOG_PREFIX, line, warning=data.get("state") in ("failed", "not-started"))


def _fit(verification: dict[str, Any]) -> dict[str, Any]:
    """Keep a verification within the record's size: long name lists are cut, with counts and a flag."""
    for part in verification.values():
        part["expectedCount"], part["foundCount"] = len(part["expected"]), len(part["found"])
    if len(json.dumps(verification)) <= _RECORD_BUDGET:
        return verification
    for part in verification.values():
        part["expected"] = part["expected"][:_TRIMMED_NAMES]
        part["found"] = part["found"][:_TRIMMED_NAMES]
        part["missing"] = part["missing"][:_TRIMMED_NAMES * 2]
        part["unexpected"] = part["unexpected"][:_TRIMMED_NAMES * 2]
        part["truncated"] = True
    return verification
