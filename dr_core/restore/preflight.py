"""The restore preflight: resolve a request and run every check by name, writing nothing.

Nothing is written to ARM before every check has passed: a refused restore costs reads only (ARM
GETs, one index-tag query, one lock read). Each check is reported by name, so the operator sees
all the reasons at once, each with what to do. The ten checks: ``target-exists``,
``backup-exists``, ``backup-not-expired``, ``target-tier-matches-backup``,
``target-tier-supports-restore``, ``target-idle``, ``target-has-identity``,
``target-is-not-source-or-primary``, ``backup-account-cors-disabled``, ``no-restore-in-progress``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from dr_core.catalog.entry import RESTORABLE_TIERS, CatalogEntry
from dr_core.catalog.tags import entry_from_tags
from dr_core.copies.choice import RecoveryPointSources, SourceChoice
from dr_core.inventory.resolver import Resolved, UnknownInstanceError
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import ArmCallError, AzureUnavailableError, DrError, InvalidRequestError
from dr_core.kernel.settings import StorageAccessType
from dr_core.kernel.wire import JsonObject

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.locks import RestoreLock
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.ids import ApimResourceId
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import ApimManagement, BackupStore, ServiceInfo

    from .request import RestoreRequest

__all__ = ["CHECKS", "Check", "Outcome", "Preflight", "RestorePlan"]

logger = logging.getLogger(__name__)

_IDLE = "succeeded"
# Every check, in the order a plan lists them.
CHECKS = ("target-exists", "backup-exists", "backup-not-expired", "target-tier-matches-backup",
          "target-tier-supports-restore", "target-idle", "target-has-identity", "target-is-not-source-or-primary",
          "backup-account-cors-disabled", "no-restore-in-progress")


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

    def to_json(self) -> JsonObject:
        body: JsonObject = {"name": self.name, "outcome": self.outcome, "message": self.message}
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
    # Set when the backup is read from the copy account because the backup account is unreachable.
    copy_reason: str | None = None

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

    def to_json(self, *, now: datetime) -> JsonObject:
        target_sku = self.target_info.sku if self.target_info else None
        return {
            "target": str(self.target),
            "source": str(self.source),
            "backup": self.backup.to_json(now=now, target_sku=target_sku, margin=self.margin) if self.backup else None,
            "storage": {"account": self.storage_account, "accessType": self.access_type.value,
                        "clientId": self.client_id, "copy": self.copy_reason is not None,
                        "copyReason": self.copy_reason},
            "preflight": [c.to_json() for c in self.checks],
            "refused": self.refused,
        }


class Preflight:
    """Plans restores: resolves target, source and backup, and runs every check. Writes nothing."""

    def __init__(self, *, settings: Settings, arm: ApimManagement, backups: BackupStore, lock: RestoreLock,
                 resolver: InstanceResolver, clock: Clock, sources: RecoveryPointSources | None = None) -> None:
        self._settings = settings
        self._arm = arm
        self._backups = backups
        self._lock = lock
        self._resolver = resolver
        self._clock = clock
        # The backup account, and its copy when it is unreachable (dr_core/copies/choice.py).
        self._sources = sources or RecoveryPointSources(primary=backups, primary_account=settings.backup_account)

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
        chosen: list[SourceChoice] = []
        backup = self._find_backup(request, source=source.resource_id, container=container,
                                   target_info=target_info, now=now, margin=margin, checks=checks,
                                   protected=source.protected, chosen=chosen)
        where = chosen[0] if chosen else self._sources.primary
        plan = RestorePlan(target.resource_id, source.resource_id, target_info, backup, where.account,
                           access_type, client_id, checks, margin, copy_reason=where.reason if where.is_copy else None)
        _check_backup(plan, now, margin)
        _check_target(plan, request, self._resolver.protected_keys())
        self._check_cors(plan, where)
        self._check_lock(plan)
        return plan

    def _resolve(self, reference: str, what: str) -> Resolved:
        try:
            return self._resolver.instance_or_standby(reference)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"invalid restore request: {what}: {e.message}", fields={what: e.message}) from e
        except UnknownInstanceError as e:
            raise UnknownInstanceError(f"{what} {e.message}") from e

    def _find_backup(self, request: RestoreRequest, *, source: ApimResourceId, container: str,
                     target_info: ServiceInfo | None, now: datetime, margin: timedelta,
                     checks: list[Check], protected: ProtectedInstance | None,
                     chosen: list[SourceChoice]) -> CatalogEntry | None:
        account = self._settings.backup_account
        if request.backup != "latest":
            try:
                found = self._sources.tags(protected, container, request.backup)
            except AzureUnavailableError as e:
                checks.append(Check("backup-exists", Outcome.FAIL, f"the backup could not be read: {e.message}",
                                    e.remediation, status=503))
                return None
            chosen.append(found.source)
            tags, account, note = found.value, found.source.account, found.source.note()
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
            checks.append(Check("backup-exists", Outcome.PASS, f"{container}/{entry.blob_name}{note}"))
            return entry
        try:
            catalog = self._sources.catalog(protected, container, source.service_name)
        except AzureUnavailableError as e:
            checks.append(Check("backup-exists", Outcome.FAIL, f"the backup catalog could not be read: {e.message}",
                                e.remediation, status=503))
            return None
        chosen.append(catalog.source)
        entries, note = catalog.value, catalog.source.note()
        target_sku = target_info.sku if target_info else None
        for entry in entries:
            if entry.restorable_for(target_sku, now=now, margin=margin)[0]:
                checks.append(Check("backup-exists", Outcome.PASS,
                                    f"latest restorable: {container}/{entry.blob_name}{note}"))
                return entry
        older = None if catalog.source.is_copy else self._uncatalogued_hint(container, source, entries)
        if not entries:
            checks.append(Check("backup-exists", Outcome.FAIL,
                                f"no backup of {source.service_name} in {container}{note}",
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

    def _check_cors(self, plan: RestorePlan, where: SourceChoice) -> None:
        try:
            rules = where.store.cors_rule_count()
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
                                     f"the Blob service of {where.account} has {rules} CORS rule(s); APIM backup and "
                                     "restore fail with InvalidParameters while any exist",
                                     f"Remove the CORS rules of {where.account}'s Blob service."))
        else:
            plan.checks.append(Check("backup-account-cors-disabled", Outcome.PASS, f"no CORS rules on {where.account}"))

    def _check_lock(self, plan: RestorePlan) -> None:
        holder = self._lock.holder(plan.target)
        if holder is None:
            plan.checks.append(Check("no-restore-in-progress", Outcome.PASS, "no other restore into the target"))
        else:
            plan.checks.append(Check("no-restore-in-progress", Outcome.FAIL,
                                     f"restore {holder.job_id} into the target is {holder.state.value}",
                                     f"Follow it at /api/operations/{holder.job_id}; start another when it ends.",
                                     status=409))


def _check_backup(plan: RestorePlan, now: datetime, margin: timedelta) -> None:
    entry = plan.backup
    if entry is None:
        plan.checks.append(Check("backup-not-expired", Outcome.SKIPPED, "no backup to check"))
        plan.checks.append(Check("target-tier-matches-backup", Outcome.SKIPPED, "no backup to check"))
        return
    if entry.expires is None:
        plan.checks.append(Check("backup-not-expired", Outcome.FAIL,
                                 f"{entry.blob_name} is a configuration snapshot, which APIM's restore cannot read",
                                 "Apply it with `apim-dr snapshot restore`, or name a native backup."))
    elif now >= entry.expires:
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
