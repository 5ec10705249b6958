"""The RPO monitor: how old is the newest backup each protected instance could be restored from?

Every protected instance (configured or discovered) has an RPO target (``rpoHours``, default
``APIM_DR_RPO_HOURS`` = 26 h). The monitor reads the instance's catalog (one index-tag query),
takes the newest *restorable* backup (not expired, counting the expiry margin, and of a tier
that has restore) and compares its age with the target:

=============  ====================================================================
``ok``         younger than 80 % of the target
``at-risk``    from 80 % of the target (the next scheduled backup is late or failed)
``breached``   at or beyond the target, or no restorable backup at all
``unknown``    the catalog could not be read (the reason says why)
=============  ====================================================================

A newly protected instance without any backup is ``at-risk`` for one target period from the
moment the monitor first saw it (it has had no chance to be backed up yet), then ``breached``.

State lives in one ``rpo`` record per instance (:class:`~.record.RpoRecord`), written conditionally
and only when something in it changes. A breach is announced once, and the recovery (back to
``ok`` or ``at-risk``) once; the record's ``announced`` flag is set only after the notifier
succeeded, so a failed announcement is retried on the next run. Each state change writes one
``APIMDR_RPO {json}`` log line, which the alert rules in ``infra/monitor`` read.

The timer (every 15 minutes) checks every instance; :class:`RpoFollower` re-checks an
instance right after one of its backups succeeds, so a recovery is announced at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from dr_core.catalog.entry import CatalogEntry
from dr_core.catalog.relabel import relabel_in_a_run
from dr_core.catalog.tags import entry_from_tags
from dr_core.jobs.ids import JobKind
from dr_core.kernel.clock import iso
from dr_core.kernel.errors import DrError
from dr_core.kernel.events import Event, event_id
from dr_core.kernel.phases import JobState, RpoState
from dr_core.kernel.settings import ProtectedInstance
from dr_core.kernel.threads import parallel_map
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordConflictError
from dr_core.records import Versioned

from .record import AnnounceClaim, NewestBackup, RpoRecord, rpo_key

if TYPE_CHECKING:
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.job import Job
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings
    from dr_core.ports import BackupStore, Notifier
    from dr_core.records import Records

__all__ = [
    "LOG_PREFIX",
    "RpoAssessment",
    "RpoFollower",
    "RpoMonitor",
    "RpoReport",
    "RpoResult",
    "age_hours",
    "assess",
    "next_record",
    "unreadable",
]

logger = logging.getLogger("apim_dr.rpo")
_module_logger = logging.getLogger(__name__)

LOG_PREFIX = "APIMDR_RPO "
# At-risk from 4/5 (80 %) of the target: integer arithmetic on timedeltas, exact at the boundary.
_AT_RISK_NUMERATOR, _AT_RISK_DENOMINATOR = 4, 5
# Catalog queries in flight at once. Each query waits on the storage service, not on this
# process; eight keep a 1,000-instance check within seconds without a burst the account notices.
PARALLEL_QUERIES = 8
# While one runner announces, others leave the instance alone (the timer and a follower may
# meet). A crashed announcer's claim lapses after this; the flag itself is set only on success.
_ANNOUNCE_LEASE = timedelta(minutes=2)
_ATTEMPTS = 3

_BREACH_REMEDIATION = (
    "Find out why no backup succeeded: `apim-dr status` lists the instance's open failures, each with what to do. "
    "Then take a backup now (`apim-dr backup start --instance {name} --wait` or POST /api/backups). "
    "docs/runbook.md, section \"RPO breached\"."
)


@dataclass(frozen=True)
class RpoAssessment:
    """One instance's RPO state as its catalog shows it now (nothing written)."""

    instance: ProtectedInstance
    state: RpoState
    reason: str
    newest: CatalogEntry | None = None
    # When the state began, where the catalog tells (an age crossing a threshold); else None.
    since: datetime | None = None

    @property
    def target_hours(self) -> int:
        return self.instance.posture.rpo_hours


def assess(instance: ProtectedInstance, entries: Sequence[CatalogEntry], *, now: datetime, margin: timedelta,
           watched_since: datetime) -> RpoAssessment:
    """The RPO state of ``instance`` given its catalog.

    ``watched_since`` is when the monitor first saw the instance: an instance with no backup
    at all gets one target period from then before it counts as breached.
    """
    ordered = tuple(sorted(entries, key=lambda e: e.created, reverse=True))
    target = timedelta(hours=instance.posture.rpo_hours)
    hours = instance.posture.rpo_hours
    newest = next((e for e in ordered if e.restorable(now=now, margin=margin)[0]), None)
    if newest is not None:
        age = max(now - newest.created, timedelta(0))
        described = f"newest restorable backup is {_hours(age)} h old (target {hours} h)"
        if age >= target:
            return RpoAssessment(instance, RpoState.BREACHED, described, newest, newest.created + target)
        if age * _AT_RISK_DENOMINATOR >= target * _AT_RISK_NUMERATOR:
            at_risk_from = newest.created + target * _AT_RISK_NUMERATOR / _AT_RISK_DENOMINATOR
            return RpoAssessment(instance, RpoState.AT_RISK, described + ", over 80 % of it", newest, at_risk_from)
        return RpoAssessment(instance, RpoState.OK, described, newest, newest.created)
    if not ordered:
        deadline = watched_since + target
        if now >= deadline:
            return RpoAssessment(instance, RpoState.BREACHED,
                                 f"no backup at all since monitoring began at {iso(watched_since)} (target {hours} h)",
                                 None, deadline)
        return RpoAssessment(instance, RpoState.AT_RISK,
                             f"no backup yet; a newly protected instance has its RPO target ({hours} h) from "
                             f"{iso(watched_since)} to get its first", None, watched_since)
    _, why = ordered[0].restorable(now=now, margin=margin)
    return RpoAssessment(instance, RpoState.BREACHED,
                         f"none of the {len(ordered)} backups can be restored; the newest: {why}", None, None)


def unreadable(instance: ProtectedInstance, reason: str) -> RpoAssessment:
    """The assessment when the catalog could not be read."""
    return RpoAssessment(instance, RpoState.UNKNOWN, f"the backup catalog could not be read: {reason}"[:500])


def next_record(previous: RpoRecord | None, assessment: RpoAssessment, *, now: datetime) -> RpoRecord:
    """The ``rpo`` record after ``assessment`` (the contract of issue 11), given the stored one.

    ``since`` is kept while the state stays the same; ``announced`` is carried over (only an
    announcement changes it); an ``unknown`` state keeps the last known newest backup; a claim
    to announce is kept while it is active.
    """
    state = assessment.state
    if previous is not None and previous.state is state and previous.since is not None:
        since = previous.since
    else:
        since = min(assessment.since or now, now)
    if assessment.newest is not None:
        newest: NewestBackup | None = _newest(assessment.newest)
    elif state is RpoState.UNKNOWN and previous is not None:
        newest = previous.newest_restorable
    else:
        newest = None
    claim = previous.announcing if previous is not None else None
    return RpoRecord(
        instance=str(assessment.instance.resource_id),
        state=state,
        since=since,
        target_hours=assessment.target_hours,
        newest_restorable=newest,
        announced=previous.announced if previous is not None else None,
        watched_since=(previous.watched_since if previous is not None else None) or now,
        announcing=claim if claim is not None and claim.active(now) else None,
    )


Due = Literal["breached", "recovered"]


def _due(state: RpoState, announced: RpoState | None) -> Due | None:
    """Which announcement the state calls for: ``breached`` once per breach, ``recovered`` once after one."""
    if state is RpoState.BREACHED and announced is not RpoState.BREACHED:
        return "breached"
    if state in (RpoState.OK, RpoState.AT_RISK) and announced is RpoState.BREACHED:
        return "recovered"
    return None


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"


@dataclass
class RpoResult:
    """What one check of one instance found and did."""

    instance: str
    state: RpoState
    changed: bool = False
    announced: Due | None = None
    error: str | None = None


@dataclass
class RpoReport:
    """One run of the monitor over the inventory."""

    results: list[RpoResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, state: RpoState) -> int:
        return sum(1 for r in self.results if r.state is state)

    @property
    def announced(self) -> list[RpoResult]:
        return [r for r in self.results if r.announced]

    @property
    def errors(self) -> list[RpoResult]:
        return [r for r in self.results if r.error]


class RpoMonitor:
    """Keeps every protected instance's ``rpo`` record current and announces breaches and recoveries once."""

    def __init__(self, *, settings: Settings, records: Records[RpoRecord], backups: BackupStore, notifier: Notifier,
                 resolver: InstanceResolver, clock: Clock, parallel: int = PARALLEL_QUERIES) -> None:
        self._settings = settings
        self._records = records
        self._backups = backups
        self._notifier = notifier
        self._resolver = resolver
        self._clock = clock
        self._parallel = max(1, parallel)
        self._margin = timedelta(hours=settings.expiry_margin_hours)

    def check_all(self) -> RpoReport:
        """The timer: every protected instance, one catalog query each (a few in parallel).

        One instance's failure (catalog, record write, notifier) is logged and counted; the others
        are still checked. :raises AzureUnavailableError: if the ``rpo`` records cannot be read.
        """
        started = time.perf_counter()
        inventory = self._resolver.inventory()
        report = RpoReport(problems=list(inventory.problems))
        records = {r.key: r for r in self._records.all()}
        report.results = parallel_map(lambda inst: self._check_guarded(inst, records.get(rpo_key(inst.resource_id))),
                                      inventory.instances, max_workers=self._parallel, name="rpo")
        report.seconds = time.perf_counter() - started
        _module_logger.info(
            "RPO check of %d instances in %.2f s: %d ok, %d at-risk, %d breached, %d unknown; %d announced, "
            "%d errors", len(report.results), report.seconds, report.count(RpoState.OK),
            report.count(RpoState.AT_RISK), report.count(RpoState.BREACHED), report.count(RpoState.UNKNOWN),
            len(report.announced), len(report.errors))
        return report

    def check_instance(self, instance: ProtectedInstance, *, new_backup: tuple[str, str] | None = None) -> RpoResult:
        """Check one instance now (its record read fresh).

        ``new_backup`` (container, blob name) is a backup that just succeeded: it is read directly,
        so it counts even before the index-tag query sees it (Azure updates that index
        asynchronously).
        """
        record = self._records.get(rpo_key(instance.resource_id))
        return self._check_guarded(instance, record, new_backup=new_backup)

    # -- one instance --------------------------------------------------------------------------------
    def _check_guarded(self, instance: ProtectedInstance, record: Versioned[RpoRecord] | None, *,
                       new_backup: tuple[str, str] | None = None) -> RpoResult:
        try:
            return self._check(instance, record, new_backup)
        except Exception as e:
            # One instance must not stop the others; the next run tries again.
            _module_logger.exception("RPO check of %s failed", instance.name)
            detail = e.message if isinstance(e, DrError) else type(e).__name__
            return RpoResult(str(instance.resource_id), RpoState.UNKNOWN, error=detail)

    def _check(self, instance: ProtectedInstance, record: Versioned[RpoRecord] | None,
               new_backup: tuple[str, str] | None) -> RpoResult:
        key = rpo_key(instance.resource_id)
        for attempt in range(_ATTEMPTS):
            now = self._clock.now()
            assessment = self._assess(instance, record, now, new_backup)
            try:
                return self._settle(instance, record, assessment, now)
            except RecordConflictError:
                # Someone else (the timer, a follower) wrote first: read their record and the
                # catalog again, so a stale view never overwrites a newer one.
                _module_logger.info("rpo record of %s changed meanwhile (attempt %d)", instance.name, attempt + 1)
                record = self._records.get(key)
        raise RecordConflictError(f"rpo record of {instance.name} kept changing; left for the next run")

    def _assess(self, instance: ProtectedInstance, record: Versioned[RpoRecord] | None, now: datetime,
                new_backup: tuple[str, str] | None) -> RpoAssessment:
        try:
            entries = self._backups.find(instance.container, instance.name)
            if new_backup is not None and all(e.blob_name != new_backup[1] for e in entries):
                tags = self._backups.tags(*new_backup)
                entry = entry_from_tags(new_backup[0], new_backup[1], tags) if tags is not None else None
                if entry is not None and entry.service_name.lower() == instance.name.lower():
                    entries = [entry, *entries]
        except DrError as e:
            return unreadable(instance, e.message)
        watched = record.value.watched_since if record is not None else None
        assessment = assess(instance, entries, now=now, margin=self._margin, watched_since=watched or now)
        turning = record is None or record.value.state is not assessment.state
        if turning and assessment.state in (RpoState.AT_RISK, RpoState.BREACHED):
            # Right after an upgrade the catalog query misses backups labelled before the catalog tag (the
            # daily retention run relabels them): relabel now rather than announce a false breach. Only an
            # instance turning at risk or breached pays the extra query, once, not every run it stays so.
            older = [r.entry for r in relabel_in_a_run(self._backups, instance, entries, dry_run=False)
                     if r.entry is not None]
            if older:
                assessment = assess(instance, [*entries, *older], now=now, margin=self._margin,
                                    watched_since=watched or now)
        return assessment

    def _settle(self, instance: ProtectedInstance, record: Versioned[RpoRecord] | None, assessment: RpoAssessment,
                now: datetime) -> RpoResult:
        """Write the record if it changed, log a state change, announce what is due (once)."""
        previous = record.value if record is not None else None
        new = next_record(previous, assessment, now=now)
        due = _due(assessment.state, new.announced)
        if due and new.announcing is not None:
            due = None  # another runner is announcing right now
        if due:
            new = replace(new, announcing=AnnounceClaim(assessment.state, now + _ANNOUNCE_LEASE))
        result = RpoResult(str(instance.resource_id), assessment.state)
        if previous is None or new != previous:
            written = self._records.put(Versioned(rpo_key(instance.resource_id), new,
                                                  record.etag if record is not None else None))
            result.changed = True
            previous_state = previous.state if previous is not None else None
            if previous_state is not assessment.state:
                _log_change(assessment, previous_state, now=now)
            record = written
        if due:
            assert record is not None
            result.announced = self._announce(instance, record, assessment, due, now)
        return result

    def _announce(self, instance: ProtectedInstance, record: Versioned[RpoRecord], assessment: RpoAssessment,
                  due: Due, now: datetime) -> Due | None:
        try:
            self._notifier.announce_event(_event(instance, assessment, due, now=now, since=record.value.since))
        except Exception:
            _module_logger.exception("RPO %s announcement of %s failed; the next check tries again", due,
                                     instance.name)
            self._release_claim(record)
            return None
        self._mark_announced(record, assessment.state)
        return due

    def _mark_announced(self, record: Versioned[RpoRecord], state: RpoState) -> None:
        """Set ``announced`` (the notifier has succeeded), on whatever the record is now; never announce again."""
        def mark(old: RpoRecord | None) -> RpoRecord | None:
            return replace(old, announcing=None, announced=state) if old is not None else None

        try:
            self._records.update(record.key, mark, attempts=_ATTEMPTS, current=record)
            return
        except RecordConflictError:
            pass
        _module_logger.error("rpo record %s: announced %s but could not record it; it may be announced again",
                             record.key, state.value)

    def _release_claim(self, record: Versioned[RpoRecord]) -> None:
        record.value = replace(record.value, announcing=None)
        # If this write fails too, the claim lapses on its own after _ANNOUNCE_LEASE.
        with contextlib.suppress(DrError):
            self._records.put(record)


def _newest(entry: CatalogEntry) -> NewestBackup:
    return NewestBackup(entry.blob_name, entry.created)


def _newest_json(entry: CatalogEntry | None) -> dict[str, str] | None:
    """The newest restorable backup as the record, the log line and the event carry it."""
    return None if entry is None else _newest(entry).to_json()


def age_hours(created: datetime, now: datetime) -> float:
    """Hours since ``created``, two decimals; a backup dated in the future counts as new (0), as in assess."""
    return round(max((now - created).total_seconds(), 0.0) / 3600, 2)


def _log_change(assessment: RpoAssessment, previous: RpoState | None, *, now: datetime) -> None:
    """One structured line per RPO state change; the alert rules in infra/monitor read it."""
    newest = assessment.newest
    line = {
        "instance": str(assessment.instance.resource_id),
        "serviceName": assessment.instance.name,
        "state": assessment.state.value,
        "previous": None if previous is None else previous.value,
        "targetHours": assessment.target_hours,
        "since": iso(now),
        "ageHours": None if newest is None else age_hours(newest.created, now),
        # The same shape as the rpo record's (the workbook and the alert rule read it).
        "newestRestorable": _newest_json(newest),
        "reason": assessment.reason,
    }
    level = logging.WARNING if assessment.state in (RpoState.BREACHED, RpoState.UNKNOWN) else logging.INFO
    logger.log(level, "%s%s", LOG_PREFIX, json.dumps(line, separators=(",", ":")))


def _event(instance: ProtectedInstance, assessment: RpoAssessment, due: Due, *, now: datetime,
           since: datetime | None = None) -> Event:
    name = instance.alias or instance.name
    # The same ID for every delivery of this announcement: the instance and when its current state began.
    ident = event_id(f"rpo-{due}", instance.resource_id.key, iso(since) if since is not None else "")
    newest = assessment.newest
    details: JsonObject = {
        "instance": str(instance.resource_id),
        "serviceName": instance.name,
        "alias": instance.alias,
        "state": assessment.state.value,
        "targetHours": assessment.target_hours,
        "ageHours": None if newest is None else age_hours(newest.created, now),
        "newestRestorable": _newest_json(newest),
        "reason": assessment.reason,
    }
    if due == "breached":
        remediation = _BREACH_REMEDIATION.format(name=name)
        text = (f"apim-dr: RPO breached for {instance.name}\nInstance: {instance.resource_id}\n"
                f"Why: {assessment.reason}\nWhat to do: {remediation}")
        return Event("rpo-breached", text, {**details, "remediation": remediation}, severe=True, event_id=ident)
    text = (f"apim-dr: RPO recovered for {instance.name} ({assessment.state.value})\n"
            f"Instance: {instance.resource_id}\nNow: {assessment.reason}")
    return Event("rpo-recovered", text, details, severe=False, event_id=ident)


class RpoFollower:
    """After a backup succeeds, re-check its instance's RPO at once (a recovery is announced without delay).

    Idempotent; the 15-minute timer catches up on anything a crash made it miss.
    """

    def __init__(self, monitor: RpoMonitor, settings: Settings) -> None:
        self._monitor = monitor
        self._settings = settings

    def after(self, job: Job) -> None:
        if job.kind is not JobKind.BACKUP or job.state is not JobState.SUCCEEDED:
            return
        self._monitor.check_instance(self._instance_of(job), new_backup=(job.container, job.blob_name))

    def announces(self, job: Job) -> bool:
        return False

    def _instance_of(self, job: Job) -> ProtectedInstance:
        """The configured instance, else one found by discovery (default options): no ARM call here."""
        rid = job.resource_id
        for inst in self._settings.instances:
            if inst.resource_id.key == rid.key:
                return inst
        return self._settings.discovered_instance(rid, container=job.container)
