"""A short, seeded chaos soak (bench/chaos.py) in the suite: ARM faults on starts and polls (ServiceLocked on polls
among them), lost answers, operations that fail with an internal error, a host process killed; every count of what
must never happen is 0. ``python -m bench.chaos`` runs the long one (300 instances, 180 s of faults).

No in-process host runs in this module: the soak's host processes are the only consumers of the queues.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.chaos import SoakPlan, run_soak
from emulator.stack import LocalAzure

from .conftest import CONSUMPTION, DEV, E2E, PREMIUM, PROD, STANDBY, V2, Webhook, make_harness

pytestmark = pytest.mark.e2e

DRILL = "apim-contoso-drill"


@pytest.fixture
def bare(stack: LocalAzure, webhook: Webhook) -> Iterator[E2E]:
    yield make_harness(stack, None, webhook)


def test_a_short_seeded_chaos_soak_loses_nothing(bare: E2E, tmp_path):
    # Four instances that back up; three that never can (no identity, a v2 tier, Consumption): failed, announced.
    plan = SoakPlan(seed=18, backable=[PROD, STANDBY, DRILL, PREMIUM], unbackupable=[DEV, V2, CONSUMPTION], slots=3,
                    slot_gap=6.0, fault_seconds=15.0, fault_rate=2.5, hosts=2, kills=1, settle_timeout=40.0)
    report = run_soak(bare.stack, bare.webhook, plan, workdir=tmp_path)
    print("\n".join(report.lines()))
    assert report.zeros == {"jobs lost": 0, "operations started twice": 0, "backups no job labelled": 0,
                            "manifests missing": 0, "announcements repeated": 0}, "\n".join(report.lines())
    assert report.jobs == report.expected_jobs == 21
    assert report.succeeded == 12 and report.failed_as_expected == 9
    # The soak did what it says: faults of several kinds, a host killed, failures announced.
    assert report.kills == 1 and len(report.faults) >= 4 and report.announcements >= 9
