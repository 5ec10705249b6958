"""A job's typed lists (attempts, follow-ups) are one JSON column each in its table row."""

from __future__ import annotations

from dr_core.azure.tables import job_from_entity, job_to_entity
from dr_core.jobs.job import AttemptOutcome, Job, Trigger
from dr_core.kernel.errors import ArmError
from tests.unit.fakes import T0, settings


def _job() -> Job:
    cfg = settings()
    job = Job.new_backup(cfg, cfg.instances[0], T0, trigger=Trigger.SCHEDULE, now=T0)
    job.max_attempts = 3
    job.begin_start(T0)
    job.record_started(T0, location="https://management.example/op/1", delay=5)
    job.try_again(T0, ArmError("InternalServerError", "boom", 500), delay=60)
    job.begin_start(T0)
    job.record_started(T0, location="https://management.example/op/2", delay=5)
    job.succeed(T0)
    job.await_follow_ups(["ManifestRecorder", "RpoFollower"])
    return job


def test_attempts_and_follow_ups_round_trip() -> None:
    job = _job()
    entity = job_to_entity(job)
    assert isinstance(entity["Attempts"], str) and isinstance(entity["FollowUps"], str)
    back = job_from_entity({**entity})
    assert back.attempts == job.attempts and back.follow_ups == ["ManifestRecorder", "RpoFollower"]
    assert [a.outcome for a in back.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
    assert back.attempts[0].error_code == "InternalServerError" and back.attempts[0].transient is True
    assert (back.attempt, back.max_attempts) == (2, 3)


def test_empty_lists_leave_no_column_and_rows_without_them_read_as_empty() -> None:
    job = _job()
    job.follow_ups = []
    entity = job_to_entity(job)
    assert "FollowUps" not in entity
    older = {k: v for k, v in entity.items() if k not in ("Attempts", "Attempt", "MaxAttempts")}
    back = job_from_entity(older)
    assert (back.attempts, back.follow_ups, back.attempt, back.max_attempts) == ([], [], 1, 1)


def test_a_column_that_does_not_read_counts_as_empty() -> None:
    entity = job_to_entity(_job())
    for hostile in ("not json", "{}", "[1, 2]", '[{"number": "x"}]', "[" * 5000):
        assert job_from_entity({**entity, "Attempts": hostile}).attempts == []
