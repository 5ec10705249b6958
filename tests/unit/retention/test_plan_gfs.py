"""The one retention decision with grandfather-father-son rules and recovery-point kinds, table-driven.

T0 is Monday 2026-11-30 02:00 UTC (ISO week 2026-W49).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dr_core.catalog.entry import CatalogEntry, RecoveryPointKind
from dr_core.catalog.naming import backup_blob_name
from dr_core.retention.gfs import GfsPolicy
from dr_core.retention.plan import Action, Reason, plan_instance
from tests.unit.fakes import T0

CONTAINER = "apim-backups"
NATIVE, SNAP = RecoveryPointKind.NATIVE_BACKUP, RecoveryPointKind.SNAPSHOT
K, D = Action.KEEP, Action.DELETE


def point(age_days: float, kind: RecoveryPointKind = NATIVE) -> CatalogEntry:
    created = T0 - timedelta(days=age_days)
    name = backup_blob_name("apim-prod", created)
    if kind is SNAP:
        name = name.replace(".apimbackup", ".apimsnapshot")
    return CatalogEntry(container=CONTAINER, blob_name=name, service_name="apim-prod", sku="Standard",
                        created=created, expires=None if kind is SNAP else created + timedelta(days=30), size=10,
                        location="", job_id="x", kind=kind)


# (case, keepLast, maxAgeDays, GFS policy, points as (age in days, kind) newest first,
#  expected (action, reason) per point, newest first)
CASES: list[tuple[str, int, int, GfsPolicy, list[tuple[float, RecoveryPointKind]], list[tuple[Action, Reason]]]] = [
    ("GFS off: the rules of before", 1, 1, GfsPolicy(),
     [(0, NATIVE), (1.5, NATIVE), (3, NATIVE)],
     [(K, Reason.KEEP_LAST), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("keepDaily 3: the newest of today and each of the two days before; two a day keeps one", 1, 1,
     GfsPolicy(days=3),
     [(0, NATIVE), (0.05, NATIVE), (1.01, NATIVE), (1.06, NATIVE), (2.01, NATIVE), (3.01, NATIVE)],
     [(K, Reason.KEEP_LAST), (K, Reason.WITHIN_MAX_AGE), (K, Reason.KEEP_DAILY), (D, Reason.PAST_MAX_AGE),
      (K, Reason.KEEP_DAILY), (D, Reason.PAST_MAX_AGE)]),
    ("keepWeekly 2: Monday's backup is this week's, Saturday's last week's, the week before is not kept", 1, 1,
     GfsPolicy(weeks=2),
     [(0, NATIVE), (1.5, NATIVE), (2, NATIVE), (7, NATIVE), (8, NATIVE)],
     [(K, Reason.KEEP_LAST), (K, Reason.KEEP_WEEKLY), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE),
      (D, Reason.PAST_MAX_AGE)]),
    ("keepMonthly 3 over old native backups: November's newest, October's, September's", 1, 7,
     GfsPolicy(months=3),
     [(0, NATIVE), (20, NATIVE), (40, NATIVE), (45, NATIVE), (70, NATIVE), (100, NATIVE)],
     [(K, Reason.KEEP_LAST), (D, Reason.PAST_MAX_AGE), (K, Reason.KEEP_MONTHLY), (D, Reason.PAST_MAX_AGE),
      (K, Reason.KEEP_MONTHLY), (D, Reason.PAST_MAX_AGE)]),
    ("a month without a backup keeps nothing and is not filled from the month before", 1, 7,
     GfsPolicy(months=2),
     [(0, NATIVE), (62, NATIVE)],
     [(K, Reason.KEEP_LAST), (D, Reason.PAST_MAX_AGE)]),
    ("every rule at once: the first that keeps names the reason", 3, 37, GfsPolicy(days=7, weeks=4, months=12),
     [(0, NATIVE), (40, NATIVE)],
     [(K, Reason.KEEP_LAST), (K, Reason.KEEP_LAST)]),
    ("each kind is its own series: snapshots do not push native backups out of keepLast", 1, 1, GfsPolicy(),
     [(0, SNAP), (0.1, SNAP), (0.2, SNAP), (5, NATIVE), (6, NATIVE)],
     [(K, Reason.KEEP_LAST), (K, Reason.WITHIN_MAX_AGE), (K, Reason.WITHIN_MAX_AGE), (K, Reason.KEEP_LAST),
      (D, Reason.PAST_MAX_AGE)]),
    ("a snapshot never expires: the newest is restorable at any age; older ones go past maxAgeDays", 0, 30,
     GfsPolicy(),
     [(100, SNAP), (200, SNAP)],
     [(K, Reason.NEWEST_RESTORABLE), (D, Reason.PAST_MAX_AGE)]),
    ("monthly configuration history: snapshots kept a year by keepMonthly", 1, 7, GfsPolicy(months=12),
     [(0, SNAP), (31, SNAP), (200, SNAP), (400, SNAP)],
     [(K, Reason.KEEP_LAST), (K, Reason.KEEP_MONTHLY), (K, Reason.KEEP_MONTHLY), (D, Reason.PAST_MAX_AGE)]),
    ("an expired native backup is never the newest restorable, a snapshot of the same age is", 0, 1, GfsPolicy(),
     [(40, NATIVE), (40, SNAP)],
     [(D, Reason.PAST_MAX_AGE), (K, Reason.NEWEST_RESTORABLE)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plan_with_gfs_and_kinds(case):
    _, keep_last, max_age, gfs, points, expected = case
    entries = [point(age, kind) for age, kind in points]
    decisions = plan_instance(list(reversed(entries)), keep_last=keep_last, max_age_days=max_age, now=T0, gfs=gfs)
    assert [d.entry.blob_name for d in decisions] == [e.blob_name for e in sorted(
        entries, key=lambda e: (e.created, e.blob_name), reverse=True)]
    by_name = {d.entry.blob_name: (d.action, d.reason) for d in decisions}
    assert [by_name[e.blob_name] for e in entries] == expected
    for decision in decisions:
        assert (decision.action is Action.KEEP) == bool(decision.kept_by)
        if decision.kept_by:
            assert decision.kept_by[0] is decision.reason


def test_every_rule_that_keeps_a_point_is_named():
    (decision,) = plan_instance([point(0.05)], keep_last=1, max_age_days=37, now=T0,
                                gfs=GfsPolicy(days=1, weeks=1, months=1))
    assert decision.kept_by == (Reason.KEEP_LAST, Reason.NEWEST_RESTORABLE, Reason.WITHIN_MAX_AGE,
                                Reason.KEEP_DAILY, Reason.KEEP_WEEKLY, Reason.KEEP_MONTHLY)
    assert "the newest of 2026-11-30 (keepDaily 1)" in decision.why
    assert "the newest of 2026-W49 (keepWeekly 1)" in decision.why
    assert "the newest of 2026-11 (keepMonthly 1)" in decision.why


def test_a_native_backup_a_monthly_rule_keeps_past_30_days_is_said_not_restorable():
    decisions = plan_instance([point(0), point(45), point(20)], keep_last=1, max_age_days=7, now=T0,
                              gfs=GfsPolicy(months=2))
    monthly = next(d for d in decisions if d.entry.created == T0 - timedelta(days=45))
    assert monthly.reason is Reason.KEEP_MONTHLY
    assert "the newest of 2026-10 (keepMonthly 2)" in monthly.why
    assert "NOT RESTORABLE: native backups expire after 30 days" in monthly.why
    assert "history only" in monthly.why
    # A young one says nothing of the kind, and the one this month's newest shadows is deleted.
    newest = next(d for d in decisions if d.entry.created == T0)
    assert "NOT RESTORABLE" not in newest.why
    assert next(d for d in decisions if d.entry.created == T0 - timedelta(days=20)).action is Action.DELETE


def test_a_kept_snapshot_says_it_never_expires():
    decisions = plan_instance([point(0, SNAP), point(90, SNAP)], keep_last=1, max_age_days=1, now=T0,
                              gfs=GfsPolicy(months=6))
    assert all("never expires" in d.why for d in decisions)
    assert not any("NOT RESTORABLE" in d.why for d in decisions)


def test_the_deletion_names_the_gfs_rules_it_falls_outside():
    decisions = plan_instance([point(0), point(1.5)], keep_last=1, max_age_days=1, now=T0, gfs=GfsPolicy(days=1))
    deleted = decisions[1]
    assert deleted.action is Action.DELETE and deleted.why.startswith("1.5 days old, past maxAgeDays 1")
    assert "not the newest of a day, week or month" in deleted.why


@pytest.mark.parametrize("gfs", [GfsPolicy(days=3650), GfsPolicy(weeks=520), GfsPolicy(months=120)])
def test_large_gfs_counts_keep_one_per_period_and_stay_fast(gfs):
    entries = [point(day / 4) for day in range(4 * 400)]  # four a day for 400 days
    decisions = plan_instance(entries, keep_last=1, max_age_days=1, now=T0, gfs=gfs)
    reason, period = {GfsPolicy(days=3650): (Reason.KEEP_DAILY, lambda t: t.date()),
                      GfsPolicy(weeks=520): (Reason.KEEP_WEEKLY, lambda t: t.isocalendar()[:2]),
                      GfsPolicy(months=120): (Reason.KEEP_MONTHLY, lambda t: (t.year, t.month))}[gfs]
    kept: dict[object, list[datetime]] = {}
    for decision in decisions:
        if reason in decision.kept_by:
            kept.setdefault(period(decision.entry.created), []).append(decision.entry.created)
    # Exactly one per period that has points, and it is that period's newest.
    assert set(kept) == {period(e.created) for e in entries}
    for key, created in kept.items():
        assert created == [max(e.created for e in entries if period(e.created) == key)]


# -- through the pruner and the CLI: the dry run names the rule and says what a kept backup is good for ------------

def test_prune_dry_run_names_the_gfs_rule_and_says_a_monthly_native_backup_is_not_restorable():
    import io
    import json

    from dr_core import cli
    from dr_core.catalog.tags import backup_tags
    from dr_core.context import reset_context
    from tests.unit.fakes import rid, settings, world

    w = world(settings([{"resourceId": rid("apim-prod"), "alias": "prod", "keepLast": 1, "maxAgeDays": 1,
                         "keepDaily": 2, "keepMonthly": 3}]))
    names = {}
    for age in (0, 1.05, 20, 45, 200):
        created = T0 - timedelta(days=age)
        names[age] = backup_blob_name("apim-prod", created)
        w.backups.add(CONTAINER, names[age], created=created,
                      tags=backup_tags(service_name="apim-prod", sku="Standard", created=created, job_id="j", size=1))
    reset_context(w.ctx)
    try:
        out = io.StringIO()
        assert cli.main(["prune", "--dry-run"], stdout=out) == 0
        text = out.getvalue()
        assert "keepLast 1, maxAgeDays 1, keepDaily 2, keepMonthly 3, 5 backup(s)" in text
        assert f"[keep   ] {names[1.05]}  keep-daily: the newest of 2026-11-29 (keepDaily 2)" in text
        monthly = next(line for line in text.splitlines() if names[45] in line)
        assert "keep-monthly: the newest of 2026-10 (keepMonthly 3)" in monthly
        assert "NOT RESTORABLE: native backups expire after 30 days" in monthly
        assert f"[DELETE ] {names[20]}" in text and f"[DELETE ] {names[200]}" in text
        assert w.backups.deleted == []
        out = io.StringIO()
        assert cli.main(["--json", "prune", "--dry-run"], stdout=out) == 0
        (instance,) = json.loads(out.getvalue())["instances"]
        assert (instance["keepDaily"], instance["keepWeekly"], instance["keepMonthly"]) == (2, 0, 3)
        by_name = {b["blobName"]: b for b in instance["backups"]}
        assert by_name[names[45]]["reason"] == "keep-monthly" and by_name[names[45]]["keptBy"] == ["keep-monthly"]
        assert by_name[names[0]]["keptBy"][:2] == ["keep-last", "newest-restorable"]
        assert by_name[names[20]]["keptBy"] == [] and by_name[names[20]]["outcome"] == "would-delete"
    finally:
        reset_context()
