"""A minimal builder of the ``/api/status`` document, so the status page works before the full one exists.

The RPO monitor owns the real builder (``GET /api/status``); the page only needs its document.
Until that lands, :class:`BasicStatusBuilder` assembles the same shape from what exists:
instances from the resolver, backups from the catalog (one tag query per instance), the RPO
state from the monitor's ``rpo`` record when there is one and from the newest restorable
backup otherwise, standby sync and drills from their records when present, and open failures
from recent jobs. ``Api._status_report`` is the one place that chooses the builder.

A part that cannot be read (the catalog of one instance, a record kind) becomes a line in
``problems`` and the rest is still reported: a status page that fails whole when one thing is
down would hide everything else.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .catalog import BACKUP_RETENTION
from .clock import Clock, from_iso, iso
from .errors import DrError
from .ids import ApimResourceId, InvalidResourceIdError
from .jobs import Job, JobKind, JobState
from .store import record_key

if TYPE_CHECKING:
    from .backup_store import BackupStore
    from .inventory import InstanceResolver
    from .settings import ProtectedInstance, Settings
    from .store import JobStore

__all__ = ["STATUS_DAYS", "BasicStatusBuilder", "rpo_state"]

logger = logging.getLogger(__name__)

STATUS_DAYS = 30
AT_RISK_SHARE = 0.8  # at-risk from 80 % of the RPO target (docs/configuration.md, APIM_DR_RPO_HOURS)
_FAILED = (JobState.FAILED, JobState.TIMED_OUT)
_BACKUP_KEYS = ("blobName", "createdAt", "sku", "sizeBytes", "restorable", "notRestorableBecause")
_DRILL_KEYS = ("jobId", "state", "rtoSeconds", "rpoHoursAtDrill", "finishedAt", "target")


def rpo_state(age_hours: float | None, target_hours: float, *, any_backup: bool) -> str:
    """``ok`` / ``at-risk`` / ``breached`` from the newest restorable backup's age; ``unknown`` before any backup."""
    if age_hours is None:
        return "breached" if any_backup else "unknown"
    if age_hours >= target_hours:
        return "breached"
    if age_hours >= AT_RISK_SHARE * target_hours:
        return "at-risk"
    return "ok"


def _key(resource_id: object) -> str | None:
    try:
        return ApimResourceId.parse(resource_id).key
    except InvalidResourceIdError:
        return None


def _hours_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds() / 3600, 2)


class BasicStatusBuilder:
    """Builds the ``/api/status`` document (see the contract in docs/architecture.md) from ports only."""

    def __init__(self, *, settings: Settings, resolver: InstanceResolver, store: JobStore, backups: BackupStore,
                 clock: Clock) -> None:
        self._settings = settings
        self._resolver = resolver
        self._store = store
        self._backups = backups
        self._clock = clock

    def build(self) -> dict[str, Any]:
        now = self._clock.now()
        inventory = self._resolver.inventory()
        problems = list(inventory.problems)
        rpo = self._records("rpo", problems)
        standby = self._records("standby", problems)
        drills: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for data in self._records("drill", problems).values():
            key = _key(data.get("instance"))
            if key is not None:
                drills[key].append(data)
        failures = self._open_failures(now, problems)
        instances = [
            self._instance(inst, now, rpo=rpo, standby=standby, drills=drills.get(inst.resource_id.key, []),
                           failures=failures.get(inst.resource_id.key, []), problems=problems)
            for inst in inventory.instances
        ]
        return {"generatedAt": iso(now), "instances": instances, "problems": problems}

    def _records(self, kind: str, problems: list[str]) -> dict[str, dict[str, Any]]:
        try:
            return {r.key: r.data for r in self._store.records(kind) if isinstance(r.data, dict)}
        except DrError as e:
            problems.append(f"status: the {kind} records could not be read: ({e.error_code}) {e.message}")
            return {}

    def _open_failures(self, now: datetime, problems: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Failed or timed-out jobs with no later success of the same kind on the same instance, by instance key.

        A failed restore is shown under its source (the primary) when it has one, else under its
        target; preflight refusals are not failures (the caller was told at once).
        """
        try:
            jobs = list(self._store.recent_jobs((JobKind.BACKUP, JobKind.RESTORE), days=STATUS_DAYS, now=now))
        except DrError as e:
            problems.append(f"status: recent jobs could not be read: ({e.error_code}) {e.message}")
            return {}
        last_success: dict[tuple[JobKind, str], datetime] = {}
        for job in jobs:
            key = _key(job.instance)
            if job.state is JobState.SUCCEEDED and key is not None:
                ended = job.finished_at or job.updated_at
                previous = last_success.get((job.kind, key))
                last_success[(job.kind, key)] = ended if previous is None or ended > previous else previous
        open_failures: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
        for job in jobs:
            key = _key(job.instance)
            if job.state not in _FAILED or key is None:
                continue
            ended = job.finished_at or job.updated_at
            success = last_success.get((job.kind, key))
            if success is not None and success > ended:
                continue
            shown_under = (_key(job.source_instance) if job.source_instance else None) or key
            open_failures[shown_under].append((ended, _failure_view(job, ended)))
        return {key: [view for _, view in sorted(items, key=lambda item: item[0], reverse=True)]
                for key, items in open_failures.items()}

    def _instance(self, inst: ProtectedInstance, now: datetime, *, rpo: dict[str, dict[str, Any]],
                  standby: dict[str, dict[str, Any]], drills: list[dict[str, Any]],
                  failures: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
        margin = timedelta(hours=self._settings.expiry_margin_hours)
        try:
            entries = self._backups.find(inst.container, inst.name)
        except DrError as e:
            problems.append(f"status: the backups of {inst.name} could not be listed: ({e.error_code}) {e.message}")
            entries = []
        recent = [e for e in entries if now - e.created < BACKUP_RETENTION]
        backups = [{k: v for k, v in e.to_json(now=now, margin=margin).items() if k in _BACKUP_KEYS} for e in recent]
        return {
            "instance": str(inst.resource_id),
            "serviceName": inst.name,
            "alias": inst.alias,
            "rpo": self._rpo(inst, now, rpo.get(record_key(str(inst.resource_id))), backups, any_backup=bool(entries)),
            "standby": self._standby(inst, now, standby),
            "lastDrill": _last_drill(drills),
            "openFailures": failures,
            "backups": backups,
        }

    @staticmethod
    def _rpo(inst: ProtectedInstance, now: datetime, record: dict[str, Any] | None, backups: list[dict[str, Any]],
             *, any_backup: bool) -> dict[str, Any]:
        target = inst.posture.rpo_hours
        if record is not None:
            # The RPO monitor's own verdict wins: it also knows since when the state holds.
            newest = record.get("newestRestorable")
            if isinstance(newest, dict):
                newest = {**newest, "ageHours": _hours_since(from_iso(newest.get("createdAt")), now)}
            return {"targetHours": record.get("targetHours", target), "state": record.get("state", "unknown"),
                    "since": record.get("since"), "newestRestorable": newest if isinstance(newest, dict) else None}
        restorable = next((b for b in backups if b["restorable"]), None)
        age = _hours_since(from_iso(restorable["createdAt"]), now) if restorable else None
        return {
            "targetHours": target,
            "state": rpo_state(age, target, any_backup=any_backup),
            "since": None,
            "newestRestorable": None if restorable is None else {
                "blobName": restorable["blobName"], "createdAt": restorable["createdAt"], "ageHours": age},
        }

    @staticmethod
    def _standby(inst: ProtectedInstance, now: datetime, records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        if inst.standby is None:
            return None
        data = records.get(record_key(str(inst.standby)), {})
        last = data.get("lastSucceeded") if isinstance(data.get("lastSucceeded"), dict) else None
        lag = _hours_since(from_iso(last.get("backupCreatedAt")), now) if last else None
        return {
            "instance": str(inst.standby),
            "sync": inst.posture.standby_sync,
            "lagHours": lag,
            "lastSucceeded": last,
            "state": data.get("state"),
            "error": data.get("error"),
        }


def _last_drill(drills: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not drills:
        return None
    newest = max(drills, key=lambda d: str(d.get("requestedAt") or d.get("finishedAt") or ""))
    return {k: newest.get(k) for k in _DRILL_KEYS}


def _failure_view(job: Job, ended: datetime) -> dict[str, Any]:
    return {
        "jobId": job.job_id,
        "kind": job.kind.value,
        "state": job.state.value,
        "errorCode": job.error_code,
        "message": job.error_message,
        "remediation": job.remediation,
        "at": iso(ended),
    }
