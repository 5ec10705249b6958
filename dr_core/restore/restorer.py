"""Incident restore: resolve the request, run every preflight check, then start it once.

Nothing here writes to ARM before every check has passed: a refused restore costs reads
only (ARM GETs, one index-tag query, one lock read). Each check is reported by name, so the
operator sees all the reasons at once, each with what to do.

One restore per target at a time: a lock row (``PartitionKey = "restore-lock"``, one row per
target) is taken with a conditional write when the job is created and released when the job
ends; a lock whose job has ended is taken over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dr_core.azure.arm import ServiceInfo
from dr_core.azure.tables import JobConflictError
from dr_core.catalog.tags import RESTORABLE_TIERS, CatalogEntry, entry_from_tags, parse_backup_blob_name
from dr_core.inventory.resolver import Resolved, UnknownInstanceError
from dr_core.jobs.job import Job, JobKind, JobState, make_job_id
from dr_core.jobs.messages import WorkMessage
from dr_core.jobs.notify import log_transition
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import ArmCallError, AzureUnavailableError, DrError, InvalidRequestError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.settings import StorageAccessType

if TYPE_CHECKING:
    from dr_core.azure.arm import ApimManagement
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.tables import JobStore
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.messages import WorkQueue
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings

__all__ = [
    "Check",
    "Outcome",
    "RestorePlan",
    "RestoreRequest",
    "Restorer",
    "parse_restore_request",
]

logger = logging.getLogger(__name__)

_IDLE = "succeeded"


@dataclass(frozen=True)
class RestoreRequest:
    target: str
    source: str | None = None
    backup: str = "latest"
    dry_run: bool = False
    confirm: str | None = None


_REQUEST_FIELDS = {"target", "source", "backup", "dryRun", "confirm"}


def parse_restore_request(data: dict[str, Any]) -> RestoreRequest:
    """Validate the JSON body of ``POST /api/restores``; every bad field is named at once."""
    bad: dict[str, str] = {}
    for key in sorted(set(data) - _REQUEST_FIELDS):
        bad[key[:40]] = "unknown field; allowed: " + ", ".join(sorted(_REQUEST_FIELDS))

    def text(name: str, *, required: bool = False, limit: int = 400) -> str | None:
        value = data.get(name)
        if value is None:
            if required:
                bad[name] = "required"
            return None
        if not isinstance(value, str) or not value.strip():
            bad[name] = "must be a non-empty string"
            return None
        if len(value) > limit:
            bad[name] = f"at most {limit} characters"
            return None
        return value.strip()

    target = text("target", required=True)
    source = text("source")
    backup = text("backup") or "latest"
    confirm = text("confirm", limit=100)
    dry_run = data.get("dryRun", False)
    if not isinstance(dry_run, bool):
        bad["dryRun"] = "must be true or false"
    if backup != "latest" and "backup" not in bad:
        try:
            parse_backup_blob_name(backup)
        except ValueError as e:
            bad["backup"] = f"must be \"latest\" or a backup blob name ({e})"
    if bad:
        raise InvalidRequestError("invalid restore request: " + "; ".join(f"{k}: {v}" for k, v in bad.items()),
                                  fields=bad)
    assert target is not None
    return RestoreRequest(target=target, source=source, backup=backup, dry_run=bool(dry_run), confirm=confirm)


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIPPED = "skipped"


@dataclass
class Check:
    name: str
    outcome: Outcome
    message: str
    remediation: str | None = None
    status: int = 422

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "outcome": self.outcome, "message": self.message}
        if self.remediation:
            body["remediation"] = self.remediation
        return body


@dataclass
class RestorePlan:
    target: ApimResourceId
    source: ApimResourceId
    target_info: ServiceInfo | None
    backup: CatalogEntry | None
    storage_account: str
    access_type: StorageAccessType
    client_id: str | None
    checks: list[Check] = field(default_factory=list)
    margin: timedelta = timedelta(0)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    @property
    def refused(self) -> bool:
        return bool(self.failed_checks)

    @property
    def status(self) -> int:
        """503 when Azure could not be read, 409 when state conflicts (busy, locked, needs confirmation), else 422."""
        statuses = {c.status for c in self.failed_checks}
        return next((s for s in (503, 409) if s in statuses), 422)

    def to_json(self, *, now: datetime) -> dict[str, Any]:
        target_sku = self.target_info.sku if self.target_info else None
        return {
            "target": str(self.target),
            "source": str(self.source),
            "backup": self.backup.to_json(now=now, target_sku=target_sku, margin=self.margin) if self.backup else None,
            "storage": {"account": self.storage_account, "accessType": self.access_type.value,
                        "clientId": self.client_id},
            "preflight": [c.to_json() for c in self.checks],
            "refused": self.refused,
        }


class Restorer:
    """Plans restores (every preflight check, nothing written) and starts them (job, lock, start message)."""

    def __init__(self, *, settings: Settings, store: JobStore, queue: WorkQueue, arm: ApimManagement,
                 backups: BackupStore, resolver: InstanceResolver, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._arm = arm
        self._backups = backups
        self._resolver = resolver
        self._clock = clock

    def plan(self, request: RestoreRequest, *, now: datetime | None = None) -> RestorePlan:
        """Resolve and check a restore without writing anything.

        :raises InvalidRequestError: malformed references. :raises UnknownInstanceError: unknown target or source.
        """
        now = now or self._clock.now()
        settings = self._settings
        target = self._resolve(request.target, "target")
        if request.source:
            source = self._resolve(request.source, "source")
        else:
            primary = self._resolver.primary_of(target.resource_id)
            # Without a primary, the target's own backup is restored into it.
            source = target if primary is None else Resolved(primary.resource_id, primary)
        options = target.protected or source.protected
        access_type = options.access_type if options else settings.access_type
        client_id = (options.client_id if options else None) or settings.identity_client_id
        container = source.protected.container if source.protected else settings.backup_container

        checks: list[Check] = []
        target_info: ServiceInfo | None = None
        try:
            target_info = self._arm.get_service(target.resource_id)
        except ArmCallError as e:
            checks.append(Check("target-exists", Outcome.FAIL,
                                f"reading the target failed: ({e.error.code}) {e.error.message}",
                                e.error.remediation, status=409 if e.error.retryable else 422))
        except AzureUnavailableError as e:
            checks.append(Check("target-exists", Outcome.FAIL, f"reading the target failed: {e.message}",
                                e.remediation, status=503))

        margin = timedelta(hours=settings.expiry_margin_hours)
        backup = self._find_backup(request, source=source.resource_id, container=container,
                                   target_info=target_info, now=now, margin=margin, checks=checks)
        plan = RestorePlan(target.resource_id, source.resource_id, target_info, backup, settings.backup_account,
                           access_type, client_id, checks, margin)
        _check_backup(plan, now, margin)
        _check_target(plan, request, self._resolver.protected_keys())
        self._check_cors(plan)
        self._check_lock(plan)
        return plan

    def _resolve(self, reference: str, what: str) -> Resolved:
        try:
            return self._resolver.instance_or_standby(reference)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"invalid restore request: {what}: {e.message}", fields={what: e.message}) from e
        except UnknownInstanceError as e:
            raise UnknownInstanceError(f"{what} {e.message}") from e

    def start(self, request: RestoreRequest, *, trigger: str = "http") -> tuple[RestorePlan, Job | None]:
        """Preflight, then (unless dry run or refused) create the job, take the lock and enqueue the start.

        Returns the plan and the job: ``None`` for a dry run; a ``Refused`` job for a refusal (kept for audit).
        """
        now = self._clock.now().replace(microsecond=0)
        plan = self.plan(request, now=now)
        if request.dry_run:
            return plan, None
        job = self._new_job(plan, trigger=trigger, now=now)
        if plan.refused:
            failed = plan.failed_checks
            job.refuse(now, message="; ".join(f"{c.name}: {c.message}" for c in failed),
                       remediation=" ".join(c.remediation or "" for c in failed).strip())
            try:
                self._store.create(job)
                log_transition(job, now=now)
            except JobConflictError:
                pass
            return plan, job
        if not self._store.take_restore_lock(plan.target, job.job_id):
            holder = self._store.restore_in_progress(plan.target)
            plan.checks = [c for c in plan.checks if c.name != "no-restore-in-progress"]
            plan.checks.append(Check("no-restore-in-progress", Outcome.FAIL,
                                     f"restore {holder.job_id if holder else 'another job'} into the target started "
                                     "meanwhile", "Follow the running restore; start another when it ends.",
                                     status=409))
            return plan, None
        try:
            self._store.create(job)
        except JobConflictError:
            return plan, self._store.get(job.job_id)
        log_transition(job, now=now)
        self._queue.send([(WorkMessage("start", job=job.job_id), 0)])
        return plan, job

    def _find_backup(self, request: RestoreRequest, *, source: ApimResourceId, container: str,
                     target_info: ServiceInfo | None, now: datetime, margin: timedelta,
                     checks: list[Check]) -> CatalogEntry | None:
        account = self._settings.backup_account
        if request.backup != "latest":
            try:
                tags = self._backups.tags(container, request.backup)
            except AzureUnavailableError as e:
                checks.append(Check("backup-exists", Outcome.FAIL, f"the backup could not be read: {e.message}",
                                    e.remediation, status=503))
                return None
            if tags is None:
                checks.append(Check("backup-exists", Outcome.FAIL,
                                    f"backup {request.backup} does not exist in {account}/{container}",
                                    "List restorable backups with GET /api/backups?service=<name>."))
                return None
            entry = entry_from_tags(container, request.backup, tags)
            if entry is None:
                checks.append(Check("backup-exists", Outcome.FAIL,
                                    f"{request.backup} is not a completed apim-dr backup (no success tags)",
                                    "Pick a backup listed by GET /api/backups?service=<name>."))
                return None
            if entry.service_name.lower() != source.service_name.lower():
                checks.append(Check("backup-exists", Outcome.FAIL,
                                    f"{request.backup} is a backup of {entry.service_name}, not of the source "
                                    f"{source.service_name}", "Name the right source, or omit the backup."))
                return None
            checks.append(Check("backup-exists", Outcome.PASS, f"{container}/{entry.blob_name}"))
            return entry
        try:
            entries = self._backups.find(container, source.service_name)
        except AzureUnavailableError as e:
            checks.append(Check("backup-exists", Outcome.FAIL, f"the backup catalog could not be read: {e.message}",
                                e.remediation, status=503))
            return None
        target_sku = target_info.sku if target_info else None
        for entry in entries:
            if entry.restorable_for(target_sku, now=now, margin=margin)[0]:
                checks.append(Check("backup-exists", Outcome.PASS, f"latest restorable: {container}/{entry.blob_name}"))
                return entry
        older = self._uncatalogued_hint(container, source, entries)
        if not entries:
            checks.append(Check("backup-exists", Outcome.FAIL, f"no backup of {source.service_name} in {container}",
                                older or "Start a backup of the source first (POST /api/backups) or name another "
                                         "source."))
            return None
        reasons = sorted({entry.restorable_for(target_sku, now=now, margin=margin)[1] or "" for entry in entries})
        checks.append(Check("backup-exists", Outcome.FAIL,
                            f"none of the {len(entries)} backups of {source.service_name} can be restored into the "
                            f"target: {'; '.join(reasons)[:400]}",
                            older or "Take a new backup of the source, or restore into an instance of the backup's "
                                     "tier."))
        # Report the newest one so the individual checks below say exactly why.
        return entries[0]

    def _uncatalogued_hint(self, container: str, source: ApimResourceId, entries: list[CatalogEntry]) -> str | None:
        """What to do when backups labelled by an older apim-dr (no catalog tag) exist; None if there are none.

        Read only (a preflight changes nothing): relabelling is the CLI's or the daily retention run's.
        """
        try:
            names = set(self._backups.finished_names(container, source.service_name))
        except DrError:
            return None
        older = len(names - {e.blob_name for e in entries})
        if not older:
            return None
        return (f"{older} backup(s) of {source.service_name} were labelled by an older apim-dr version and are not "
                f"in the catalog yet: run `apim-dr backups relabel --service {source.service_name}` (the daily "
                "retention run does it too), then retry.")

    def _check_cors(self, plan: RestorePlan) -> None:
        try:
            rules = self._backups.cors_rule_count()
        except AzureUnavailableError as e:
            plan.checks.append(Check("backup-account-cors-disabled", Outcome.WARN,
                                     f"could not read the backup account's CORS rules ({e.message}); APIM fails "
                                     "with InvalidParameters if any exist",
                                     "Grant the Function App's identity Microsoft.Storage/storageAccounts/"
                                     "blobServices/read on the backup account (the 'APIM DR Backup Catalog' role "
                                     "of infra/ has it)."))
            return
        if rules:
            plan.checks.append(Check("backup-account-cors-disabled", Outcome.FAIL,
                                     f"the backup account's Blob service has {rules} CORS rule(s); APIM backup and "
                                     "restore fail with InvalidParameters while any exist",
                                     "Remove the CORS rules of the backup account's Blob service."))
        else:
            plan.checks.append(Check("backup-account-cors-disabled", Outcome.PASS, "no CORS rules"))

    def _check_lock(self, plan: RestorePlan) -> None:
        holder = self._store.restore_in_progress(plan.target)
        if holder is None:
            plan.checks.append(Check("no-restore-in-progress", Outcome.PASS, "no other restore into the target"))
        else:
            plan.checks.append(Check("no-restore-in-progress", Outcome.FAIL,
                                     f"restore {holder.job_id} into the target is {holder.state.value}",
                                     f"Follow it at /api/operations/{holder.job_id}; start another when it ends.",
                                     status=409))

    def _new_job(self, plan: RestorePlan, *, trigger: str, now: datetime) -> Job:
        backup = plan.backup
        return Job(
            job_id=make_job_id(JobKind.RESTORE, plan.target, now, unique=True),
            kind=JobKind.RESTORE,
            instance=str(plan.target),
            service_name=plan.target.service_name,
            state=JobState.PLANNED,
            trigger=trigger,
            slot=now,
            created_at=now,
            updated_at=now,
            deadline=now + timedelta(minutes=self._settings.restore_timeout_minutes),
            storage_account=plan.storage_account,
            container=backup.container if backup else "",
            blob_name=backup.blob_name if backup else "",
            access_type=plan.access_type.value,
            client_id=plan.client_id if plan.access_type is StorageAccessType.USER_ASSIGNED else None,
            source_instance=str(plan.source),
            sku=backup.sku if backup else None,
            next_action_at=now,
        )


def _check_backup(plan: RestorePlan, now: datetime, margin: timedelta) -> None:
    entry = plan.backup
    if entry is None:
        plan.checks.append(Check("backup-not-expired", Outcome.SKIPPED, "no backup to check"))
        plan.checks.append(Check("target-tier-matches-backup", Outcome.SKIPPED, "no backup to check"))
        return
    if now >= entry.expires:
        plan.checks.append(Check("backup-not-expired", Outcome.FAIL, f"the backup expired at {iso(entry.expires)}",
                                 "APIM refuses backups older than 30 days; take or pick a newer one."))
    elif now + margin >= entry.expires:
        plan.checks.append(Check("backup-not-expired", Outcome.FAIL,
                                 f"the backup expires at {iso(entry.expires)}, within the {margin} margin "
                                 "(a restore can take longer than that)",
                                 "Pick a newer backup, or take one now."))
    else:
        plan.checks.append(Check("backup-not-expired", Outcome.PASS, f"expires {iso(entry.expires)}"))
    info = plan.target_info
    if info is None:
        plan.checks.append(Check("target-tier-matches-backup", Outcome.SKIPPED, "target not readable"))
    elif info.sku.lower() != entry.sku.lower():
        plan.checks.append(Check("target-tier-matches-backup", Outcome.FAIL,
                                 f"the target is {info.sku}, the backup is {entry.sku}; APIM would fail with "
                                 f"\"Cannot restore: current SKU is '{info.sku}', backup SKU is '{entry.sku}'\"",
                                 "Restore into an instance of the backup's tier, or change the target's tier first."))
    else:
        plan.checks.append(Check("target-tier-matches-backup", Outcome.PASS, f"both {info.sku}"))


def _check_target(plan: RestorePlan, request: RestoreRequest, primaries: frozenset[str]) -> None:
    info = plan.target_info
    if info is None:
        for name in ("target-tier-supports-restore", "target-idle", "target-has-identity"):
            plan.checks.append(Check(name, Outcome.SKIPPED, "target not readable"))
    else:
        if info.sku.lower() in RESTORABLE_TIERS:
            plan.checks.append(Check("target-tier-supports-restore", Outcome.PASS, info.sku))
        else:
            plan.checks.append(Check("target-tier-supports-restore", Outcome.FAIL,
                                     f"the {info.sku} tier cannot restore backups",
                                     "Use a Developer, Basic, Standard or Premium (classic) standby."))
        if info.provisioning_state.lower() == _IDLE:
            plan.checks.append(Check("target-idle", Outcome.PASS, "provisioningState Succeeded"))
        else:
            plan.checks.append(Check("target-idle", Outcome.FAIL,
                                     f"the target is {info.provisioning_state or 'in an unknown state'}; another "
                                     "operation is running on it", "Wait until it is Succeeded, then retry.",
                                     status=409))
        plan.checks.append(_identity_check(plan, info))
    name = plan.target.service_name
    is_source = plan.target.key == plan.source.key
    is_primary = plan.target.key in primaries
    if (is_source or is_primary) and (request.confirm or "") != name:
        why = "the target is the source" if is_source else "the target is a protected primary instance"
        plan.checks.append(Check("target-is-not-source-or-primary", Outcome.FAIL,
                                 f"{why}: restoring overwrites its live configuration",
                                 f"If this is intended, repeat the request with \"confirm\": \"{name}\".",
                                 status=409))
    else:
        plan.checks.append(Check("target-is-not-source-or-primary", Outcome.PASS,
                                 "confirmed by name" if (is_source or is_primary) else "standby target"))


def _identity_check(plan: RestorePlan, info: ServiceInfo) -> Check:
    access = plan.access_type
    if access is StorageAccessType.ACCESS_KEY:
        return Check("target-has-identity", Outcome.PASS, "AccessKey: no identity needed")
    if access is StorageAccessType.SYSTEM_ASSIGNED:
        if info.has_system_identity:
            return Check("target-has-identity", Outcome.PASS, "system-assigned identity enabled")
        return Check("target-has-identity", Outcome.FAIL,
                     "the target has no system-assigned identity (identities are not part of a backup)",
                     "Enable the target's system-assigned identity and grant it Storage Blob Data Contributor on "
                     "the backup account.")
    if plan.client_id and plan.client_id.lower() in info.user_assigned_client_ids:
        return Check("target-has-identity", Outcome.PASS, f"user-assigned identity {plan.client_id}")
    return Check("target-has-identity", Outcome.FAIL,
                 f"the target has no user-assigned identity with client ID {plan.client_id}",
                 "Assign that identity to the target and grant it Storage Blob Data Contributor on the backup account.")
