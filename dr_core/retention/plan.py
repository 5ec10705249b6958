"""Which recovery points of one instance retention deletes, and why: the one decision function, pure, no I/O.

Each kind of recovery point (native backups; configuration snapshots once they are catalogued) is
its own series: the rules below count within a kind, so hourly snapshots never crowd native backups
out of ``keepLast``. A point is **kept** if any of these holds, and the first one is its reason:

1. ``keep-last``: it is among the ``keepLast`` newest of its kind;
2. ``newest-restorable``: it is the newest of its kind that can still be restored (for native backups:
   not expired, of a tier that restores; a kind that never expires is always restorable);
3. ``within-max-age``: it is at most ``maxAgeDays`` old;
4. ``keep-daily`` / ``keep-weekly`` / ``keep-monthly`` (grandfather-father-son, :mod:`.gfs`): it is the
   newest of its kind in one of the last ``keepDaily`` UTC days, ``keepWeekly`` ISO weeks or
   ``keepMonthly`` calendar months;
5. ``in-use-by-restore``: an unfinished restore job reads it.

Otherwise it is deleted (``past-max-age``). Every rule that keeps a point is listed (``kept_by``), and
the explanation says when a kept native backup can no longer be restored: APIM refuses backups older
than 30 days, so a backup a weekly or monthly rule keeps past that is history, not a recovery point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from dr_core.catalog.entry import CatalogEntry, RecoveryPointKind
from dr_core.kernel.clock import iso

from .gfs import GfsPolicy, GfsRule, gfs_keepers

__all__ = ["Action", "Decision", "Reason", "RetentionRules", "plan_instance"]

_DAY = 86400.0


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"


class Reason(StrEnum):
    """Why a backup is kept or deleted; the first rule that keeps it is named."""

    KEEP_LAST = "keep-last"
    NEWEST_RESTORABLE = "newest-restorable"
    WITHIN_MAX_AGE = "within-max-age"
    KEEP_DAILY = "keep-daily"
    KEEP_WEEKLY = "keep-weekly"
    KEEP_MONTHLY = "keep-monthly"
    IN_USE = "in-use-by-restore"
    PAST_MAX_AGE = "past-max-age"


_GFS_REASONS = {GfsRule.DAILY: Reason.KEEP_DAILY, GfsRule.WEEKLY: Reason.KEEP_WEEKLY,
                GfsRule.MONTHLY: Reason.KEEP_MONTHLY}
_GFS_SETTINGS = {GfsRule.DAILY: "keepDaily", GfsRule.WEEKLY: "keepWeekly", GfsRule.MONTHLY: "keepMonthly"}


@dataclass(frozen=True)
class RetentionRules:
    """One instance's retention settings (``keepLast``, ``maxAgeDays``, ``keepDaily/Weekly/Monthly``)."""

    keep_last: int
    max_age_days: int
    gfs: GfsPolicy = field(default_factory=GfsPolicy)


@dataclass(frozen=True)
class Decision:
    entry: CatalogEntry
    action: Action
    reason: Reason
    why: str
    age_days: float
    kept_by: tuple[Reason, ...] = field(default=())  # every rule that keeps it, the reason first


def plan_instance(entries: Iterable[CatalogEntry], *, keep_last: int, max_age_days: int, now: datetime,
                  in_use: Mapping[tuple[str, str], str] | None = None,
                  gfs: GfsPolicy | None = None) -> list[Decision]:
    """Keep or delete each recovery point of one instance, newest first, with the reason (pure: no I/O).

    ``in_use`` maps ``(container, blob name)`` to the unfinished restore job that reads it; ``gfs`` is
    the grandfather-father-son policy (off by default).
    """
    rules = RetentionRules(keep_last, max_age_days, gfs or GfsPolicy())
    ordered = sorted(entries, key=lambda e: (e.created, e.blob_name), reverse=True)
    by_kind: dict[RecoveryPointKind, list[CatalogEntry]] = {}
    for entry in ordered:
        by_kind.setdefault(entry.kind, []).append(entry)
    decided: dict[int, Decision] = {}
    for series in by_kind.values():
        for entry, decision in zip(series, _plan_series(series, rules, now, in_use or {}), strict=True):
            decided[id(entry)] = decision
    return [decided[id(entry)] for entry in ordered]


def _plan_series(series: list[CatalogEntry], rules: RetentionRules, now: datetime,
                 in_use: Mapping[tuple[str, str], str]) -> list[Decision]:
    """Decisions for the points of one kind, newest first."""
    newest_restorable = next((e for e in series if e.restorable(now=now)[0]), None)
    kept_by_gfs = gfs_keepers(((index, entry.created) for index, entry in enumerate(series)), rules.gfs, now=now) \
        if rules.gfs.enabled else {}
    max_age = timedelta(days=rules.max_age_days)
    decisions: list[Decision] = []
    for index, entry in enumerate(series):
        days = (now - entry.created).total_seconds() / _DAY
        reasons: list[tuple[Reason, str]] = []
        if index < rules.keep_last:
            reasons.append((Reason.KEEP_LAST, f"one of the newest {rules.keep_last} (keepLast)"))
        if entry is newest_restorable:
            reasons.append((Reason.NEWEST_RESTORABLE, _newest_restorable(entry)))
        if now - entry.created <= max_age:
            reasons.append((Reason.WITHIN_MAX_AGE, f"{days:.1f} days old, within maxAgeDays {rules.max_age_days}"))
        for rule, period in kept_by_gfs.get(index, []):
            reasons.append((_GFS_REASONS[rule], f"the newest of {period} ({_GFS_SETTINGS[rule]} "
                                                f"{_gfs_count(rules.gfs, rule)})"))
        job = in_use.get((entry.container, entry.blob_name))
        if job is not None:
            reasons.append((Reason.IN_USE, f"read by unfinished restore {job}"))
        if reasons:
            decisions.append(_keep(entry, reasons, days, now))
        else:
            decisions.append(_delete(entry, rules, days, now, newest_restorable))
    return decisions


def _keep(entry: CatalogEntry, reasons: list[tuple[Reason, str]], days: float, now: datetime) -> Decision:
    (first, why), others = reasons[0], reasons[1:]
    if others:
        why += "; also " + ", ".join(text for _, text in others)
    note = _restorability_note(entry, now)
    if note:
        why += f"; {note}"
    return Decision(entry, Action.KEEP, first, why, days, tuple(reason for reason, _ in reasons))


def _delete(entry: CatalogEntry, rules: RetentionRules, days: float, now: datetime,
            newest_restorable: CatalogEntry | None) -> Decision:
    able, why_not = entry.restorable(now=now)
    if not able:
        restorable = f"not restorable: {why_not}"
    else:
        assert newest_restorable is not None  # this one is restorable, so a newest one exists
        restorable = f"a newer backup is restorable ({newest_restorable.blob_name})"
    why = (f"{days:.1f} days old, past maxAgeDays {rules.max_age_days}; not among the newest {rules.keep_last}"
           f"{_no_gfs_period(rules.gfs)}; {restorable}")
    return Decision(entry, Action.DELETE, Reason.PAST_MAX_AGE, why, days)


def _newest_restorable(entry: CatalogEntry) -> str:
    if entry.expires is None:
        return f"the newest {_kind(entry)} (never expires)"
    return f"the newest restorable backup (expires {iso(entry.expires)})"


def _kind(entry: CatalogEntry) -> str:
    return "configuration snapshot" if entry.kind is RecoveryPointKind.SNAPSHOT else entry.kind.value


def _restorability_note(entry: CatalogEntry, now: datetime) -> str | None:
    """What a kept point is good for, when that is less than a restore: said for every kept native backup APIM
    would refuse (expired: a weekly or monthly rule keeps it as history); a kind that never expires says so."""
    if entry.expires is None:
        return f"a {_kind(entry)} never expires"
    if now >= entry.expires:
        return (f"NOT RESTORABLE: native backups expire after 30 days (this one on {iso(entry.expires)}); kept as "
                "history only, APIM would refuse to restore it")
    return None


def _no_gfs_period(gfs: GfsPolicy) -> str:
    if not gfs.enabled:
        return ""
    return "; not the newest of a day, week or month keepDaily/keepWeekly/keepMonthly keep"


def _gfs_count(gfs: GfsPolicy, rule: GfsRule) -> int:
    return {GfsRule.DAILY: gfs.days, GfsRule.WEEKLY: gfs.weeks, GfsRule.MONTHLY: gfs.months}[rule]
