"""The backup planner on in-memory fakes: one job per protected instance per slot, discovered ones too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_core.kernel.errors import NotFoundError
from tests.unit.fakes import T0, rid, settings, world


def test_timer_plans_every_instance_once_per_slot() -> None:
    w = world(now=T0 + timedelta(seconds=1))
    first = w.ctx.planner().plan_scheduled()
    assert first.slot == T0 and len(first.planned) == 2 and not first.existing
    assert [m.op for m, _ in w.queue.take()] == ["fanout"]
    again = w.ctx.planner().plan_scheduled()
    assert again.planned == [] and sorted(again.existing) == sorted(first.planned) and w.queue.sent == []


def test_discovered_instances_are_planned_and_resolvable_everywhere() -> None:
    cfg = settings([rid("apim-prod")], APIM_DR_DISCOVERY_SUBSCRIPTIONS="00000000-0000-0000-0000-0000000000cc")
    w = world(cfg)
    w.arm.add_service("apim-tagged", tags={"apim-dr:backup": "true"})
    w.arm.add_service("apim-untagged")
    report = w.ctx.planner().plan_scheduled()
    assert sorted(w.store.rows[j].service_name for j in report.planned) == ["apim-prod", "apim-tagged"]
    w.clock.advance(60)
    job, created = w.ctx.planner().request_backup("apim-tagged")
    assert created and job.service_name == "apim-tagged"
    assert w.ctx.catalog().list("apim-tagged").service.service_name == "apim-tagged"
    with pytest.raises(NotFoundError):
        w.ctx.planner().request_backup("apim-untagged")
