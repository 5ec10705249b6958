"""Restoring from a configuration snapshot: whole or chosen items, into the same instance or another of any tier.

``POST /api/snapshots/{id}/restore`` and ``apim-dr snapshot restore`` run the cheap checks at once
(:class:`SnapshotRestorer`): the snapshot exists and is a snapshot of the source, every chosen item is
in it, the target exists and is idle, a target that is the source or a protected primary is
confirmed by its name, no other restore runs into it (the same lock as a native restore). Then a
``config-restore`` job (:class:`ConfigRestore`) does the rest, one step per invocation:

1. **Reading** the target's configuration, exactly as a snapshot reads (:mod:`.staged`, paced from the
   shared read budget).
2. **Planning** (:func:`~.plan.plan_restore`): creates, updates and deletes in dependency order, and what
   blocks (a secret value the snapshot never held and the target lacks, an item the target's tier
   does not have). A blocked plan ends the job ``Refused`` with each problem named; a dry run ends it
   ``Succeeded`` with the plan; nothing was written either way.
3. **Applying** the steps in order. Each step reads the item (its ETag) and writes only if it is not
   as wanted yet, with ``If-Match`` that ETag: a step is idempotent (a repeated step finds the item
   done and moves on), and an item someone changed between the read and the write is a conflict
   (``412``), read again and either found done or reported. A long-running create is polled in later
   steps, never waited on. A step ARM refuses for good stops the restore: the job fails naming the
   step, how many were applied before it and how many were not; running the same restore again
   continues where it stopped (applied steps find their items done).

The plan's summary (counts, the first steps, every problem) and the progress are on the job
(:class:`ConfigRestoreProgress`), shown by ``GET /api/operations/{id}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dr_core.catalog.entry import RecoveryPointKind
from dr_core.catalog.naming import parse_backup_blob_name, snapshot_id, snapshot_name_of
from dr_core.inventory.resolver import UnknownInstanceError
from dr_core.jobs.ids import JobKind
from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, DrError, InvalidRequestError
from dr_core.kernel.phases import JobState
from dr_core.kernel.wire import JsonObject
from dr_core.restore.preflight import Check, Outcome

from .document import MAX_COMPRESSED_BYTES, SnapshotDocument, SnapshotDocumentError, SnapshotItem
from .kinds import ItemId, parse_item_id
from .plan import LiveItem, PlanStep, RestorePlan, StepAction, plan_restore
from .progress import PROBLEMS_SHOWN, STEPS_SHOWN, ConfigRestoreProgress, SnapshotProgress
from .sanitize import for_target, item_properties
from .staged import UNREACHABLE_DELAY, StagedReads

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.job import Job, Trigger
    from dr_core.jobs.launcher import JobLauncher
    from dr_core.jobs.locks import RestoreLock
    from dr_core.jobs.messages import WorkMessage
    from dr_core.jobs.pacing import ReadBudget
    from dr_core.jobs.worker import Journal
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings
    from dr_core.ports import ApimManagement, BackupStore, ConfigurationWriter, ServiceInfo, StagingStore

__all__ = [
    "ConfigRestore",
    "SnapshotRestoreRequest",
    "SnapshotRestoreStart",
    "SnapshotRestorer",
    "parse_snapshot_restore_request",
]

logger = logging.getLogger(__name__)

MAX_ITEMS_CHOSEN = 100
_STEPS_PER_INVOCATION = 25
_WRITE_DELAY = 15  # ARM said "not now" (ServiceLocked, 429 without Retry-After)


# -- the request ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotRestoreRequest:
    """What to restore: ``snapshot`` (an ID, or "latest" of ``source``) into ``target``, all of it or ``items``."""

    target: str
    snapshot: str = "latest"
    source: str | None = None
    items: tuple[ItemId, ...] = ()
    dry_run: bool = False
    confirm: str | None = None


_FIELDS = {"target", "source", "items", "dryRun", "confirm"}


def parse_snapshot_restore_request(snapshot: object, data: JsonObject) -> SnapshotRestoreRequest:
    """The JSON body of ``POST /api/snapshots/{id}/restore``, every bad field named at once."""
    bad: dict[str, str] = {}
    for key in sorted(set(data) - _FIELDS):
        bad[str(key)[:40]] = "unknown field; allowed: " + ", ".join(sorted(_FIELDS))
    target = _text(data.get("target"), "target", bad, required=True)
    source = _text(data.get("source"), "source", bad)
    confirm = _text(data.get("confirm"), "confirm", bad, limit=100)
    dry_run = data.get("dryRun", False)
    if not isinstance(dry_run, bool):
        bad["dryRun"] = "must be true or false"
    snapshot_name = "latest"
    if snapshot != "latest":
        try:
            snapshot_name = snapshot_name_of(snapshot)
        except ValueError as e:
            bad["snapshot"] = str(e)
    items = _items(data.get("items"), bad)
    if bad:
        raise InvalidRequestError("invalid snapshot restore: " + "; ".join(f"{k}: {v}" for k, v in bad.items()),
                                  fields=bad)
    assert target is not None
    return SnapshotRestoreRequest(target=target, snapshot=snapshot_name, source=source, items=items,
                                  dry_run=bool(dry_run), confirm=confirm)


def _items(raw: object, bad: dict[str, str]) -> tuple[ItemId, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        bad["items"] = "must be a non-empty list of item IDs such as 'apis/echo-api' (omit it for everything)"
        return ()
    if len(raw) > MAX_ITEMS_CHOSEN:
        bad["items"] = f"at most {MAX_ITEMS_CHOSEN} items; restore the whole snapshot instead"
        return ()
    out: list[ItemId] = []
    for index, text in enumerate(raw):
        try:
            out.append(parse_item_id(text))
        except ValueError as e:
            bad[f"items[{index}]"] = str(e)
    return tuple(dict.fromkeys(out))


def _text(value: object, name: str, bad: dict[str, str], *, required: bool = False, limit: int = 400) -> str | None:
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


# -- starting one ---------------------------------------------------------------------------------------
@dataclass
class SnapshotRestoreStart:
    """What the checks at the door found, and the job if one was started."""

    target: str
    source: str
    snapshot: str | None
    items: list[str]
    checks: list[Check]
    job: Job | None = None

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    @property
    def refused(self) -> bool:
        return bool(self.failed_checks)

    @property
    def status(self) -> int:
        statuses = {c.status for c in self.failed_checks}
        return next((s for s in (503, 409) if s in statuses), 422)

    def to_json(self) -> JsonObject:
        return {"target": self.target, "source": self.source,
                "snapshot": snapshot_id(self.snapshot) if self.snapshot else None, "items": list(self.items),
                "preflight": [c.to_json() for c in self.checks], "refused": self.refused}


class SnapshotRestorer:
    """Checks a snapshot restore at the door and starts its job (lock taken, job created, started)."""

    def __init__(self, *, settings: Settings, arm: ApimManagement, backups: BackupStore, resolver: InstanceResolver,
                 lock: RestoreLock, launcher: JobLauncher, clock: Clock) -> None:
        self._settings = settings
        self._arm = arm
        self._backups = backups
        self._resolver = resolver
        self._lock = lock
        self._launcher = launcher
        self._clock = clock

    def start(self, request: SnapshotRestoreRequest, *, trigger: Trigger) -> SnapshotRestoreStart:
        """:raises InvalidRequestError: a malformed reference. :raises UnknownInstanceError: unknown target/source."""
        from dr_core.jobs.job import Job

        now = self._clock.now().replace(microsecond=0)
        target = self._resolve(request.target, "target")
        source = self._resolve(request.source, "source") if request.source else None
        checks: list[Check] = []
        info = self._target(target.resource_id, checks)
        name, document = self._snapshot(request, source or target, checks)
        source_id = (document.instance if document is not None
                     else str(source.resource_id if source else target.resource_id))
        if document is not None:
            self._items(request.items, document, info, checks)
        self._confirmation(target.resource_id, source_id, request, checks)
        start = SnapshotRestoreStart(str(target.resource_id), source_id, name, [str(i) for i in request.items], checks)
        if start.refused:
            return start
        assert name is not None
        job = Job.new_config_restore(self._settings, target=target.resource_id, source=source_id, snapshot=name,
                                     container=self._container(source or target), trigger=trigger, now=now,
                                     progress=ConfigRestoreProgress(
                                         snapshot=name, container=self._container(source or target),
                                         source=source_id, items=start.items, dry_run=request.dry_run))
        if not self._lock.take(target.resource_id, job.job_id):
            holder = self._lock.holder(target.resource_id)
            checks.append(Check("no-restore-in-progress", Outcome.FAIL,
                                f"restore {holder.job_id if holder else 'another job'} into the target is running",
                                f"Follow it at /api/operations/{holder.job_id if holder else '...'}; start this "
                                "one when it ends.", status=409))
            return start
        checks.append(Check("no-restore-in-progress", Outcome.PASS, "the target is not being restored"))
        start.job, _ = self._launcher.launch(job)
        return start

    def _resolve(self, reference: str, what: str) -> Any:
        try:
            return self._resolver.instance_or_standby(reference)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"invalid snapshot restore: {what}: {e.message}",
                                      fields={what: e.message}) from e
        except UnknownInstanceError as e:
            raise UnknownInstanceError(f"{what} {e.message}") from e

    def _container(self, resolved: Any) -> str:
        protected = getattr(resolved, "protected", None)
        return protected.container if protected is not None else self._settings.backup_container

    def _target(self, target: Any, checks: list[Check]) -> ServiceInfo | None:
        try:
            info = self._arm.get_service(target)
        except ArmCallError as e:
            checks.append(Check("target-exists", Outcome.FAIL, f"reading the target failed: ({e.error.code}) "
                                f"{e.error.message}", e.error.remediation, status=409 if e.error.retryable else 422))
            return None
        except AzureUnavailableError as e:
            checks.append(Check("target-exists", Outcome.FAIL, f"reading the target failed: {e.message}",
                                e.remediation, status=503))
            return None
        checks.append(Check("target-exists", Outcome.PASS, f"{info.sku} in {info.location}"))
        if info.provisioning_state.lower() != "succeeded":
            checks.append(Check("target-idle", Outcome.FAIL, f"the target is {info.provisioning_state}; another "
                                "operation is running on it", "Wait until it is Succeeded, then retry.", status=409))
        else:
            checks.append(Check("target-idle", Outcome.PASS, "provisioningState Succeeded"))
        return info

    def _snapshot(self, request: SnapshotRestoreRequest, source: Any,
                  checks: list[Check]) -> tuple[str | None, SnapshotDocument | None]:
        container = self._container(source)
        instance = source.resource_id
        try:
            if request.snapshot == "latest":
                newest = next((e for e in self._backups.find(container, instance.service_name)
                               if e.kind is RecoveryPointKind.SNAPSHOT), None)
                if newest is None:
                    checks.append(Check("snapshot-exists", Outcome.FAIL,
                                        f"{instance.service_name} has no configuration snapshot",
                                        "Take one (POST /api/snapshots) or check its recovery setting."))
                    return None, None
                name = newest.blob_name
            else:
                name = request.snapshot
            data = self._backups.get_document(container, name, max_bytes=MAX_COMPRESSED_BYTES)
        except AzureUnavailableError as e:
            checks.append(Check("snapshot-exists", Outcome.FAIL, f"the snapshot could not be read: {e.message}",
                                e.remediation, status=503))
            return None, None
        except ValueError as e:
            checks.append(Check("snapshot-exists", Outcome.FAIL, str(e), "Pick another snapshot."))
            return None, None
        if data is None:
            checks.append(Check("snapshot-exists", Outcome.FAIL, f"no snapshot {snapshot_id(name)} in {container}",
                                "List them with `apim-dr snapshots list` (GET /api/backups?service=...)."))
            return None, None
        try:
            document = SnapshotDocument.from_bytes(data)
        except SnapshotDocumentError as e:
            checks.append(Check("snapshot-exists", Outcome.FAIL, f"{snapshot_id(name)} is not a usable snapshot: {e}",
                                "Pick another snapshot; this one is damaged or was not written by apim-dr."))
            return None, None
        if parse_backup_blob_name(name).service_name.lower() != instance.service_name.lower() or \
                document.instance.lower() != str(instance).lower():
            checks.append(Check("snapshot-exists", Outcome.FAIL,
                                f"{snapshot_id(name)} is a snapshot of {document.instance.rsplit('/', 1)[-1]}, not of "
                                f"{instance.service_name}", "Name the snapshot's instance as the source."))
            return None, None
        checks.append(Check("snapshot-exists", Outcome.PASS, f"{snapshot_id(name)}: {len(document.items)} items, "
                            f"taken {document.taken_at.isoformat()}"))
        return name, document

    @staticmethod
    def _items(items: Sequence[ItemId], document: SnapshotDocument, info: ServiceInfo | None,
               checks: list[Check]) -> None:
        held = document.by_id()
        missing = [str(i) for i in items if str(i).lower() not in held]
        if missing:
            checks.append(Check("items-in-snapshot", Outcome.FAIL, "the snapshot holds no " + ", ".join(missing[:10]),
                                "List its items with `apim-dr snapshots show <id>` and choose ones it holds."))
        elif items:
            checks.append(Check("items-in-snapshot", Outcome.PASS, f"{len(items)} chosen"))
        tier = info.sku if info else None
        chosen = [held[str(i).lower()] for i in items if str(i).lower() in held] or list(document.items)
        unsupported = sorted({i.item_id.kind.label for i in chosen if not i.item_id.kind.supported_in(tier)})
        if unsupported and items:
            checks.append(Check("tier-supports-items", Outcome.FAIL,
                                f"the target's tier {tier} has no {', '.join(unsupported)}",
                                "Restore into an instance of a tier that has them, or leave them out."))

    def _confirmation(self, target: Any, source: str, request: SnapshotRestoreRequest, checks: list[Check]) -> None:
        name = target.service_name
        is_source = str(target).lower() == source.lower()
        is_primary = target.key in self._resolver.protected_keys()
        if (is_source or is_primary) and (request.confirm or "") != name and not request.dry_run:
            why = "the target is the snapshot's own instance" if is_source else "the target is a protected primary"
            checks.append(Check("target-is-not-source-or-primary", Outcome.FAIL,
                                f"{why}: restoring changes its live configuration",
                                f"If this is intended, repeat the request with \"confirm\": \"{name}\".", status=409))
        else:
            checks.append(Check("target-is-not-source-or-primary", Outcome.PASS,
                                "a dry run changes nothing" if request.dry_run else
                                "confirmed by name" if (is_source or is_primary) else "a standby target"))


# -- the job's steps ------------------------------------------------------------------------------------
class ConfigRestore:
    """The worker's handler of ``config-restore`` jobs."""

    kinds = (JobKind.CONFIG_RESTORE,)

    def __init__(self, *, arm: ApimManagement, reads: StagedReads, writer: ConfigurationWriter, backups: BackupStore,
                 staging: StagingStore, read_budget: ReadBudget, write_budget: ReadBudget, journal: Journal,
                 clock: Clock) -> None:
        self._arm = arm
        self._reads = reads
        self._writer = writer
        self._backups = backups
        self._staging = staging
        self._read_budget = read_budget
        self._write_budget = write_budget
        self._journal = journal
        self._clock = clock

    def step(self, job: Job, message: WorkMessage, now: datetime) -> None:
        progress = job.config_restore or ConfigRestoreProgress()
        if job.state is JobState.PLANNED:
            self._begin(job, progress, now)
            return
        if job.state is not JobState.RUNNING or message.op != "poll" or message.seq != job.poll_seq:
            logger.info("stale message for snapshot restore %s dropped", job.job_id)
            return
        if progress.phase == "reading":
            self._read(job, progress, now)
        else:
            self._apply(job, progress, now)

    # 1. read the target
    def _begin(self, job: Job, progress: ConfigRestoreProgress, now: datetime) -> None:
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
        read = self._reads.begin(job.job_id, info.sku, SnapshotProgress(reads=1))
        job.config_restore = replace(progress, read=read)
        self._journal.commit(job, job.begin_reading(now, progress=read, sku=info.sku, region=info.location))

    def _read(self, job: Job, progress: ConfigRestoreProgress, now: datetime) -> None:
        result = self._reads.step(job.job_id, job.resource_id, progress.read, now=now)
        progress = replace(progress, read=result.progress)
        if result.error is not None:
            job.config_restore = progress
            self._journal.finish(job, job.fail(now, result.error))
            return
        if result.items is None:
            job.config_restore = progress
            self._journal.commit(job, job.read_more(now, progress=result.progress, delay=result.delay,
                                                    reason=result.reason))
            return
        self._plan(job, progress, result.items, now)

    # 2. plan
    def _plan(self, job: Job, progress: ConfigRestoreProgress, live: list[SnapshotItem], now: datetime) -> None:
        try:
            data = self._backups.get_document(progress.container, progress.snapshot, max_bytes=MAX_COMPRESSED_BYTES)
            if data is None:
                raise SnapshotDocumentError(f"{snapshot_id(progress.snapshot)} no longer exists")
            document = SnapshotDocument.from_bytes(data)
        except (SnapshotDocumentError, ValueError) as e:
            job.config_restore = progress
            self._journal.finish(job, job.fail(now, ArmError("SnapshotUnusable", str(e))))
            return
        except DrError as e:
            job.config_restore = progress
            self._journal.commit(job, job.read_more(now, progress=progress.read, delay=UNREACHABLE_DELAY,
                                                    reason=f"reading the snapshot: {e.message[:160]}"))
            return
        target = {str(i.item_id).lower(): LiveItem(i) for i in live}
        selection = [parse_item_id(i) for i in progress.items] or None
        plan = plan_restore(document, target, target_tier=job.sku, selection=selection)
        progress = _with_plan(progress, plan)
        self._staging.put(_plan_name(job), json.dumps([s.to_json() for s in plan.steps]).encode())
        job.config_restore = progress
        if plan.blocked:
            lines = "; ".join(f"{p.item}: {p.message}" for p in plan.problems[:5])
            self._journal.finish(job, job.refuse_after_reading(
                now, message=f"the restore plan is blocked ({len(plan.problems)} problems): {lines}",
                remediation=" ".join(dict.fromkeys(p.remediation for p in plan.problems))))
            return
        if progress.dry_run or not plan.steps:
            job.config_restore = replace(progress, phase="done")
            self._journal.finish(job, job.succeed(now))
            self._clean_up(job)
            return
        job.config_restore = replace(progress, phase="applying")
        self._journal.commit(job, job.read_more(now, progress=progress.read, delay=0, reason="applying the plan"))

    # 3. apply
    def _apply(self, job: Job, progress: ConfigRestoreProgress, now: datetime) -> None:
        raw = self._staging.get(_plan_name(job))
        if raw is None:  # scratch space lost: plan again (a restore is idempotent, applied steps are found done)
            job.config_restore = replace(progress, phase="reading")
            read = self._reads.begin(job.job_id, job.sku, progress.read)
            job.config_restore = replace(job.config_restore, read=read)
            self._journal.commit(job, job.read_more(now, progress=read, delay=0, reason="planning again"))
            return
        steps = [PlanStep.from_json(s) for s in json.loads(raw)]
        outcome = _Applying(self, job, progress, steps, now).run()
        job.config_restore = outcome.progress
        if outcome.error is not None:
            self._journal.finish(job, job.fail(now, outcome.error))
        elif outcome.progress.next_step >= len(steps):
            job.config_restore = replace(outcome.progress, phase="done")
            self._journal.finish(job, job.succeed(now))
            self._clean_up(job)
        else:
            self._journal.commit(job, job.read_more(now, progress=outcome.progress.read, delay=outcome.delay,
                                                    reason=outcome.reason))

    def _clean_up(self, job: Job) -> None:
        try:
            self._reads.clean_up(job.job_id)
        except DrError as e:
            logger.warning("staging of %s not cleaned up (%s); the lifecycle rule will", job.job_id, e.message)


@dataclass
class _Applied:
    progress: ConfigRestoreProgress
    delay: int = 0
    reason: str | None = None
    error: ArmError | None = None


class _Applying:
    """The steps one invocation applies, in order, until a budget, a wait or a failure stops it."""

    def __init__(self, handler: ConfigRestore, job: Job, progress: ConfigRestoreProgress, steps: list[PlanStep],
                 now: datetime) -> None:
        self.h = handler
        self.job = job
        self.progress = progress
        self.steps = steps
        self.now = now
        self.target = job.resource_id

    def run(self) -> _Applied:
        subscription = self.target.subscription_id
        for _ in range(_STEPS_PER_INVOCATION):
            if self.progress.next_step >= len(self.steps):
                break
            if self.h._read_budget.take(subscription, 1, now=self.now).granted == 0 or \
                    self.h._write_budget.take(subscription, 1, now=self.now).granted == 0:
                return _Applied(self.progress, delay=1, reason="waiting for ARM's read or write budget")
            step = self.steps[self.progress.next_step]
            try:
                waited = self._one(step)
            except ArmCallError as e:
                if e.error.retryable:
                    return _Applied(self.progress, delay=max(1, int(e.error.retry_after or _WRITE_DELAY)),
                                    reason=f"ARM: {e.error.code} on {step.item_id}")
                return self._failed(step, e.error)
            except AzureUnavailableError as e:
                return _Applied(self.progress, delay=UNREACHABLE_DELAY, reason=e.message[:200])
            if waited is not None:
                return waited
        return _Applied(self.progress)

    def _one(self, step: PlanStep) -> _Applied | None:
        """Apply one step; None when it is done (the cursor moved), else what to wait for."""
        item = step.item_id
        writer = self.h._writer
        p = self.progress
        if p.pending_location:
            outcome = writer.poll(self.target, p.pending_location)
            if not outcome.done:
                return _Applied(p, delay=max(1, int(outcome.retry_after)), reason=f"{step.action} {item} runs")
            self._done(applied=True)
            return None
        current = writer.get(self.target, item.kind.key, item.names)
        if step.action is StepAction.DELETE:
            if current is None:
                self._done(applied=False)
                return None
            outcome = writer.delete(self.target, item.kind.key, item.names, if_match=current.etag or "*")
        else:
            if current is not None and self._as_wanted(step, current.body):
                self._done(applied=False)
                return None
            body = {"properties": for_target(dict(step.properties), target_id=str(self.target))}
            try:
                outcome = writer.put(self.target, item.kind.key, item.names, body,
                                     if_match=current.etag if current is not None else None)
            except ArmCallError as e:
                if e.error.status != 412:
                    raise
                # Someone changed it between our read and our write: found as wanted, or a conflict.
                again = writer.get(self.target, item.kind.key, item.names)
                if again is not None and self._as_wanted(step, again.body):
                    self._done(applied=False)
                    return None
                self.progress = replace(p, conflicts=p.conflicts + 1)
                raise
        self.progress = replace(self.progress, writes=self.progress.writes + 1)
        if not outcome.done:
            self.progress = replace(self.progress, pending_location=outcome.location)
            return _Applied(self.progress, delay=max(1, int(outcome.retry_after)), reason=f"{step.action} {item} runs")
        self._done(applied=True)
        return None

    def _as_wanted(self, step: PlanStep, body: JsonObject) -> bool:
        if step.item_id.kind.link:
            return True
        properties, _ = item_properties(step.item_id, body, service_id=str(self.target))
        return properties == dict(step.properties)

    def _done(self, *, applied: bool) -> None:
        p = self.progress
        self.progress = replace(p, next_step=p.next_step + 1, pending_location=None,
                                applied=p.applied + int(applied), already=p.already + int(not applied))

    def _failed(self, step: PlanStep, error: ArmError) -> _Applied:
        p = self.progress
        left = len(self.steps) - p.next_step
        failed: JsonObject = {"index": p.next_step + 1, "action": step.action.value, "item": str(step.item_id),
                              "code": error.code, "message": error.message[:500]}
        self.progress = replace(p, failed_step=failed)
        message = (f"step {p.next_step + 1} of {len(self.steps)} ({step.action.value} {step.item_id}) failed: "
                   f"({error.code}) {error.message[:400]}. Applied before it: {p.applied} (and {p.already} found done "
                   f"already); not applied: {left}.")
        return _Applied(self.progress, error=ArmError(error.code, message, error.status))


def _with_plan(progress: ConfigRestoreProgress, plan: RestorePlan) -> ConfigRestoreProgress:
    shown = [f"{s.action.value} {s.item_id} ({s.reason})" for s in plan.steps[:STEPS_SHOWN]]
    if len(plan.steps) > STEPS_SHOWN:
        shown.append(f"... and {len(plan.steps) - STEPS_SHOWN} more")
    return replace(progress, counts=plan.counts(), unchanged=plan.unchanged, kept=len(plan.kept),
                   steps=len(plan.steps), next_step=0, shown_steps=shown,
                   problems=[p.to_json() for p in plan.problems[:PROBLEMS_SHOWN]])


def _plan_name(job: Job) -> str:
    return f"{job.job_id}/plan.json"
