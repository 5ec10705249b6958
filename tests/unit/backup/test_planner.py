"""The backup planner on in-memory fakes: one job per protected instance per slot, discovered ones too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_core.kernel.errors import NotFoundError
from tests.unit.fakes import T0, rid, settings, world


def test_timer_plans_every_instance_once_per_slot() -> None:
    w = world(now=T0 + timedelta(seconds=1))
    first = w.ctx.planner().plan_scheduled()
    # recovery "auto" (the default): a native backup (quietly refused where the tier has none) and a snapshot.
    kinds = sorted((w.store.rows[j].kind.value, w.store.rows[j].service_name) for j in first.planned)
    assert first.slot == T0 and not first.existing
    assert kinds == [("backup", "apim-dev"), ("backup", "apim-prod"), ("snapshot", "apim-dev"),
                     ("snapshot", "apim-prod")]
    assert all(w.store.rows[j].tier_may_lack_backup for j in first.planned if j.startswith("backup-"))
    assert [m.op for m, _ in w.queue.take()] == ["fanout", "fanout"]  # backups and snapshots paced apart
    again = w.ctx.planner().plan_scheduled()
    assert again.planned == [] and sorted(again.existing) == sorted(first.planned) and w.queue.sent == []


def test_discovered_instances_are_planned_and_resolvable_everywhere() -> None:
    cfg = settings([rid("apim-prod")], APIM_DR_DISCOVERY_SUBSCRIPTIONS="00000000-0000-0000-0000-0000000000cc")
    w = world(cfg)
    w.arm.add_service("apim-tagged", tags={"apim-dr:backup": "true"})
    w.arm.add_service("apim-untagged")
    report = w.ctx.planner().plan_scheduled()
    assert sorted({w.store.rows[j].service_name for j in report.planned}) == ["apim-prod", "apim-tagged"]
    w.clock.advance(60)
    job, created = w.ctx.planner().request_backup("apim-tagged")
    assert created and job.service_name == "apim-tagged"
    assert w.ctx.catalog().list("apim-tagged").service.service_name == "apim-tagged"
    with pytest.raises(NotFoundError):
        w.ctx.planner().request_backup("apim-untagged")


@pytest.mark.parametrize(("recovery", "kinds"), [
    ("native", ["backup"]), ("snapshot", ["snapshot"]), ("both", ["backup", "snapshot"]),
    ("auto", ["backup", "snapshot"]),
])
def test_recovery_decides_which_recovery_points_are_planned(recovery: str, kinds: list[str]) -> None:
    w = world(settings([{"resourceId": rid("apim-prod"), "recovery": recovery}]))
    report = w.ctx.planner().plan_scheduled()
    jobs = [w.store.rows[j] for j in report.planned]
    assert sorted(j.kind.value for j in jobs) == kinds
    backup = next((j for j in jobs if j.kind.value == "backup"), None)
    # Only "auto" tries a native backup that a tier without one may refuse quietly; "both" insists.
    assert backup is None or backup.tier_may_lack_backup is (recovery == "auto")
    snapshot = next((j for j in jobs if j.kind.value == "snapshot"), None)
    assert snapshot is None or (snapshot.blob_name.endswith(".apimsnapshot") and snapshot.snapshot is not None)


def test_the_global_recovery_setting_is_the_default_and_an_entry_overrides_it() -> None:
    cfg = settings([rid("apim-a"), {"resourceId": rid("apim-b"), "recovery": "both"}], APIM_DR_RECOVERY="native")
    assert [i.posture.recovery.value for i in cfg.instances] == ["native", "both"]
