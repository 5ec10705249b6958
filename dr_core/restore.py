"""Incident restore: resolve the request, run every preflight check, then start it once.

Nothing here writes to ARM before every check has passed: a refused restore costs reads
only (ARM GETs, one index-tag query, one lock read). Each check is reported by name, so the
operator sees all the reasons at once, each with what to do.

One restore per target at a time: a lock row (``PartitionKey = "restore-lock"``, one row per
target) is taken with a conditional write when the job is created and released when the job
ends; a lock whose job has ended is taken over.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .arm import ArmCallError, ServiceInfo
from .catalog import CatalogEntry, entry_from_tags, find_backups, parse_backup_blob_name
from .ids import ApimResourceId, InvalidResourceIdError
from .jobs import Job, JobKind, JobState, iso, make_job_id, now_utc
from .messages import WorkMessage, send_messages
from .notify import log_transition
from .settings import ProtectedInstance, StorageAccessType

if TYPE_CHECKING:
    from .context import DrContext

__all__ = [
    "RESTORABLE_TIERS",
    "Check",
    "RestorePlan",
    "RestoreRequest",
    "parse_restore_request",
    "plan_restore",
    "release_restore_lock",
    "start_restore",
]

logger = logging.getLogger(__name__)

RESTORABLE_TIERS = frozenset({"developer", "basic", "standard", "premium"})
LOCK_PARTITION = "restore-lock"
_IDLE = "succeeded"


class RequestError(ValueError):
    """A malformed restore request; ``fields`` names each bad field."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))


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
        raise RequestError(bad)
    assert target is not None
    return RestoreRequest(target=target, source=source, backup=backup, dry_run=bool(dry_run), confirm=confirm)


@dataclass
class Check:
    name: str
    outcome: str  # "pass" | "fail" | "warn" | "skipped"
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

    @property
    def refused(self) -> bool:
        return any(c.outcome == "fail" for c in self.checks)

    @property
    def status(self) -> int:
        """409 when state conflicts (busy, locked, needs confirmation), else 422."""
        failed = [c for c in self.checks if c.outcome == "fail"]
        return 409 if any(c.status == 409 for c in failed) else 422

    def to_json(self, *, now: datetime) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "source": str(self.source),
            "backup": self.backup.to_json(now=now, target_sku=self.target_info.sku if self.target_info else None)
            if self.backup else None,
            "storage": {"account": self.storage_account, "accessType": self.access_type.value,
                        "clientId": self.client_id},
            "preflight": [c.to_json() for c in self.checks],
            "refused": self.refused,
        }


def _resolve(ctx: DrContext, reference: str, what: str) -> tuple[ApimResourceId, ProtectedInstance | None]:
    """A configured instance, or a configured standby, by resource ID, alias or service name."""
    instances = list(ctx.settings.instances)
    lowered = reference.lower()
    if reference.startswith("/"):
        try:
            rid = ApimResourceId.parse(reference)
        except InvalidResourceIdError as e:
            raise RequestError({what: str(e)}) from e
        for inst in instances:
            if inst.resource_id.key == rid.key:
                return inst.resource_id, inst
        for inst in instances:
            if inst.standby is not None and inst.standby.key == rid.key:
                return inst.standby, None
        raise LookupError(f"{what} {rid} is neither a protected instance nor a configured standby")
    for inst in instances:
        if inst.alias and inst.alias.lower() == lowered:
            return inst.resource_id, inst
    matches: list[tuple[ApimResourceId | None, ProtectedInstance | None]] = [
        (i.resource_id, i) for i in instances if i.name.lower() == lowered]
    matches += [(i.standby, None) for i in instances if i.standby is not None
                and i.standby.service_name.lower() == lowered]
    if len(matches) == 1:
        rid_match, inst_match = matches[0]
        assert rid_match is not None
        return rid_match, inst_match
    if len(matches) > 1:
        raise RequestError({what: f"{reference!r} names several instances; use the resource ID"})
    raise LookupError(f"{what} {reference[:60]!r} is neither a protected instance nor a configured standby "
                      "(by resource ID, alias or service name)")


def plan_restore(ctx: DrContext, request: RestoreRequest, *, now: datetime | None = None) -> RestorePlan:
    """Resolve and check a restore without writing anything.

    :raises RequestError: malformed references. :raises LookupError: unknown target or source.
    """
    now = now or now_utc()
    settings = ctx.settings
    target, target_inst = _resolve(ctx, request.target, "target")
    if request.source:
        source, source_inst = _resolve(ctx, request.source, "source")
    else:
        primaries = [i for i in settings.instances if i.standby is not None and i.standby.key == target.key]
        if primaries:
            source, source_inst = primaries[0].resource_id, primaries[0]
        else:
            source, source_inst = target, target_inst  # restoring an instance's own backup into it
    options = target_inst or source_inst
    access_type = options.access_type if options else settings.access_type
    client_id = (options.client_id if options else None) or settings.identity_client_id
    container = source_inst.container if source_inst else settings.backup_container

    checks: list[Check] = []
    target_info: ServiceInfo | None = None
    try:
        target_info = ctx.operations.get_service(target)
    except ArmCallError as e:
        checks.append(Check("target-exists", "fail", f"reading the target failed: ({e.error.code}) {e.error.message}",
                            e.error.remediation, status=409 if e.error.retryable else 422))

    backup = _find_backup(ctx, request, source=source, container=container, target_info=target_info, now=now,
                          checks=checks)
    plan = RestorePlan(target, source, target_info, backup, settings.backup_account, access_type, client_id, checks)
    _check_backup(plan, now, timedelta(hours=_margin_hours(ctx)))
    _check_target(plan, request, frozenset(i.resource_id.key for i in settings.instances))
    _check_cors(ctx, plan)
    _check_lock(ctx, plan)
    return plan


def _margin_hours(ctx: DrContext) -> int:
    return ctx.settings.expiry_margin_hours


def _find_backup(ctx: DrContext, request: RestoreRequest, *, source: ApimResourceId, container: str,
                 target_info: ServiceInfo | None, now: datetime, checks: list[Check]) -> CatalogEntry | None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    container_client = ctx.clients.backup_blobs().get_container_client(container)
    if request.backup != "latest":
        try:
            tags = container_client.get_blob_client(request.backup).get_blob_tags()
        except ResourceNotFoundError:
            checks.append(Check("backup-exists", "fail",
                                f"backup {request.backup} does not exist in {ctx.settings.backup_account}/{container}",
                                "List restorable backups with GET /api/backups?service=<name>."))
            return None
        entry = entry_from_tags(container, request.backup, tags)
        if entry is None:
            checks.append(Check("backup-exists", "fail",
                                f"{request.backup} is not a completed apim-dr backup (no success tags)",
                                "Pick a backup listed by GET /api/backups?service=<name>."))
            return None
        if entry.service_name.lower() != source.service_name.lower():
            checks.append(Check("backup-exists", "fail",
                                f"{request.backup} is a backup of {entry.service_name}, not of the source "
                                f"{source.service_name}", "Name the right source, or omit the backup."))
            return None
        checks.append(Check("backup-exists", "pass", f"{container}/{entry.blob_name}"))
        return entry
    try:
        entries = find_backups(container_client, source.service_name)
    except HttpResponseError as e:
        checks.append(Check("backup-exists", "fail", f"the backup catalog could not be read: {str(e)[:200]}",
                            "Check the Function App identity's data role on the backup account."))
        return None
    target_sku = target_info.sku if target_info else None
    margin = timedelta(hours=_margin_hours(ctx))
    for entry in entries:
        if entry.restorable_for(target_sku, now=now, margin=margin)[0]:
            checks.append(Check("backup-exists", "pass", f"latest restorable: {container}/{entry.blob_name}"))
            return entry
    if not entries:
        checks.append(Check("backup-exists", "fail", f"no backup of {source.service_name} in {container}",
                            "Start a backup of the source first (POST /api/backups) or name another source."))
        return None
    reasons = sorted({entry.restorable_for(target_sku, now=now, margin=margin)[1] or "" for entry in entries})
    newest = entries[0]
    checks.append(Check("backup-exists", "fail",
                        f"none of the {len(entries)} backups of {source.service_name} can be restored into the "
                        f"target: {'; '.join(reasons)[:400]}",
                        "Take a new backup of the source, or restore into an instance of the backup's tier."))
    # Report the newest one so the individual checks below say exactly why.
    return newest


def _check_backup(plan: RestorePlan, now: datetime, margin: timedelta) -> None:
    entry = plan.backup
    if entry is None:
        plan.checks.append(Check("backup-not-expired", "skipped", "no backup to check"))
        plan.checks.append(Check("target-tier-matches-backup", "skipped", "no backup to check"))
        return
    if now >= entry.expires:
        plan.checks.append(Check("backup-not-expired", "fail", f"the backup expired at {iso(entry.expires)}",
                                 "APIM refuses backups older than 30 days; take or pick a newer one."))
    elif now + margin >= entry.expires:
        plan.checks.append(Check("backup-not-expired", "fail",
                                 f"the backup expires at {iso(entry.expires)}, within the {margin} margin "
                                 "(a restore can take longer than that)",
                                 "Pick a newer backup, or take one now."))
    else:
        plan.checks.append(Check("backup-not-expired", "pass", f"expires {iso(entry.expires)}"))
    info = plan.target_info
    if info is None:
        plan.checks.append(Check("target-tier-matches-backup", "skipped", "target not readable"))
    elif info.sku.lower() != entry.sku.lower():
        plan.checks.append(Check("target-tier-matches-backup", "fail",
                                 f"the target is {info.sku}, the backup is {entry.sku}; APIM would fail with "
                                 f"\"Cannot restore: current SKU is '{info.sku}', backup SKU is '{entry.sku}'\"",
                                 "Restore into an instance of the backup's tier, or change the target's tier first."))
    else:
        plan.checks.append(Check("target-tier-matches-backup", "pass", f"both {info.sku}"))


def _check_target(plan: RestorePlan, request: RestoreRequest, primaries: frozenset[str]) -> None:
    info = plan.target_info
    if info is None:
        for name in ("target-tier-supports-restore", "target-idle", "target-has-identity"):
            plan.checks.append(Check(name, "skipped", "target not readable"))
    else:
        if info.sku.lower() in RESTORABLE_TIERS:
            plan.checks.append(Check("target-tier-supports-restore", "pass", info.sku))
        else:
            plan.checks.append(Check("target-tier-supports-restore", "fail",
                                     f"the {info.sku} tier cannot restore backups",
                                     "Use a Developer, Basic, Standard or Premium (classic) standby."))
        if info.provisioning_state.lower() == _IDLE:
            plan.checks.append(Check("target-idle", "pass", "provisioningState Succeeded"))
        else:
            plan.checks.append(Check("target-idle", "fail",
                                     f"the target is {info.provisioning_state or 'in an unknown state'}; another "
                                     "operation is running on it", "Wait until it is Succeeded, then retry.",
                                     status=409))
        plan.checks.append(_identity_check(plan, info))
    name = plan.target.service_name
    is_source = plan.target.key == plan.source.key
    is_primary = plan.target.key in primaries
    if (is_source or is_primary) and (request.confirm or "") != name:
        why = "the target is the source" if is_source else "the target is a protected primary instance"
        plan.checks.append(Check("target-is-not-source-or-primary", "fail",
                                 f"{why}: restoring overwrites its live configuration",
                                 f"If this is intended, repeat the request with \"confirm\": \"{name}\".",
                                 status=409))
    else:
        plan.checks.append(Check("target-is-not-source-or-primary", "pass",
                                 "confirmed by name" if (is_source or is_primary) else "standby target"))


def _identity_check(plan: RestorePlan, info: ServiceInfo) -> Check:
    access = plan.access_type
    if access is StorageAccessType.ACCESS_KEY:
        return Check("target-has-identity", "pass", "AccessKey: no identity needed")
    if access is StorageAccessType.SYSTEM_ASSIGNED:
        if info.has_system_identity:
            return Check("target-has-identity", "pass", "system-assigned identity enabled")
        return Check("target-has-identity", "fail",
                     "the target has no system-assigned identity (identities are not part of a backup)",
                     "Enable the target's system-assigned identity and grant it Storage Blob Data Contributor on "
                     "the backup account.")
    if plan.client_id and plan.client_id.lower() in info.user_assigned_client_ids:
        return Check("target-has-identity", "pass", f"user-assigned identity {plan.client_id}")
    return Check("target-has-identity", "fail",
                 f"the target has no user-assigned identity with client ID {plan.client_id}",
                 "Assign that identity to the target and grant it Storage Blob Data Contributor on the backup account.")


def _check_cors(ctx: DrContext, plan: RestorePlan) -> None:
    from azure.core.exceptions import HttpResponseError

    try:
        props = ctx.clients.backup_blobs().get_service_properties()
    except HttpResponseError as e:
        plan.checks.append(Check("backup-account-cors-disabled", "warn",
                                 f"could not read the backup account's CORS rules ({e.status_code}); APIM fails "
                                 "with InvalidParameters if any exist",
                                 "Grant the Function App's identity read access to the blob service properties."))
        return
    rules = props.get("cors") or []
    if rules:
        plan.checks.append(Check("backup-account-cors-disabled", "fail",
                                 f"the backup account's Blob service has {len(rules)} CORS rule(s); APIM backup and "
                                 "restore fail with InvalidParameters while any exist",
                                 "Remove the CORS rules of the backup account's Blob service."))
    else:
        plan.checks.append(Check("backup-account-cors-disabled", "pass", "no CORS rules"))


def _lock_key(target: ApimResourceId) -> str:
    return hashlib.sha256(target.key.encode()).hexdigest()[:32]


def _check_lock(ctx: DrContext, plan: RestorePlan) -> None:
    holder = _lock_holder(ctx, plan.target)
    if holder is None:
        plan.checks.append(Check("no-restore-in-progress", "pass", "no other restore into the target"))
    else:
        plan.checks.append(Check("no-restore-in-progress", "fail",
                                 f"restore {holder.job_id} into the target is {holder.state.value}",
                                 f"Follow it at /api/operations/{holder.job_id}; start another when it ends.",
                                 status=409))


def _lock_holder(ctx: DrContext, target: ApimResourceId) -> Job | None:
    """The unfinished restore holding the target's lock, if any."""
    from azure.core.exceptions import ResourceNotFoundError

    table = ctx.clients.jobs_table()
    ctx.store  # noqa: B018 - makes sure the table exists
    try:
        row = table.get_entity(LOCK_PARTITION, _lock_key(target))
    except ResourceNotFoundError:
        return None
    job = ctx.store.get(row["JobId"])
    return job if job is not None and not job.state.terminal else None


def _take_lock(ctx: DrContext, target: ApimResourceId, job_id: str) -> bool:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    table = ctx.clients.jobs_table()
    row = {"PartitionKey": LOCK_PARTITION, "RowKey": _lock_key(target), "JobId": job_id, "Target": str(target)}
    try:
        table.create_entity(row)
        return True
    except ResourceExistsError:
        pass
    try:
        current = table.get_entity(LOCK_PARTITION, row["RowKey"])
    except ResourceNotFoundError:
        return _take_lock(ctx, target, job_id)
    holder = ctx.store.get(current["JobId"])
    if holder is not None and not holder.state.terminal:
        return False
    try:
        table.update_entity(row, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                            match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def release_restore_lock(ctx: DrContext, job: Job) -> None:
    """Free the target for the next restore once ``job`` has ended (best effort: an ended holder is taken over)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError

    table = ctx.clients.jobs_table()
    try:
        current = table.get_entity(LOCK_PARTITION, _lock_key(job.resource_id))
        if current["JobId"] == job.job_id:
            table.delete_entity(LOCK_PARTITION, current["RowKey"], etag=current.metadata["etag"],
                                match_condition=MatchConditions.IfNotModified)
    except HttpResponseError:
        logger.info("restore lock of %s not released now; the next restore takes it over", job.job_id)


def start_restore(ctx: DrContext, request: RestoreRequest, *, trigger: str = "http",
                  now: datetime | None = None) -> tuple[RestorePlan, Job | None]:
    """Preflight, then (unless dry run or refused) create the job, take the lock and enqueue the start.

    Returns the plan and the job: ``None`` for a dry run; a ``Refused`` job for a refusal (kept for audit).
    """
    now = (now or now_utc()).replace(microsecond=0)
    plan = plan_restore(ctx, request, now=now)
    if request.dry_run:
        return plan, None
    job = _new_restore_job(ctx, plan, trigger=trigger, now=now)
    if plan.refused:
        failed = [c for c in plan.checks if c.outcome == "fail"]
        job.transition(JobState.REFUSED, now)
        job.error_code = "PreflightFailed"
        job.error_message = "; ".join(f"{c.name}: {c.message}" for c in failed)[:2000]
        job.remediation = " ".join(c.remediation or "" for c in failed).strip()[:2000]
        _create_quietly(ctx, job)
        return plan, job
    if not _take_lock(ctx, plan.target, job.job_id):
        holder = _lock_holder(ctx, plan.target)
        plan.checks = [c for c in plan.checks if c.name != "no-restore-in-progress"]
        plan.checks.append(Check("no-restore-in-progress", "fail",
                                 f"restore {holder.job_id if holder else 'another job'} into the target started "
                                 "meanwhile", "Follow the running restore; start another when it ends.", status=409))
        return plan, None
    from .jobs import JobConflictError

    try:
        ctx.store.create(job)
    except JobConflictError:
        existing = ctx.store.get(job.job_id)
        return plan, existing
    log_transition(job)
    send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=job.job_id), 0)])
    return plan, job


def _create_quietly(ctx: DrContext, job: Job) -> None:
    from .jobs import JobConflictError

    try:
        ctx.store.create(job)
        log_transition(job)
    except JobConflictError:
        pass


def _new_restore_job(ctx: DrContext, plan: RestorePlan, *, trigger: str, now: datetime) -> Job:
    backup = plan.backup
    return Job(
        job_id=make_job_id(JobKind.RESTORE, plan.target, now),
        kind=JobKind.RESTORE,
        instance=str(plan.target),
        service_name=plan.target.service_name,
        state=JobState.PLANNED,
        trigger=trigger,
        slot=iso(now) or "",
        created_at=iso(now) or "",
        updated_at=iso(now) or "",
        deadline=iso(now + timedelta(minutes=ctx.settings.restore_timeout_minutes)) or "",
        storage_account=plan.storage_account,
        container=backup.container if backup else "",
        blob_name=backup.blob_name if backup else "",
        access_type=plan.access_type.value,
        client_id=plan.client_id if plan.access_type is StorageAccessType.USER_ASSIGNED else None,
        source_instance=str(plan.source),
        sku=backup.sku if backup else None,
        next_action_at=iso(now),
    )
