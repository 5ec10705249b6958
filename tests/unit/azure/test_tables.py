"""The app's table without Azure: the key scheme that keeps jobs, locks and records apart, and job rows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dr_core.azure.tables import (
    LOCK_PARTITION,
    RowKind,
    is_job_row,
    job_from_entity,
    job_partition,
    job_to_entity,
    record_partition,
    row_kind,
)
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.phases import JobState
from dr_core.ports import RecordKind
from dr_core.snapshots.progress import SnapshotProgress
from tests.unit.fakes import T0, rid, settings


@pytest.mark.parametrize(("partition", "kind"), [
    *((job_partition(k, T0), RowKind.JOB) for k in JobKind),
    (LOCK_PARTITION, RowKind.LOCK), *((record_partition(k), RowKind.RECORD) for k in RecordKind),
    # Near misses are none of them: a scan never takes them for jobs.
    ("backup-2026113", None), ("backup-20261130x", None), ("failover-2026113", None), ("drill-20261130", None),
    ("record-other", None),
    ("restore-locks", None), ("", None),
])
def test_the_key_scheme_tells_jobs_locks_and_records_apart(partition: str, kind: RowKind | None) -> None:
    assert row_kind(partition) is kind
    assert is_job_row({"PartitionKey": partition, "RowKey": "x"}) is (kind is RowKind.JOB)


def test_a_job_row_round_trips_and_tolerates_other_versions_columns() -> None:
    cfg = settings()
    job = Job.new_backup(cfg, cfg.instances[0], T0, trigger=Trigger.SCHEDULE, now=T0)
    job.begin_start(T0 + timedelta(seconds=1))
    entity = job_to_entity(job)
    assert entity["PartitionKey"] == "backup-20261130" and entity["RowKey"] == job.job_id
    assert entity["State"] == "Starting" and entity["Trigger"] == "schedule" and "ClientId" not in entity  # no nulls
    again = job_from_entity({**entity, "SomeLaterColumn": 1})  # a column this version does not know: ignored
    assert again == job
    older = job_from_entity({k: v for k, v in entity.items() if k != "StartAttempts"})  # a column it lacks
    assert older.start_attempts == 0 and older.state is JobState.STARTING


def test_a_kind_s_part_round_trips_through_its_json_column() -> None:
    cfg = settings([rid("apim-a")])
    job = Job.new_snapshot(cfg, cfg.instances[0], T0, trigger=Trigger.SCHEDULE, now=T0)
    job.snapshot = SnapshotProgress(step=3, reads=120, items=80, pending=7, content_hash="sha256:ab", tier="StandardV2")
    entity = job_to_entity(job)
    assert json.loads(entity["Snapshot"])["reads"] == 120
    back = job_from_entity(entity)
    assert back.snapshot == job.snapshot and back.kind is JobKind.SNAPSHOT
    # A damaged column reads as an empty part, never as an error that stops the job.
    assert job_from_entity({**entity, "Snapshot": "not json"}).snapshot == SnapshotProgress()
    assert job_from_entity({**entity, "Snapshot": '{"reads": -4, "tier": 7}'}).snapshot == SnapshotProgress(tier="7")
