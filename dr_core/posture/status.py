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

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dr_core.azure.tables import Record
from dr_core.catalog.tags import CatalogEntry
from dr_core.drills.drills import KIND as DRILL_KIND
from dr_core.jobs.job import Job, JobKind, JobState
from dr_core.kernel.clock import from_iso, iso, iso_or_none
from dr_core.kernel.errors import DrError
from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError
from dr_core.posture.rpo import PARALLEL_QUERIES, RECORD_KIND, assess, next_record_data, rpo_key, rpo_view, unreadable
from dr_core.standby.sync import KIND as STANDBY_KIND
from dr_core.standby.sync import lag_hours

if TYPE_CHECKING:
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.tables import JobStore
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import ProtectedInstance, Settings

__all__ = ["BACKUP_DAYS", "MAX_BACKUPS_LISTED", "OPEN_FAILURE_DAYS", "PostureStatus", "open_failures"]


OPEN_FAILURE_DAYS = 7
BACKUP_DAYS = 30
# An hourly schedule makes 720 backups in 30 days; the view lists the newest ones and says how many it left out.
MAX_BACKUPS_LISTED = 250
MAX_OPEN_FAILURES = 20
_MAX_TEXT = 2000
_FAILED = (JobState.FAILED, JobState.TIMED_OUT)


class PostureStatus:
    """Builds the ``GET /api/status`` body (the contract the dashboard renders)."""

    def __init__(self, *, settings: Settings, store: JobStore, backups: BackupStore, resolver: InstanceResolver,
                 clock: Clock, parallel: int = PARALLEL_QUERIES) -> None:
        self._settings = settings
        self._store = store
        self._backups = backups
        self._resolver = resolver
        self._clock = clock
        self._parallel = max(1, parallel)
        self._margin = timedelta(hours=settings.expiry_margin_hours)

    def build(self, service: str | None = None) -> dict[str, Any]:
        """Every protected instance, or the one ``service`` names (resource ID, alias or service name).

        :raises InvalidRequestError: ``service`` is empty, too long or ambiguous.
        :raises UnknownInstanceError: ``service`` names no protected instance.
        """
        now = self._clock.now()
        selected = self._resolver.select(service)
        instances, problems = selected.instances, selected.problems
        rpo_records = self._rpo_records(instances, problems)
        standbys = _index_standbys(self._records(STANDBY_KIND, problems))
        drills = _index_drills(self._records(DRILL_KIND, problems))
        jobs = _index_jobs(self._recent_jobs(now, problems))

        def view(inst: ProtectedInstance) -> dict[str, Any]:
            key = inst.resource_id.key
            standby = standbys.get(inst.standby.key) if inst.standby is not None else None
            return self._instance_view(inst, record=rpo_records.get(rpo_key(inst.resource_id)), standby=standby,
                                       drill=drills.get(key), jobs=jobs.get(key, []), now=now)

        with ThreadPoolExecutor(max_workers=min(self._parallel, len(instances) or 1),
                                thread_name_prefix="status") as pool:
            views = list(pool.map(view, instances))
        return {"generatedAt": iso(now), "instances": views, "problems": problems}

    # -- reads ------------------------------------------------------------------------------------------
    def _rpo_records(self, instances: list[ProtectedInstance], problems: list[str]) -> dict[str, Record]:
        if len(instances) == 1:
            try:
                record = self._store.get_record(RECORD_KIND, rpo_key(instances[0].resource_id))
            except DrError as e:
                problems.append(f"the RPO records could not be read (states computed without history): {e.message}")
                return {}
            return {record.key: record} if record is not None else {}
        return {r.key: r for r in self._records(RECORD_KIND, problems)}

    def _records(self, kind: str, problems: list[str]) -> list[Record]:
        try:
            return self._store.records(kind)
        except DrError as e:
            problems.append(f"the {kind} records could not be read: {e.message}")
            return []

    def _recent_jobs(self, now: datetime, problems: list[str]) -> list[Job]:
        try:
            return list(self._store.recent_jobs([JobKind.BACKUP, JobKind.RESTORE], days=OPEN_FAILURE_DAYS, now=now))
        except DrError as e:
            problems.append(f"recent jobs could not be read (open failures unknown): {e.message}")
            return []

    # -- one instance -----------------------------------------------------------------------------------
    def _instance_view(self, inst: ProtectedInstance, *, record: Record | None, standby: dict[str, Any] | None,
                       drill: dict[str, Any] | None, jobs: list[Job], now: datetime) -> dict[str, Any]:
        previous = record.data if record is not None else None
        entries: list[CatalogEntry] | None = None
        try:
            entries = self._backups.find(inst.container, inst.name)
        except DrError as e:
            assessment = unreadable(inst, e.message)
        else:
            watched = from_iso((previous or {}).get("watchedSince"))
            assessment = assess(inst, entries, now=now, margin=self._margin, watched_since=watched or now)
        data = next_record_data(previous, assessment, now=now)
        view: dict[str, Any] = {
            "instance": str(inst.resource_id),
            "serviceName": inst.name,
            "alias": inst.alias,
            "rpo": rpo_view(data, now=now, reason=assessment.reason),
            "standby": _standby_view(inst, standby, now),
            "lastDrill": _drill_view(drill),
            "openFailures": open_failures(jobs),
            "backups": [],
        }
        if entries is not None:
            recent = [e for e in entries if now - e.created < timedelta(days=BACKUP_DAYS)]
            recent.sort(key=lambda e: e.created, reverse=True)
            view["backups"] = [self._backup_view(e, now) for e in recent[:MAX_BACKUPS_LISTED]]
            if len(recent) > MAX_BACKUPS_LISTED:
                view["backupsOmitted"] = len(recent) - MAX_BACKUPS_LISTED
        return view

    def _backup_view(self, entry: CatalogEntry, now: datetime) -> dict[str, Any]:
        restorable, why = entry.restorable(now=now, margin=self._margin)
        return {"blobName": entry.blob_name, "createdAt": iso(entry.created), "sku": entry.sku,
                "sizeBytes": entry.size, "restorable": restorable, "notRestorableBecause": why}


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


def open_failures(jobs: Iterable[Job]) -> list[dict[str, Any]]:
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
    return [{"jobId": j.job_id, "kind": j.kind.value, "state": j.state.value, "errorCode": j.error_code,
             "message": j.error_message, "remediation": j.remediation,
             "at": iso_or_none(j.finished_at or j.updated_at)} for j in failed[:MAX_OPEN_FAILURES]]


# -- records other features write (read defensively: any shape may come back) -----------------------
def _index_standbys(records: list[Record]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for record in records:
        key = _resource_key(record.data.get("standby"))
        if key is not None:
            index[key] = record.data
    return index


def _index_drills(records: list[Record]) -> dict[str, dict[str, Any]]:
    """The newest drill of each primary (by request time, else finish time)."""
    newest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for record in records:
        data = {**record.data, "jobId": record.data.get("jobId") or record.key}
        key = _resource_key(data.get("instance"))
        moment = from_iso(data.get("requestedAt")) or from_iso(data.get("finishedAt"))
        if key is None or moment is None:
            continue
        if key not in newest or moment > newest[key][0]:
            newest[key] = (moment, data)
    return {key: data for key, (_, data) in newest.items()}


def _standby_view(inst: ProtectedInstance, data: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if inst.standby is None:
        return None
    data = data or {}
    last = data.get("lastSucceeded")
    last_view = None
    if isinstance(last, dict):
        last_view = {"backup": _text(last.get("backup")), "backupCreatedAt": _moment(last.get("backupCreatedAt")),
                     "finishedAt": _moment(last.get("finishedAt"))}
    return {"instance": str(inst.standby), "sync": inst.posture.standby_sync, "lagHours": lag_hours(data, now),
            "lastSucceeded": last_view, "state": _text(data.get("state")), "error": _error(data.get("error"))}


def _drill_view(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {"jobId": _text(data.get("jobId")), "state": _text(data.get("state")),
            "rtoSeconds": _number(data.get("rtoSeconds")), "rpoHoursAtDrill": _number(data.get("rpoHoursAtDrill")),
            "finishedAt": _moment(data.get("finishedAt")), "target": _text(data.get("target")),
            "error": _error(data.get("error"))}


def _resource_key(value: object) -> str | None:
    try:
        return ApimResourceId.parse(value).key
    except InvalidResourceIdError:
        return None


def _text(value: object) -> str | None:
    return value[:_MAX_TEXT] if isinstance(value, str) else None


def _moment(value: object) -> str | None:
    moment = from_iso(value)
    return iso(moment) if moment is not None else None


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _error(value: object) -> dict[str, str | None] | None:
    if not isinstance(value, dict):
        return None
    return {"code": _text(value.get("code")), "message": _text(value.get("message")),
            "remediation": _text(value.get("remediation"))}
