"""The posture of the protected instances in one view: ``GET /api/status`` and ``apim-dr status``.

Per instance: its RPO state (computed from the catalog now, with the ``rpo`` record's
history: since when, when monitoring began), the backups of the last 30 days, the open
failures, and the standby's sync and the last drill as their own features recorded them.
Nothing here writes.

Reads: one catalog query per instance (a few in parallel), one query per record kind
(``rpo``, ``standby``, ``drill``), and the job partitions of the last
:data:`OPEN_FAILURE_DAYS` days. A part that cannot be read is reported in ``problems`` and
left empty; the rest of the view is still answered (an incident is when it matters most).

**Open failures**: a ``Failed`` or ``TimedOut`` job of the last :data:`OPEN_FAILURE_DAYS`
days (backups of the instance; restores into it or from its backups) that no ``Succeeded``
job of the same kind and the same target created after it has superseded. A failed nightly
backup stays open until a later backup of that instance succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from dr_core.catalog.entry import CatalogEntry
from dr_core.copies.record import CopyRecord, copy_key
from dr_core.drills.record import DrillRecord
from dr_core.jobs.ids import JobKind
from dr_core.kernel.errors import DrError
from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError
from dr_core.kernel.phases import JobState
from dr_core.kernel.threads import parallel_map
from dr_core.standby.record import StandbyRecord

from .document import (
    BackupView,
    CopyView,
    DrillView,
    InstancePosture,
    LastSyncView,
    NewestRestorableView,
    OpenFailure,
    RpoView,
    StandbyView,
    StatusDocument,
)
from .record import RpoRecord, rpo_key
from .rpo import PARALLEL_QUERIES, age_hours, assess, next_record, unreadable

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.job import Job
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import BackupStore, JobStore
    from dr_core.records import Records, TypedRecord, Versioned

__all__ = ["BACKUP_DAYS", "MAX_BACKUPS_LISTED", "OPEN_FAILURE_DAYS", "PostureStatus", "open_failures"]

OPEN_FAILURE_DAYS = 7
BACKUP_DAYS = 30
# An hourly schedule makes 720 backups in 30 days; the view lists the newest ones and says how many it left out.
MAX_BACKUPS_LISTED = 250
MAX_OPEN_FAILURES = 20
_FAILED = (JobState.FAILED, JobState.TIMED_OUT)

R = TypeVar("R", bound="TypedRecord")


class PostureStatus:
    """Builds the status document (``GET /api/status``, the status page, ``apim-dr status``)."""

    def __init__(self, *, settings: Settings, jobs: JobStore, rpo: Records[RpoRecord],
                 standbys: Records[StandbyRecord], drills: Records[DrillRecord], backups: BackupStore,
                 resolver: InstanceResolver, clock: Clock, parallel: int = PARALLEL_QUERIES,
                 copies: Records[CopyRecord] | None = None) -> None:
        self._settings = settings
        self._copies = copies  # the instances' copy records (None: no copy account configured)
        self._jobs = jobs
        self._rpo = rpo
        self._standbys = standbys
        self._drills = drills
        self._backups = backups
        self._resolver = resolver
        self._clock = clock
        self._parallel = max(1, parallel)
        self._margin = timedelta(hours=settings.expiry_margin_hours)

    def build(self, service: str | None = None) -> StatusDocument:
        """Every protected instance, or the one ``service`` names (resource ID, alias or service name).

        :raises InvalidRequestError: ``service`` is empty, too long or ambiguous.
        :raises UnknownInstanceError: ``service`` names no protected instance.
        """
        now = self._clock.now()
        selected = self._resolver.select(service)
        instances, problems = selected.instances, selected.problems
        rpo_records = self._rpo_records(instances, problems)
        standbys = _index_standbys(self._all(self._standbys, problems))
        drills = _index_drills(self._all(self._drills, problems))
        jobs = _index_jobs(self._recent_jobs(now, problems))
        copies = {r.key: r.value for r in self._all(self._copies, problems)} if self._copies is not None else {}

        def view(inst: ProtectedInstance) -> InstancePosture:
            key = inst.resource_id.key
            standby = standbys.get(inst.standby.key) if inst.standby is not None else None
            record = rpo_records.get(rpo_key(inst.resource_id))
            posture = self._instance_view(inst, record=record.value if record is not None else None,
                                          standby=standby, drill=drills.get(key), jobs=jobs.get(key, []), now=now)
            if not inst.posture.copy or self._settings.copy_account is None:
                return posture
            return replace(posture, copy=_copy_view(self._settings.copy_account, copies.get(copy_key(inst.resource_id)),
                                                    posture.rpo.newest_restorable, now))

        views = parallel_map(view, instances, max_workers=self._parallel, name="status")
        return StatusDocument(now, views, problems)

    # -- reads ------------------------------------------------------------------------------------------
    def _rpo_records(self, instances: list[ProtectedInstance],
                     problems: list[str]) -> dict[str, Versioned[RpoRecord]]:
        if len(instances) == 1:
            try:
                record = self._rpo.get(rpo_key(instances[0].resource_id))
            except DrError as e:
                problems.append(f"the RPO records could not be read (states computed without history): {e.message}")
                return {}
            return {record.key: record} if record is not None else {}
        return {r.key: r for r in self._all(self._rpo, problems)}

    @staticmethod
    def _all(records: Records[R], problems: list[str]) -> list[Versioned[R]]:
        try:
            return records.all()
        except DrError as e:
            problems.append(f"the {records.kind} records could not be read: {e.message}")
            return []

    def _recent_jobs(self, now: datetime, problems: list[str]) -> list[Job]:
        try:
            return self._jobs.recent_jobs([JobKind.BACKUP, JobKind.RESTORE], days=OPEN_FAILURE_DAYS, now=now)
        except DrError as e:
            problems.append(f"recent jobs could not be read (open failures unknown): {e.message}")
            return []

    # -- one instance -----------------------------------------------------------------------------------
    def _instance_view(self, inst: ProtectedInstance, *, record: RpoRecord | None, standby: StandbyRecord | None,
                       drill: DrillRecord | None, jobs: list[Job], now: datetime) -> InstancePosture:
        entries: list[CatalogEntry] | None = None
        try:
            entries = self._backups.find(inst.container, inst.name)
        except DrError as e:
            assessment = unreadable(inst, e.message)
        else:
            watched = record.watched_since if record is not None else None
            assessment = assess(inst, entries, now=now, margin=self._margin, watched_since=watched or now)
        current = next_record(record, assessment, now=now)
        newest = current.newest_restorable
        rpo = RpoView(current.target_hours, current.state, current.since,
                      None if newest is None else NewestRestorableView(newest.blob_name, newest.created_at,
                                                                       age_hours(newest.created_at, now)),
                      assessment.reason)
        backups: list[BackupView] = []
        omitted = 0
        if entries is not None:
            recent = sorted((e for e in entries if now - e.created < timedelta(days=BACKUP_DAYS)),
                            key=lambda e: e.created, reverse=True)
            backups = [self._backup_view(e, now) for e in recent[:MAX_BACKUPS_LISTED]]
            omitted = max(0, len(recent) - MAX_BACKUPS_LISTED)
        return InstancePosture(
            instance=str(inst.resource_id), service_name=inst.name, alias=inst.alias, rpo=rpo,
            standby=_standby_view(inst, standby, now), last_drill=_drill_view(drill),
            open_failures=open_failures(jobs), backups=backups, backups_omitted=omitted)

    def _backup_view(self, entry: CatalogEntry, now: datetime) -> BackupView:
        restorable, why = entry.restorable(now=now, margin=self._margin)
        return BackupView(entry.blob_name, entry.created, entry.sku, entry.size, restorable, why)


# -- jobs ---------------------------------------------------------------------------------------------
def _index_jobs(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """Jobs by the instances they concern: a backup's instance; a restore's target and its source."""
    index: dict[str, list[Job]] = {}
    for job in jobs:
        keys = {job.instance.lower()}
        if job.kind is JobKind.RESTORE and job.source_instance:
            keys.add(job.source_instance.lower())
        for key in keys:
            index.setdefault(key, []).append(job)
    return index


def open_failures(jobs: Iterable[Job]) -> list[OpenFailure]:
    """Failed / timed-out jobs not superseded by a later success of the same kind and target, newest first."""
    last_success: dict[tuple[JobKind, str], datetime] = {}
    jobs = list(jobs)
    for job in jobs:
        if job.state is JobState.SUCCEEDED:
            group = (job.kind, job.instance.lower())
            if group not in last_success or job.created_at > last_success[group]:
                last_success[group] = job.created_at
    failed = []
    for job in jobs:
        if job.state not in _FAILED:
            continue
        superseded = last_success.get((job.kind, job.instance.lower()))
        if superseded is None or job.created_at >= superseded:
            failed.append(job)
    failed.sort(key=lambda j: j.created_at, reverse=True)
    return [OpenFailure(j.job_id, j.kind.value, j.state, j.error_code, j.error_message, j.remediation,
                        j.finished_at or j.updated_at) for j in failed[:MAX_OPEN_FAILURES]]


# -- records other features write (read defensively: any shape may come back) -----------------------
def _resource_key(value: object) -> str | None:
    try:
        return ApimResourceId.parse(value).key
    except InvalidResourceIdError:
        return None


def _index_standbys(records: list[Versioned[StandbyRecord]]) -> dict[str, StandbyRecord]:
    index: dict[str, StandbyRecord] = {}
    for record in records:
        key = _resource_key(record.value.standby)
        if key is not None:
            index[key] = record.value
    return index


def _index_drills(records: list[Versioned[DrillRecord]]) -> dict[str, DrillRecord]:
    """The newest drill of each primary (by request time, else finish time)."""
    newest: dict[str, tuple[datetime, DrillRecord]] = {}
    for record in records:
        drill = record.value
        key = _resource_key(drill.instance)
        moment = drill.requested_at or drill.finished_at
        if key is None or moment is None:
            continue
        if key not in newest or moment > newest[key][0]:
            newest[key] = (moment, drill)
    return {key: drill for key, (_, drill) in newest.items()}


def _standby_view(inst: ProtectedInstance, record: StandbyRecord | None, now: datetime) -> StandbyView | None:
    if inst.standby is None:
        return None
    last = record.last_succeeded if record is not None else None
    return StandbyView(
        instance=str(inst.standby), sync=inst.posture.standby_sync,
        lag_hours=record.lag_hours(now) if record is not None else None,
        last_succeeded=None if last is None else LastSyncView(last.backup, last.backup_created_at, last.finished_at),
        state=record.state if record is not None else None, error=record.error if record is not None else None)


def _copy_view(account: str, record: CopyRecord | None, newest: NewestRestorableView | None,
               now: datetime) -> CopyView:
    """The copy lag: how old the newest recovery point with a verified copy is; behind when the newest
    restorable backup is newer than that (not copied yet)."""
    last = record.last_copied if record is not None else None
    behind = newest is not None and (last is None or newest.created_at > last.created_at)
    error = record.error if record is not None else None
    return CopyView(account, record.lag_hours(now) if record is not None else None,
                    last.blob_name if last else None, last.created_at if last else None,
                    last.copied_at if last else None, behind, error.error if error else None,
                    error.at if error else None)


def _drill_view(drill: DrillRecord | None) -> DrillView | None:
    if drill is None:
        return None
    return DrillView(drill.job_id, drill.state, drill.rto_seconds, drill.rpo_hours_at_drill, drill.finished_at,
                     drill.target, drill.error)
