"""Grandfather-father-son retention: keep the newest recovery point of each of the last N days, weeks and months.

Pure and table-driven. Periods are calendar periods in UTC: a day is a UTC date, a week an ISO week
(Monday to Sunday), a month a calendar month. "The last N days" are the N periods up to and
including the current one (``now``'s), so a daily rule of 7 keeps one point for today and each of
the six days before, the newest point of each; a period without any point keeps nothing and is
not filled from a neighbour (AWS Backup and Azure Backup count the same way).

One point may be kept by several rules; each rule that keeps it is named, so ``apim-dr prune
--dry-run`` can say why.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

__all__ = ["GfsPolicy", "GfsRule", "gfs_keepers"]

K = TypeVar("K", bound=Hashable)


class GfsRule(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class GfsPolicy:
    """How many of the last days, weeks and months keep their newest point (0: the rule is off)."""

    days: int = 0
    weeks: int = 0
    months: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.days or self.weeks or self.months)


def _period(rule: GfsRule, moment: datetime) -> tuple[int, int] | tuple[int, int, int]:
    if rule is GfsRule.DAILY:
        return (moment.year, moment.month, moment.day)
    if rule is GfsRule.WEEKLY:
        iso = moment.isocalendar()
        return (iso.year, iso.week)
    return (moment.year, moment.month)


def _last_periods(rule: GfsRule, now: datetime, count: int) -> list[tuple[int, ...]]:
    periods: list[tuple[int, ...]] = []
    if rule is GfsRule.DAILY:
        periods = [_period(rule, now - timedelta(days=i)) for i in range(count)]
    elif rule is GfsRule.WEEKLY:
        periods = [_period(rule, now - timedelta(weeks=i)) for i in range(count)]
    else:
        year, month = now.year, now.month
        for _ in range(count):
            periods.append((year, month))
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return periods


def gfs_keepers(points: Iterable[tuple[K, datetime]], policy: GfsPolicy, *,
                             now: datetime) -> dict[K, list[tuple[GfsRule, str]]]:
    """For each point a rule keeps: the rules, each with the period it stands for (``2026-12-07``, ``2026-W49``...).

    ``points`` are (key, creation time in UTC); points created after ``now`` count for ``now``'s period.
    """
    ordered = sorted(points, key=lambda p: p[1], reverse=True)
    kept: dict[K, list[tuple[GfsRule, str]]] = {}
    for rule, count in ((GfsRule.DAILY, policy.days), (GfsRule.WEEKLY, policy.weeks),
                        (GfsRule.MONTHLY, policy.months)):
        if count <= 0:
            continue
        wanted = set(_last_periods(rule, now, count))
        seen: set[tuple[int, ...]] = set()
        for key, created in ordered:
            period = _period(rule, min(created, now))
            if period in wanted and period not in seen:
                seen.add(period)
                kept.setdefault(key, []).append((rule, _label(rule, period)))
    return kept


def _label(rule: GfsRule, period: tuple[int, ...]) -> str:
    if rule is GfsRule.DAILY:
        return f"{period[0]:04d}-{period[1]:02d}-{period[2]:02d}"
    if rule is GfsRule.WEEKLY:
        return f"{period[0]:04d}-W{period[1]:02d}"
    return f"{period[0]:04d}-{period[1]:02d}"
