"""Retention: delete each protected instance's old backups, never one a restore may still need.

Per instance (``keepLast``, ``maxAgeDays``; defaults ``APIM_DR_RETENTION_*``), a backup is
deleted only when **all** of these hold:

1. it is not among the instance's ``keepLast`` newest backups (so at least that many remain);
2. it is not the instance's newest *restorable* backup (not expired, of a tier that restores);
3. it is older than ``maxAgeDays`` (the default 37 = APIM's 30-day expiry + a 7-day grace);
4. no unfinished restore job reads it.

Only backups the catalog knows are considered: blobs carrying apim-dr's success tags, found
with the catalog's index-tag query (:meth:`BackupStore.find`), plus those labelled before the
catalog tag, which each run gives that tag first (:mod:`dr_core.catalog.relabel`). Nothing else in a container is
ever listed or deleted, except a deleted backup's sidecar documents (``<blob>.manifest.json``),
which go with it. Blobs under a time-based immutability policy or a legal hold are skipped and
reported: Blob Storage refuses their deletion (409), and they go once the policy allows it.

A dry run decides the same way and deletes nothing. Every deletion, skip and failure is one
``APIMDR_RETENTION {json}`` log line with its reason, and each run ends with a summary line.
A lifecycle-management rule in ``infra/`` deletes tagged backups well after this would, as a
backstop for when the app is not running.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from dr_core.backup.manifest import MANIFEST_SUFFIX
from dr_core.catalog.relabel import relabel_in_a_run
from dr_core.catalog.sidecars import sidecar_names
from dr_core.jobs.ids import JobKind
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import DrError
from dr_core.kernel.threads import thread_pool
from dr_core.kernel.wire import JsonObject
from dr_core.ports import DeleteOutcome

from .cursor import CURSOR_KEY, RetentionCursor
from .gfs import GfsPolicy
from .plan import Action, Decision, plan_instance
from .report import BackupResult, InstanceReport, Outcome, RetentionReport

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import BackupStore, JobStore
    from dr_core.records import Records

__all__ = [
    "LOG_PREFIX",
    "SCHEDULED_BUDGET_SECONDS",
    "SIDECAR_SUFFIXES",
    "RetentionIncompleteError",
    "RetentionPruner",
    "gfs_policy",
]

logger = logging.getLogger("apim_dr.retention")
_module_logger = logging.getLogger(__name__)

LOG_PREFIX = "APIMDR_RETENTION "
# Documents other features keep next to a backup, named after it; they are deleted with it. The full list, per
# recovery-point kind, is dr_core.catalog.sidecars.SIDECAR_SUFFIXES (the companion's too).
SIDECAR_SUFFIXES = (MANIFEST_SUFFIX,)
# Restores run at most APIM_DR_RESTORE_TIMEOUT_MINUTES (<= 1 day); their job rows are found by day.
_IN_USE_DAYS = 3
# Instances handled at once: each is one catalog query plus its deletes, all waiting on storage.
PARALLEL_INSTANCES = 8
# The timer stops starting instances after this long, within host.json's 5-minute functionTimeout;
# the next run begins with the instances this one did not reach.
SCHEDULED_BUDGET_SECONDS = 240.0

_DELETE_FORBIDDEN = (
    "The identity running the prune lacks Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete on "
    "the backup account. The Function App gets it from the 'APIM DR Backup Retention' role of infra/ (docs/deploy.md); "
    "operators are not granted it by default (use --dry-run)."
)
_IMMUTABLE = (
    "under an immutability policy or legal hold: Blob Storage refused the delete, so it is kept; it is deleted by a "
    "later run once the policy period ends or the hold is cleared"
)


class RetentionIncompleteError(DrError):
    """A scheduled prune could not delete everything it decided to (or could not read an instance's catalog)."""

    code = "RetentionIncomplete"


class RetentionPruner:
    """Decides, per protected instance, which backups to delete, and deletes them (unless a dry run)."""

    def __init__(self, *, settings: Settings, jobs: JobStore, cursor: Records[RetentionCursor], backups: BackupStore,
                 resolver: InstanceResolver, clock: Clock, parallel: int = PARALLEL_INSTANCES,
                 monotonic: Callable[[], float] = time.monotonic, copy_backups: BackupStore | None = None,
                 copy_account: str | None = None) -> None:
        self._settings = settings
        self._jobs = jobs
        self._cursor = cursor
        self._backups = backups
        # The copy account (APIM_DR_COPY_STORAGE_ACCOUNT): a copied instance's copies are pruned by the same rules.
        self._copy_backups = copy_backups
        self._copy_account = copy_account
        self._resolver = resolver
        self._clock = clock
        self._parallel = max(1, parallel)
        self._monotonic = monotonic

    def run(self, *, service: str | None = None, dry_run: bool,
            budget_seconds: float | None = None) -> RetentionReport:
        """Prune one instance (``service``: resource ID, alias or name) or every protected one.

        With ``budget_seconds`` (the timer), no new instance is started once that much time has
        passed; the instances not reached are reported and the next budgeted run starts with them.

        :raises InvalidRequestError: ``service`` is malformed. :raises UnknownInstanceError: it names
            no protected instance. :raises AzureUnavailableError: the jobs table (which restores are
            running) could not be read: nothing is deleted without knowing that.
        """
        started = self._monotonic()
        now = self._clock.now()
        report = RetentionReport(dry_run=dry_run, generated_at=now)
        selected = self._resolver.select(service)
        report.problems = selected.problems
        instances = _distinct(selected.instances)
        in_use = self._backups_in_use(now)

        use_cursor = budget_seconds is not None and service is None
        if use_cursor:
            instances = _rotate(instances, self._resume_after())
        processed = 0
        with thread_pool(self._parallel, name="retention") as pool:
            for first in range(0, len(instances), self._parallel):
                if budget_seconds is not None and self._monotonic() - started >= budget_seconds:
                    report.not_reached = [str(i.resource_id) for i in instances[first:]]
                    break
                chunk = instances[first:first + self._parallel]
                for reports in pool.map(lambda inst: self._accounts(inst, now, dry_run, in_use), chunk):
                    report.instances += reports
                processed = first + len(chunk)
        if use_cursor and not dry_run:
            last = instances[processed - 1].resource_id.key if report.not_reached and processed else None
            self._save_cursor(last, now, len(report.not_reached))
        _log({"outcome": "summary", "dryRun": dry_run, **report.totals(), "problems": len(report.problems)},
             level=logging.WARNING if report.failed or report.not_reached else logging.INFO)
        return report

    def run_scheduled(self) -> RetentionReport:
        """The daily timer: prune every instance within the time budget; raise if anything failed."""
        report = self.run(dry_run=False, budget_seconds=SCHEDULED_BUDGET_SECONDS)
        if report.failed:
            totals = report.totals()
            raise RetentionIncompleteError(
                f"retention: {totals['failed']} deletion(s) failed and {totals['instanceErrors']} instance(s) could "
                "not be read; see the APIMDR_RETENTION log lines",
                remediation="Read the failed lines' detail; the next run tries again.")
        return report

    # -- one instance ------------------------------------------------------------------------------
    def _accounts(self, instance: ProtectedInstance, now: datetime, dry_run: bool,
                  in_use: Mapping[tuple[str, str], str]) -> list[InstanceReport]:
        """The instance in the backup account, then (if its backups are copied) in the copy account: the same
        decision on each account's own catalog, so the copies age and go exactly like the originals."""
        reports = [self._instance(instance, now, dry_run, in_use, backups=self._backups, copy_account=None)]
        if instance.posture.copy and self._copy_backups is not None and self._copy_account is not None:
            reports.append(self._instance(instance, now, dry_run, in_use, backups=self._copy_backups,
                                          copy_account=self._copy_account))
        return reports

    def _instance(self, instance: ProtectedInstance, now: datetime, dry_run: bool,
                  in_use: Mapping[tuple[str, str], str], *, backups: BackupStore,
                  copy_account: str | None) -> InstanceReport:
        report = InstanceReport(instance, account=copy_account)
        try:
            entries = backups.find(instance.container, instance.name)
        except DrError as e:
            report.error = e
            _log({"outcome": Outcome.FAILED.value, "instance": str(instance.resource_id),
                  "account": copy_account or self._settings.backup_account,
                  "container": instance.container, "blobName": None, "detail": f"the catalog could not be read: "
                  f"{e.message}"}, level=logging.ERROR)
            return report
        if copy_account is None:
            # Backups labelled before the catalog tag: given it now (so the catalog finds them), decided on too.
            # (Copies carry the tags of their originals: catalogued already.)
            report.relabelled = relabel_in_a_run(backups, instance, entries, dry_run=dry_run)
            entries += [r.entry for r in report.relabelled if r.entry is not None]  # plan_instance orders them
        posture = instance.posture
        for decision in plan_instance(entries, keep_last=posture.keep_last, max_age_days=posture.max_age_days,
                                      now=now, in_use=in_use, gfs=gfs_policy(instance)):
            report.results.append(self._apply(instance, decision, dry_run, backups, copy_account))
        return report

    def _apply(self, instance: ProtectedInstance, decision: Decision, dry_run: bool, backups: BackupStore,
               copy_account: str | None) -> BackupResult:
        if decision.action is Action.KEEP:
            return BackupResult(decision, Outcome.KEPT)
        if dry_run:
            return BackupResult(decision, Outcome.WOULD_DELETE)
        entry = decision.entry
        account = copy_account or self._settings.backup_account
        try:
            outcome = backups.delete(entry.container, entry.blob_name)
        except DrError as e:
            result = BackupResult(decision, Outcome.FAILED, detail=_failure_detail(e))
            self._log_result(instance, result, logging.ERROR, account)
            return result
        if outcome is DeleteOutcome.IMMUTABLE:
            result = BackupResult(decision, Outcome.SKIPPED_IMMUTABLE, detail=_IMMUTABLE)
            self._log_result(instance, result, logging.WARNING, account)
            return result
        result = BackupResult(decision, Outcome.DELETED if outcome is DeleteOutcome.DELETED else Outcome.MISSING)
        self._delete_sidecars(entry, result, backups)
        self._log_result(instance, result, logging.ERROR if result.sidecar_failed else logging.INFO, account)
        return result

    def _delete_sidecars(self, entry: CatalogEntry, result: BackupResult, backups: BackupStore) -> None:
        for name in sidecar_names(entry):
            try:
                outcome = backups.delete(entry.container, name)
            except DrError as e:
                result.sidecar_failed = True
                result.sidecar_problems.append(f"{name}: {_failure_detail(e)}")
                continue
            if outcome is DeleteOutcome.DELETED:
                result.sidecars_deleted.append(name)
            elif outcome is DeleteOutcome.IMMUTABLE:
                result.sidecar_problems.append(f"{name}: {_IMMUTABLE}")

    def _log_result(self, instance: ProtectedInstance, result: BackupResult, level: int, account: str) -> None:
        decision = result.decision
        _log({
            "outcome": result.outcome.value,
            "instance": str(instance.resource_id),
            "account": account,
            "container": decision.entry.container,
            "blobName": decision.entry.blob_name,
            "createdAt": iso(decision.entry.created),
            "ageDays": round(decision.age_days, 1),
            "reason": decision.reason.value,
            "keptBy": [reason.value for reason in decision.kept_by],
            "why": decision.why,
            "detail": result.detail,
            "sidecarsDeleted": result.sidecars_deleted,
            "sidecarProblems": result.sidecar_problems,
        }, level=level)

    # -- guards and bookkeeping --------------------------------------------------------------------
    def _backups_in_use(self, now: datetime) -> dict[tuple[str, str], str]:
        """Backups that unfinished restore jobs (incidents, standby syncs, drills) read."""
        return {(job.container, job.blob_name): job.job_id
                for job in self._jobs.recent_jobs([JobKind.RESTORE], days=_IN_USE_DAYS, now=now)
                if not job.state.terminal and job.blob_name}

    def _resume_after(self) -> str | None:
        try:
            record = self._cursor.get(CURSOR_KEY)
        except DrError as e:
            _module_logger.warning("retention: the cursor could not be read (%s); starting from the first instance",
                                   e.message)
            return None
        return record.value.resume_after if record is not None else None

    def _save_cursor(self, resume_after: str | None, now: datetime, not_reached: int) -> None:
        cursor = RetentionCursor(resume_after, now, not_reached)
        try:
            self._cursor.update(CURSOR_KEY, lambda _: cursor, attempts=1)
        except DrError as e:  # RecordConflictError included: another run wrote it meanwhile
            # The next run merely starts elsewhere.
            _module_logger.warning("retention: the cursor was not saved: %s", e.message)


def gfs_policy(instance: ProtectedInstance) -> GfsPolicy:
    """The instance's grandfather-father-son rules (``keepDaily``, ``keepWeekly``, ``keepMonthly``)."""
    posture = instance.posture
    return GfsPolicy(days=posture.keep_daily, weeks=posture.keep_weekly, months=posture.keep_monthly)


def _distinct(instances: list[ProtectedInstance]) -> list[ProtectedInstance]:
    """One entry per (container, service name): the catalog query is the same for both."""
    seen: set[tuple[str, str]] = set()
    out: list[ProtectedInstance] = []
    for inst in instances:
        key = (inst.container, inst.name.lower())
        if key not in seen:
            seen.add(key)
            out.append(inst)
    return out


def _rotate(instances: list[ProtectedInstance], resume_after: str | None) -> list[ProtectedInstance]:
    """Sorted by resource ID, starting after ``resume_after`` (wrapping round)."""
    ordered = sorted(instances, key=lambda i: i.resource_id.key)
    if resume_after is None:
        return ordered
    start = next((n for n, inst in enumerate(ordered) if inst.resource_id.key > resume_after), 0)
    return ordered[start:] + ordered[:start]


def _failure_detail(error: DrError) -> str:
    if "AuthorizationPermissionMismatch" in error.message or " 403 " in error.message:
        return f"{error.message}. {_DELETE_FORBIDDEN}"
    return f"{error.message}. {error.remediation}" if error.remediation else error.message


def _log(record: JsonObject, *, level: int) -> None:
    logger.log(level, "%s%s", LOG_PREFIX, json.dumps(record, separators=(",", ":"), default=str))
