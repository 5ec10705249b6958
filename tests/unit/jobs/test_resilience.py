"""The job machinery's resilience on in-memory fakes: polls answered "ask again", new attempts after transient
operation failures, follow-ups saved with the terminal state, backups adopted after their job ended, and stable
announcement IDs. The end-to-end suite runs the same paths on local Azure (tests/e2e/test_resilience.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_core.catalog.naming import backup_blob_name, parse_backup_blob_name
from dr_core.jobs.events import announcement, announcement_id
from dr_core.jobs.ids import JobKind, make_job_id
from dr_core.jobs.job import AttemptOutcome, Job, Trigger
from dr_core.jobs.messages import WorkMessage
from dr_core.jobs.worker import MAX_FOLLOW_UP_RUNS
from dr_core.kernel.errors import ArmError
from dr_core.kernel.phases import JobState
from dr_core.ports import PollResult, StartedOperation
from tests.unit.fakes import T0, World, world

PROD = "apim-prod"
CONTAINER = "apim-backups"
LOCKED = ArmError("ServiceLocked", "The API Service apim-prod is transitioning at this time.", 409)
INTERNAL = ArmError("InternalServerError", "Encountered an internal server error.", 500)
IDENTITY = ArmError("BackupFailed", "the system-assigned managed identity is not authorized (403 "
                    "AuthorizationPermissionMismatch)", 400)


class RecordingFollower:
    """A follower that records the jobs it saw (and can be told to fail)."""

    def __init__(self, name: str, *, fail: int = 0) -> None:
        self.follow_up_name = name
        self.seen: list[str] = []
        self.fail = fail

    def after(self, job: Job) -> None:
        self.seen.append(job.job_id)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("follower failed")

    def announces(self, job: Job) -> bool:
        return False


def backup_job(w: World, state: JobState = JobState.RUNNING, *, max_attempts: int | None = None) -> Job:
    instance = w.ctx.settings.instances[0]
    job = Job.new_backup(w.ctx.settings, instance, T0, trigger=Trigger.SCHEDULE, now=T0)
    if max_attempts is not None:
        job.max_attempts = max_attempts
    if state in (JobState.STARTING, JobState.RUNNING):
        job.begin_start(T0)
    if state is JobState.RUNNING:
        job.record_started(T0, location="https://management.example/op/1", delay=5)
    return w.store.put(job)


def run(w: World, message: WorkMessage, *, followers: list[RecordingFollower] | None = None) -> None:
    w.ctx.worker(followers=followers).handle(message.encode())


def poll(w: World, job_id: str) -> None:
    job = w.store.rows[job_id]
    run(w, WorkMessage("poll", job=job_id, seq=job.poll_seq))


def resume(w: World, job_id: str, *, followers: list[RecordingFollower] | None = None) -> None:
    run(w, WorkMessage.resume(w.store.rows[job_id]), followers=followers)


def saved(w: World, job: Job) -> Job:
    return w.store.rows[job.job_id]


# -- polls answered "ask again" (issue 18: 409 ServiceLocked on a poll) --------------------------------------

def test_a_poll_answered_service_locked_is_asked_again_and_the_backup_succeeds() -> None:
    w = world()
    w.arm.add_service(PROD, state="Updating")
    job = backup_job(w)
    w.arm.poll_answers = [PollResult("retry", 5, error=LOCKED), PollResult("running", 5),
                          PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    w.backups.add(CONTAINER, job.blob_name)
    for _ in range(3):
        poll(w, job.job_id)
    done = saved(w, job)
    assert done.state is JobState.SUCCEEDED, done.error_message
    assert w.backups.blobs[(CONTAINER, job.blob_name)].tags["apimdr_job"] == job.job_id
    assert w.notifier.announced == []


def test_polls_that_keep_failing_while_the_instance_is_busy_poll_on() -> None:
    w = world()
    w.arm.add_service(PROD, state="Updating")
    job = backup_job(w)
    w.arm.poll_answers = [PollResult("retry", 5, error=INTERNAL)] * 6
    for _ in range(6):
        poll(w, job.job_id)
    running = saved(w, job)
    assert running.state is JobState.RUNNING and running.wait_reason == "InternalServerError"
    assert [c for c in w.arm.calls if c[0] == "get"] == [("get", PROD)] * 2  # one look every third error


def test_polls_that_keep_failing_with_the_instance_idle_and_the_blob_written_adopt_the_backup() -> None:
    w = world()
    w.arm.add_service(PROD)
    job = backup_job(w)
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("retry", 5, error=LOCKED)] * 3
    for _ in range(3):
        poll(w, job.job_id)
    done = saved(w, job)
    assert done.state is JobState.SUCCEEDED and done.attempts[-1].outcome is AttemptOutcome.SUCCEEDED
    assert w.backups.blobs[(CONTAINER, job.blob_name)].tags["apimdr_state"] == "succeeded"


def test_polls_that_keep_failing_with_the_instance_idle_and_no_blob_mean_the_operation_failed() -> None:
    w = world()
    w.arm.add_service(PROD)
    job = backup_job(w)
    w.arm.poll_answers = [PollResult("retry", 5, error=INTERNAL)] * 3
    for _ in range(3):
        poll(w, job.job_id)
    again = saved(w, job)
    # InternalServerError is transient: a new attempt, not a failure.
    assert again.state is JobState.PLANNED and again.attempt == 2
    assert again.attempts[0].outcome is AttemptOutcome.FAILED and again.attempts[0].transient


def test_a_poll_refused_for_want_of_permission_fails_the_job_but_leaves_the_operation_unsettled() -> None:
    w = world()
    job = backup_job(w)
    w.arm.poll_answers = [PollResult("failed", 0, error=ArmError("AuthorizationFailed", "no", 403))]
    poll(w, job.job_id)
    failed = saved(w, job)
    assert failed.state is JobState.FAILED and failed.unsettled
    assert w.notifier.announced == [job.job_id]


# -- new attempts (issue 21) ---------------------------------------------------------------------------------

def _fail_operation(w: World, job_id: str, error: ArmError) -> None:
    w.arm.poll_answers = [PollResult("failed", 0, error=error)]
    poll(w, job_id)


def _start(w: World, job_id: str) -> None:
    job = w.store.rows[job_id]
    assert job.state is JobState.PLANNED
    w.clock.set(job.next_action_at or w.clock.now())
    resume(w, job_id)


def test_an_operation_failing_twice_then_succeeding_is_one_job_three_operations_and_no_announcement() -> None:
    w = world(now=T0)
    job = backup_job(w)
    for n in (1, 2):
        _fail_operation(w, job.job_id, INTERNAL)
        planned = saved(w, job)
        assert planned.state is JobState.PLANNED and planned.attempt == n + 1
        assert planned.wait_reason == f"attempt {n + 1} of 3 after InternalServerError"
        # The next attempt waits its backoff (120 s, then 240 s), on the queue.
        assert w.queue.take()[-1][1] == 120 * 2 ** (n - 1)
        _start(w, job.job_id)
        assert saved(w, job).state is JobState.RUNNING
    third = saved(w, job)
    w.backups.add(CONTAINER, third.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    poll(w, job.job_id)
    done = saved(w, job)
    assert done.state is JobState.SUCCEEDED and w.notifier.announced == []
    assert [a.outcome for a in done.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.FAILED,
                                                 AttemptOutcome.SUCCEEDED]
    assert [a.error_code for a in done.attempts] == ["InternalServerError", "InternalServerError", None]
    # Three operations, three blob names: no attempt writes over another's.
    names = [a.blob_name for a in done.attempts]
    assert len(set(names)) == 3 and names[0] == backup_blob_name(PROD, T0)
    assert [parse_backup_blob_name(n).attempt for n in names] == [1, 2, 3]
    assert [c[0] for c in w.arm.calls].count("backup") == 2  # attempts 2 and 3 (attempt 1 was put running)
    view = done.public_view(now=w.clock.now())
    assert view["maxAttempts"] == 3 and [a["outcome"] for a in view["attempts"]] == ["failed", "failed", "succeeded"]


def test_an_operation_failing_every_attempt_is_announced_once_with_every_error() -> None:
    w = world()
    job = backup_job(w)
    for _ in range(2):
        _fail_operation(w, job.job_id, INTERNAL)
        _start(w, job.job_id)
    _fail_operation(w, job.job_id, ArmError("BackupFailed", "An unexpected error occurred; try again later.", 400))
    failed = saved(w, job)
    assert failed.state is JobState.FAILED and failed.announced and w.notifier.announced == [job.job_id]
    payload = announcement(failed)
    assert [a["error"]["code"] for a in payload["apimDr"]["attempts"]] == [
        "InternalServerError", "InternalServerError", "BackupFailed"]
    assert "Attempts: 3 of 3" in payload["text"] and payload["text"].count("InternalServerError") >= 2
    # A redelivered message does not announce again.
    resume(w, job.job_id)
    assert w.notifier.announced == [job.job_id]


def test_a_permanent_failure_fails_at_once() -> None:
    w = world()
    job = backup_job(w)
    _fail_operation(w, job.job_id, IDENTITY)
    failed = saved(w, job)
    assert failed.state is JobState.FAILED and failed.attempt == 1 and len(failed.attempts) == 1
    assert failed.attempts[0].transient is False and "Storage Blob Data" in (failed.remediation or "")
    assert w.notifier.announced == [job.job_id]


def test_no_new_attempt_starts_past_the_deadline() -> None:
    w = world()
    job = backup_job(w)
    w.clock.set(job.deadline - timedelta(seconds=60))  # the 120 s backoff would end past it
    _fail_operation(w, job.job_id, INTERNAL)
    assert saved(w, job).state is JobState.FAILED and w.notifier.announced == [job.job_id]


def test_max_attempts_one_means_no_new_attempt() -> None:
    w = world()
    job = backup_job(w, max_attempts=1)
    _fail_operation(w, job.job_id, INTERNAL)
    assert saved(w, job).state is JobState.FAILED


def test_a_restore_is_never_tried_again() -> None:
    w = world()
    job = backup_job(w)
    del w.store.rows[job.job_id]
    job.kind = JobKind.RESTORE
    job.job_id = make_job_id(JobKind.RESTORE, job.resource_id, T0)
    job.max_attempts = 3
    w.store.put(job)
    _fail_operation(w, job.job_id, INTERNAL)
    assert saved(w, job).state is JobState.FAILED


def test_max_attempts_comes_from_the_instance_then_the_setting() -> None:
    from tests.unit.fakes import rid, settings

    cfg = settings([{"resourceId": rid(PROD), "maxAttempts": 5}, rid("apim-dev")],
                   APIM_DR_BACKUP_MAX_ATTEMPTS="2")
    first, second = (Job.new_backup(cfg, inst, T0, trigger=Trigger.SCHEDULE, now=T0) for inst in cfg.instances)
    assert (first.max_attempts, second.max_attempts) == (5, 2)


# -- follow-ups saved with the end (issue 18) ---------------------------------------------------------------

def test_follow_ups_are_saved_with_the_terminal_state_and_cleared_once_run(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world()
    job = backup_job(w)
    manifest, rpo = RecordingFollower("manifest"), RecordingFollower("rpo")
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    states: list[tuple[JobState, list[str]]] = []
    update = w.store.update

    def watch(saving: Job) -> Job:
        states.append((saving.state, list(saving.follow_ups)))
        return update(saving)

    monkeypatch.setattr(w.store, "update", watch)
    run(w, WorkMessage("poll", job=job.job_id, seq=job.poll_seq), followers=[manifest, rpo])
    # The save that ended the job carried its follow-ups; the next one cleared them.
    assert states == [(JobState.SUCCEEDED, ["manifest", "rpo"]), (JobState.SUCCEEDED, [])]
    assert manifest.seen == rpo.seen == [job.job_id]


def test_a_host_killed_after_the_terminal_save_leaves_follow_ups_that_a_redelivery_runs() -> None:
    w = world()
    job = backup_job(w)
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]

    class Killed(BaseException):
        pass

    class Dies(RecordingFollower):
        def after(self, job: Job) -> None:
            raise Killed  # the process ends here: nothing after it runs

    with pytest.raises(Killed):
        run(w, WorkMessage("poll", job=job.job_id, seq=job.poll_seq), followers=[Dies("manifest")])
    ended = saved(w, job)
    assert ended.state is JobState.SUCCEEDED and ended.follow_ups == ["manifest"]
    manifest = RecordingFollower("manifest")
    run(w, WorkMessage("poll", job=job.job_id, seq=job.poll_seq), followers=[manifest])  # the redelivery
    assert manifest.seen == [job.job_id] and saved(w, job).follow_ups == []


def test_the_watchdog_sends_work_for_overdue_follow_ups_only() -> None:
    w = world()
    job = backup_job(w)
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    failing = RecordingFollower("standby", fail=1)
    run(w, WorkMessage("poll", job=job.job_id, seq=job.poll_seq), followers=[failing])
    assert saved(w, job).follow_ups == ["standby"]
    w.queue.take()
    assert w.ctx.watchdog().requeue_stalled() == []  # not overdue yet
    w.clock.advance(180)
    assert w.ctx.watchdog().requeue_stalled() == [job.job_id]
    (message, _), = w.queue.take()
    run(w, message, followers=[failing])
    assert failing.seen == [job.job_id] * 2 and saved(w, job).follow_ups == []
    w.clock.advance(180)
    assert w.ctx.watchdog().requeue_stalled() == []


def test_a_follower_that_keeps_failing_is_given_up_after_its_runs() -> None:
    w = world()
    job = backup_job(w)
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    broken = RecordingFollower("drills", fail=100)
    run(w, WorkMessage("poll", job=job.job_id, seq=job.poll_seq), followers=[broken])
    for _ in range(MAX_FOLLOW_UP_RUNS - 1):
        resume(w, job.job_id, followers=[broken])
    assert len(broken.seen) == MAX_FOLLOW_UP_RUNS and saved(w, job).follow_ups == []


def test_an_unknown_follow_up_name_is_cleared() -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    job = w.store.rows[job.job_id]
    job.succeed(T0)
    job.await_follow_ups(["RenamedLongAgo"])
    w.store.put(job)
    resume(w, job.job_id, followers=[RecordingFollower("manifest")])
    assert saved(w, job).follow_ups == []


# -- a backup finished after its job ended (issue 18: "never left invisible") -------------------------------

def _timed_out(w: World) -> Job:
    job = backup_job(w)
    w.clock.set(job.deadline)
    w.arm.poll_answers = [PollResult("running", 5)]  # the last look at the deadline: still running
    poll(w, job.job_id)
    ended = saved(w, job)
    assert ended.state is JobState.TIMED_OUT and ended.unsettled
    return ended


def test_a_timed_out_backup_that_finishes_later_is_adopted_and_labelled() -> None:
    w = world()
    w.arm.add_service(PROD)
    job = _timed_out(w)
    assert w.notifier.announced == [job.job_id]
    w.queue.take()
    w.clock.advance(300)
    assert w.ctx.watchdog().requeue_stalled() == [job.job_id]
    (message, _), = w.queue.take()
    w.arm.poll_answers = [PollResult("running", 5)]
    run(w, message, followers=[])
    assert saved(w, job).state is JobState.TIMED_OUT  # still running: asked again next time
    w.backups.add(CONTAINER, job.blob_name)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    manifest = RecordingFollower("manifest")
    run(w, message, followers=[manifest])
    adopted = saved(w, job)
    assert adopted.state is JobState.SUCCEEDED and not adopted.unsettled
    assert adopted.error_code == "TimedOut"  # what happened to the job stays on record
    assert w.backups.blobs[(CONTAINER, job.blob_name)].tags["apimdr_job"] == job.job_id
    assert manifest.seen == [job.job_id] and adopted.follow_ups == []
    w.clock.advance(300)
    assert w.ctx.watchdog().requeue_stalled() == []


def test_a_timed_out_backup_whose_operation_failed_is_settled_and_not_checked_again() -> None:
    w = world()
    job = _timed_out(w)
    w.arm.poll_answers = [PollResult("failed", 0, error=IDENTITY)]
    resume(w, job.job_id, followers=[])
    settled = saved(w, job)
    assert settled.state is JobState.TIMED_OUT and not settled.unsettled
    assert settled.attempts[-1].error_code == "BackupFailed"
    w.clock.advance(300)
    assert w.ctx.watchdog().requeue_stalled() == []


def test_an_unsettled_backup_is_checked_for_a_bounded_time_only() -> None:
    w = world()
    job = _timed_out(w)
    w.clock.advance(7 * 3600)
    assert job.job_id not in w.ctx.watchdog().requeue_stalled()


def test_the_last_look_at_the_deadline_finds_a_finished_backup() -> None:
    w = world()
    job = backup_job(w)
    w.backups.add(CONTAINER, job.blob_name)
    w.clock.set(job.deadline)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    poll(w, job.job_id)
    assert saved(w, job).state is JobState.SUCCEEDED and w.notifier.announced == []


# -- announcements: at least once, one ID -------------------------------------------------------------------

def test_an_announcement_has_one_id_for_every_delivery() -> None:
    w = world()
    job = backup_job(w)
    _fail_operation(w, job.job_id, IDENTITY)
    failed = saved(w, job)
    first = announcement(failed)["apimDr"]["eventId"]
    again = w.store.get(job.job_id)
    assert again is not None and first == announcement_id(failed) == announcement(again)["apimDr"]["eventId"]
    other = backup_job(world(), JobState.RUNNING)
    assert announcement_id(other) != first
    # Slack and Teams read "text"; the shape is otherwise unchanged.
    assert set(announcement(failed)) == {"text", "apimDr"}


def test_the_start_of_a_new_attempt_is_one_post_with_the_new_blob_name() -> None:
    w = world()
    job = backup_job(w)
    _fail_operation(w, job.job_id, INTERNAL)
    w.arm.start_answers = [StartedOperation(location="https://management.example/op/9", retry_after=5)]
    _start(w, job.job_id)
    running = saved(w, job)
    assert running.state is JobState.RUNNING and running.blob_name.endswith("-a2.apimbackup")
    assert running.current_attempt is not None
    assert (running.current_attempt.operation_url or "").endswith("/op/9")


# -- apim-dr status <job-id> lists the attempts -------------------------------------------------------------

def test_the_cli_shows_every_attempt_and_its_error() -> None:
    import io
    import json

    from dr_core.cli import main
    from dr_core.context import reset_context

    w = world()
    job = backup_job(w)
    for _ in range(2):
        _fail_operation(w, job.job_id, INTERNAL)
        _start(w, job.job_id)
    _fail_operation(w, job.job_id, INTERNAL)
    reset_context(w.ctx)
    try:
        out = io.StringIO()
        code = main(["status", job.job_id], stdout=out)
        text = out.getvalue()
        out_json = io.StringIO()
        main(["--json", "status", job.job_id], stdout=out_json)
    finally:
        reset_context()
    assert code == 1
    lines = [line for line in text.splitlines() if line.startswith("  attempt ")]
    assert len(lines) == 3 and all("failed" in line and "InternalServerError" in line for line in lines)
    assert "-a2.apimbackup" in lines[1] and "-a3.apimbackup" in lines[2]
    view = json.loads(out_json.getvalue())["operation"]
    assert [a["number"] for a in view["attempts"]] == [1, 2, 3] and view["maxAttempts"] == 3
