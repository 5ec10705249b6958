"""Grandfather-father-son retention: which points each rule keeps, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dr_core.retention.gfs import GfsPolicy, GfsRule, gfs_keepers

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday, ISO week 2026-W50


def daily_points(days: int, *, per_day: int = 1) -> list[tuple[str, datetime]]:
    return [(f"{d}-{i}", NOW - timedelta(days=d, hours=i * 3)) for d in range(days) for i in range(per_day)]


@pytest.mark.parametrize(("policy", "points", "kept"), [
    (GfsPolicy(), daily_points(10), {}),
    # The newest point of each of the last 3 days (today included).
    (GfsPolicy(days=3), daily_points(10, per_day=2),
     {"0-0": ["daily 2026-12-07"], "1-0": ["daily 2026-12-06"], "2-0": ["daily 2026-12-05"]}),
    # A day without a point keeps nothing and is not filled from another day.
    (GfsPolicy(days=3), [("a", NOW), ("c", NOW - timedelta(days=2)), ("old", NOW - timedelta(days=5))],
     {"a": ["daily 2026-12-07"], "c": ["daily 2026-12-05"]}),
    # ISO weeks: Monday 7 Dec starts W50; Sunday 6 Dec is W49.
    (GfsPolicy(weeks=2), daily_points(14),
     {"0-0": ["weekly 2026-W50"], "1-0": ["weekly 2026-W49"]}),
    # Months go back across a year end.
    (GfsPolicy(months=13), [("dec", NOW), ("jan", datetime(2026, 1, 31, tzinfo=UTC)),
                            ("dec25", datetime(2025, 12, 31, 23, 59, tzinfo=UTC)),
                            ("nov25", datetime(2025, 11, 30, tzinfo=UTC))],
     {"dec": ["monthly 2026-12"], "jan": ["monthly 2026-01"], "dec25": ["monthly 2025-12"]}),
    # One point kept by every rule names them all.
    (GfsPolicy(days=1, weeks=1, months=1), [("only", NOW - timedelta(hours=1))],
     {"only": ["daily 2026-12-07", "weekly 2026-W50", "monthly 2026-12"]}),
    # A point dated after now (clock skew) counts for now's period.
    (GfsPolicy(days=1), [("future", NOW + timedelta(hours=20)), ("today", NOW - timedelta(hours=1))],
     {"future": ["daily 2026-12-07"]}),
])
def test_gfs_keeps_the_newest_point_of_each_period(policy: GfsPolicy, points: list[tuple[str, datetime]],
                                                   kept: dict[str, list[str]]) -> None:
    result = gfs_keepers(points, policy, now=NOW)
    assert {key: [f"{rule.value} {label}" for rule, label in rules] for key, rules in result.items()} == kept


def test_the_period_boundary_is_utc_midnight() -> None:
    late, early = datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC), datetime(2026, 12, 7, 0, 0, 0, tzinfo=UTC)
    result = gfs_keepers([("late", late), ("early", early)], GfsPolicy(days=2), now=NOW)
    assert result == {"early": [(GfsRule.DAILY, "2026-12-07")], "late": [(GfsRule.DAILY, "2026-12-06")]}
