"""Every branch of the queue worker, on in-memory fakes (the e2e suite runs the same paths on local Azure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_core.catalog.tags import TAG_CREATED, TAG_SIZE, TAG_SKU, TAG_STATE
from dr_core.jobs.ids import JobKind, make_job_id
from dr_core.jobs.job import Job, Trigger
from dr_core.jobs.messages import InvalidMessageError, WorkMessage
from dr_core.kernel.errors import ArmError
from dr_core.kernel.phases import JobState
from dr_core.ports import PollResult, StartedOperation
from tests.unit.fakes import T0, World, rid, world

PROD = "apim-prod"


def backup_job(w: World, state: JobState = JobState.PLANNED) -> Job:
    instance = w.ctx.settings.instances[0]
    job = Job.new_backup(w.ctx.settings, instance, T0, trigger=Trigger.SCHEDULE, now=T0)
    _advance(job, state)
    return w.store.put(job)


def restore_job(w: World, state: JobState = JobState.PLANNED) -> Job:
    job = backup_job(w, JobState.PLANNED)
    del w.store.rows[job.job_id]
    job.kind = JobKind.RESTORE
    job.job_id = make_job_id(JobKind.RESTORE, job.resource_id, T0)
    _advance(job, state)
    w.store.put(job)
    assert w.store.create_lock(job.resource_id, job.job_id)
    return job


def _advance(job: Job, state: JobState) -> None:
    if state in (JobState.STARTING, JobState.RUNNING):
        job.begin_start(T0)
    if state is JobState.RUNNING:
        job.record_started(T0, location="https://management.example/op/1", delay=5)


def start(job: Job) -> str:
    return WorkMessage("start", job=job.job_id).encode()


def poll(job: Job, seq: int | None = None) -> str:
    return WorkMessage("poll", job=job.job_id, seq=job.poll_seq if seq is None else seq).encode()


def run(w: World, text: str) -> None:
    w.ctx.worker().handle(text)


# -- messages ----------------------------------------------------------------------------------------

def test_fanout_becomes_one_start_per_job() -> None:
    w = world()
    ids = [make_job_id(JobKind.BACKUP, w.ctx.settings.instances[0].resource_id, T0 + timedelta(seconds=i))
           for i in range(3)]
    run(w, WorkMessage("fanout", jobs=tuple(ids)).encode())
    assert [(m.op, m.job, d) for m, d in w.queue.sent] == [("start", i, 0) for i in ids]


@pytest.mark.parametrize("text", ["", "not json", '{"v": 2, "op": "start"}', '{"v": 1, "op": "drop", "job": "x"}',
                                  '{"v": 1, "op": "start", "job": "../etc"}', "[" * 10_000])
def test_messages_apim_dr_did_not_write_raise_for_the_poison_queue(text: str) -> None:
    with pytest.raises(InvalidMessageError):
        run(world(), text)


def test_message_for_a_missing_row_is_dropped() -> None:
    w = world()
    job = backup_job(w)
    del w.store.rows[job.job_id]
    run(w, start(job))
    assert w.queue.sent == [] and w.arm.calls == []


# -- starting ----------------------------------------------------------------------------------------

def test_planned_job_posts_once_and_polls_after_retry_after() -> None:
    w = world()
    job = backup_job(w)
    w.arm.start_answers = [StartedOperation(location="https://management.example/op/7", retry_after=12)]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.RUNNING and saved.start_attempts == 1
    assert saved.operation_url == "https://management.example/op/7" and saved.poll_seq == 1
    assert saved.next_action_at == T0 + timedelta(seconds=12)
    assert w.arm.calls == [("backup", PROD)]
    assert [(m.op, m.seq, d) for m, d in w.queue.sent] == [("poll", 1, 12)]


def test_retry_after_is_bounded_by_the_max_poll_delay() -> None:
    w = world(None)
    job = backup_job(w)
    w.arm.start_answers = [StartedOperation(location="https://management.example/op/1", retry_after=9999)]
    run(w, start(job))
    assert w.queue.ops() == [("poll", w.ctx.settings.max_poll_delay_seconds)]


@pytest.mark.parametrize(("answer", "state", "reason", "delay", "uncertain"), [
    (ArmError("ServiceLocked", "The API Service is transitioning", 409), JobState.PLANNED, "ServiceLocked", 30, False),
    (ArmError("SubscriptionRequestsThrottled", "too many", 429), JobState.PLANNED, "SubscriptionRequestsThrottled",
     15, False),
    (ArmError("InternalServerError", "boom", 500), JobState.STARTING, "InternalServerError", 15, True),
    (ConnectionResetError("reset by peer"), JobState.STARTING, "NoResponse", 15, True),
])
def test_start_refusals_that_mean_not_now_or_unknown(answer: object, state: JobState, reason: str, delay: int,
                                                     uncertain: bool) -> None:
    w = world()
    job = backup_job(w)
    w.arm.start_answers = [answer]  # type: ignore[list-item]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert (saved.state, saved.wait_reason, saved.start_uncertain) == (state, reason, uncertain)
    assert w.queue.ops() == [("start", delay)]
    assert not w.notifier.announced


def test_a_refusal_that_means_never_fails_and_is_announced_once() -> None:
    w = world()
    job = backup_job(w)
    w.arm.start_answers = [ArmError("MethodNotAllowedInPricingTier", "Method not allowed in StandardV2", 400)]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.FAILED and saved.error_code == "MethodNotAllowedInPricingTier"
    assert "Developer, Basic, Standard and Premium" in (saved.remediation or "")
    assert saved.announced and w.notifier.announced == [job.job_id]
    run(w, start(job))  # a duplicate message for the ended job announces nothing more
    assert w.notifier.announced == [job.job_id]


def test_a_synchronous_200_succeeds_without_polling() -> None:
    w = world()
    job = backup_job(w)
    w.backups.add(job.container, job.blob_name, size=2048)
    w.arm.start_answers = [StartedOperation(location=None, retry_after=0,
                                            resource={"sku": {"name": "Premium", "capacity": 2}, "location": "X"})]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.SUCCEEDED and (saved.sku, saved.sku_capacity, saved.blob_size) == ("Premium", 2,
                                                                                                        2048)
    assert w.queue.sent == []


def test_start_message_for_a_running_job_does_nothing() -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    run(w, start(job))
    assert w.arm.calls == [] and w.queue.sent == [] and w.store.updates == 0


def test_another_worker_first_means_no_post_and_no_message() -> None:
    w = world()
    job = backup_job(w)
    w.store.conflict_next_update = True
    run(w, start(job))
    assert w.arm.calls == [] and w.queue.sent == []


# -- recovering a job left Starting ------------------------------------------------------------------

def test_starting_within_the_lease_waits_for_its_own_worker() -> None:
    w = world()
    job = backup_job(w, JobState.STARTING)
    run(w, start(job))
    expected = min(w.ctx.settings.start_lease_seconds + 1, w.ctx.settings.max_poll_delay_seconds)
    assert w.arm.calls == [] and w.queue.ops() == [("start", expected)]


@pytest.mark.parametrize(("provisioning", "blob", "expected_state", "expected_calls"), [
    ("Updating", False, JobState.STARTING, [("get", PROD)]),
    ("Succeeded", True, JobState.SUCCEEDED, [("get", PROD)]),
    ("Succeeded", False, JobState.RUNNING, [("get", PROD), ("backup", PROD)]),
])
def test_starting_after_the_lease_checks_the_instance_before_posting(provisioning: str, blob: bool,
                                                                     expected_state: JobState,
                                                                     expected_calls: list[tuple[str, str]]) -> None:
    w = world()
    job = backup_job(w, JobState.STARTING)
    w.arm.add_service(PROD, state=provisioning)
    if blob:
        w.backups.add(job.container, job.blob_name)
    w.clock.advance(w.ctx.settings.start_lease_seconds + 1)
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is expected_state and w.arm.calls == expected_calls
    if expected_state is JobState.SUCCEEDED:
        assert saved.started_at == saved.starting_at and saved.sku == "Standard"
    if expected_state is JobState.RUNNING:
        assert saved.start_attempts == 2
    if expected_state is JobState.STARTING:
        assert saved.wait_reason == "InstanceBusy" and w.queue.ops() == [("start", 30)]


def test_an_uncertain_start_is_checked_at_once_without_waiting_for_the_lease() -> None:
    w = world()
    job = backup_job(w, JobState.STARTING)
    job.await_start_outcome(T0, reason="NoResponse", delay=15)
    w.store.put(job)
    w.arm.add_service(PROD, state="Updating")
    run(w, start(job))
    assert w.arm.calls == [("get", PROD)]


def test_a_restore_whose_start_was_lost_fails_instead_of_restoring_twice() -> None:
    w = world()
    job = restore_job(w, JobState.STARTING)
    w.arm.add_service(PROD)
    w.clock.advance(w.ctx.settings.start_lease_seconds + 1)
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.FAILED and saved.error_code == "RestoreOutcomeUnknown"
    assert ("restore", PROD) not in w.arm.calls
    assert w.store.locks == {}  # the target is free for the next restore


@pytest.mark.parametrize(("error", "state"), [
    (ArmError("SubscriptionRequestsThrottled", "slow down", 429), JobState.STARTING),
    (ArmError("ResourceNotFound", "gone", 404), JobState.FAILED),
])
def test_reading_the_instance_fails(error: ArmError, state: JobState) -> None:
    w = world()
    job = backup_job(w, JobState.STARTING)
    w.arm.get_errors = [error]
    w.clock.advance(w.ctx.settings.start_lease_seconds + 1)
    run(w, start(job))
    assert w.store.rows[job.job_id].state is state


# -- polling -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("result", "reason"), [
    (PollResult("running", 7), None),
    (PollResult("retry", 20, error=ArmError("SubscriptionRequestsThrottled", "slow down", 429)),
     "SubscriptionRequestsThrottled"),
])
def test_a_poll_that_finds_it_running_sends_the_next_poll(result: PollResult, reason: str | None) -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    w.arm.poll_answers = [result]
    run(w, poll(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.RUNNING and saved.polls == 1 and saved.poll_seq == 2
    assert saved.wait_reason == reason
    assert [(m.op, m.seq, d) for m, d in w.queue.sent] == [("poll", 2, int(result.retry_after))]


@pytest.mark.parametrize("seq", [0, 2, 99])
def test_stale_poll_messages_are_dropped(seq: int) -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    run(w, poll(job, seq))
    assert w.arm.calls == [] and w.queue.sent == []


def test_a_successful_poll_labels_the_backup_blob() -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    w.backups.add(job.container, job.blob_name, size=4096)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard", "capacity": 1},
                                                               "location": "West Europe"})]
    w.clock.advance(42)
    run(w, poll(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.SUCCEEDED and saved.blob_size == 4096 and saved.duration_seconds == 42
    blob = w.backups.blobs[(job.container, job.blob_name)]
    assert blob.tags[TAG_STATE] == "succeeded" and blob.tags[TAG_SKU] == "Standard" and blob.tags[TAG_SIZE] == "4096"
    assert blob.metadata["source_resource_id"] == job.instance
    assert w.queue.sent == [] and not w.notifier.announced


def test_the_backup_time_is_when_arm_accepted_it_on_the_apps_clock() -> None:
    # Storage's clock says the blob appeared 3 minutes later (APIM snapshots after accepting): the
    # catalog keeps the earlier moment, from the app's clock, so an age is never understated.
    w = world()
    job = backup_job(w, JobState.RUNNING)
    w.backups.add(job.container, job.blob_name, size=10, created=T0 + timedelta(minutes=3))
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    w.clock.advance(600)
    run(w, poll(job))
    blob = w.backups.blobs[(job.container, job.blob_name)]
    assert blob.tags[TAG_CREATED] == "2026-11-30T02:00:00Z" and blob.metadata["created"] == "2026-11-30T02:00:00Z"


def test_success_without_the_blob_is_a_failure() -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    run(w, poll(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.FAILED and saved.error_code == "BackupBlobMissing"
    assert w.notifier.announced == [job.job_id]


def test_a_failed_operation_fails_the_job_with_remediation() -> None:
    w = world()
    job = restore_job(w, JobState.RUNNING)
    w.arm.poll_answers = [PollResult("failed", 0, error=ArmError(
        "RestoreFailed", "Cannot restore: current SKU is 'StandardV2', backup SKU is 'Standard'", 400))]
    run(w, poll(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.FAILED and "tier" in (saved.remediation or "")
    assert w.store.locks == {} and w.notifier.announced == [job.job_id]


def test_a_restore_that_succeeds_frees_its_target() -> None:
    w = world()
    job = restore_job(w, JobState.RUNNING)
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    run(w, poll(job))
    assert w.store.rows[job.job_id].state is JobState.SUCCEEDED and w.store.locks == {}
    assert w.backups.calls == []  # a restore labels no blob


# -- deadlines and announcements ---------------------------------------------------------------------

@pytest.mark.parametrize("state", [JobState.PLANNED, JobState.STARTING, JobState.RUNNING])
def test_a_job_past_its_deadline_times_out_and_is_announced(state: JobState) -> None:
    w = world()
    job = backup_job(w, state)
    w.clock.set(job.deadline)
    run(w, poll(job) if state is JobState.RUNNING else start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.TIMED_OUT and saved.error_code == "TimedOut"
    assert f"within {w.ctx.settings.backup_timeout_minutes} minutes" in (saved.error_message or "")
    # A running operation gets one last poll at the deadline (it was still running); nothing else is sent.
    assert w.arm.calls == ([("poll", PROD)] if state is JobState.RUNNING else [])
    assert w.notifier.announced == [job.job_id] and saved.announced


def test_an_announcement_that_fails_is_retried_by_the_next_delivery() -> None:
    w = world()
    job = backup_job(w)
    w.arm.start_answers = [ArmError("ResourceNotFound", "gone", 404)]
    w.notifier.fail = True
    with pytest.raises(RuntimeError):
        run(w, start(job))
    assert w.store.rows[job.job_id].state is JobState.FAILED and not w.store.rows[job.job_id].announced
    w.notifier.fail = False
    run(w, start(job))  # the host redelivers the message
    assert w.notifier.announced == [job.job_id] and w.store.rows[job.job_id].announced


def test_other_instances_of_the_same_service_name_get_other_job_ids() -> None:
    a = make_job_id(JobKind.BACKUP, world().ctx.settings.instances[0].resource_id, T0)
    from dr_core.kernel.ids import ApimResourceId

    b = make_job_id(JobKind.BACKUP, ApimResourceId.parse(rid(PROD, rg="rg-other")), T0)
    assert a != b and a.split("-")[:-1] == b.split("-")[:-1]


# -- issue 8: answers that never came, and ARM's Retry-After -------------------------------------------

def test_a_post_that_was_never_sent_goes_back_to_planned() -> None:
    from dr_core.kernel.errors import AzureUnavailableError

    w = world()
    job = backup_job(w)
    w.arm.start_answers = [AzureUnavailableError("no token", code="TokenUnavailable")]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert (saved.state, saved.wait_reason, saved.unanswered_posts) == (JobState.PLANNED, "TokenUnavailable", 0)
    assert w.queue.ops() == [("start", 15)]


def test_a_lost_answer_then_409_is_treated_as_maybe_ours() -> None:
    from dr_core.kernel.errors import NoAnswerError

    w = world()
    job = backup_job(w)
    w.arm.start_answers = [NoAnswerError("connection reset after sending")]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert (saved.state, saved.start_uncertain, saved.unanswered_posts) == (JobState.STARTING, True, 1)
    # The recovery path sees an idle instance without a blob (the operation is not visible yet) and
    # posts again; ARM answers 409: that lock may be our own first operation, so never back to Planned.
    w.arm.add_service(PROD)
    w.arm.start_answers = [ArmError("ServiceLocked", "The API Service is transitioning", 409)]
    w.queue.take()
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.STARTING and saved.wait_reason == "ServiceLocked" and saved.start_uncertain
    # Once the instance is idle with the job's blob, the job adopts it: one backup, no second POST.
    w.backups.add(job.container, job.blob_name)
    run(w, start(job))
    assert w.store.rows[job.job_id].state is JobState.SUCCEEDED
    assert [c for c in w.arm.calls if c[0] == "backup"] == [("backup", PROD), ("backup", PROD)]


@pytest.mark.parametrize(("code", "status"), [("SubscriptionRequestsThrottled", 429), ("ServiceLocked", 409)])
def test_a_refused_start_waits_exactly_as_long_as_arm_said(code: str, status: int) -> None:
    w = world()
    job = backup_job(w)
    w.arm.start_answers = [ArmError(code, "not now", status, retry_after=42)]
    run(w, start(job))
    assert w.queue.ops() == [("start", 42)]
    assert w.store.rows[job.job_id].next_action_at == T0 + timedelta(seconds=42)


def test_reading_the_instance_with_arm_unreachable_waits() -> None:
    from dr_core.kernel.errors import AzureUnavailableError

    w = world()
    job = backup_job(w, JobState.STARTING)
    w.clock.advance(w.ctx.settings.start_lease_seconds + 1)
    w.arm.get_errors = [AzureUnavailableError("connection refused", code="ArmUnreachable")]
    run(w, start(job))
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.STARTING and saved.wait_reason == "ArmUnreachable"


def test_followers_run_once_after_the_end_and_their_failure_never_fails_the_job() -> None:
    w = world()
    job = backup_job(w, JobState.RUNNING)
    w.backups.add(job.container, job.blob_name)
    seen: list[tuple[str, JobState]] = []

    class Recorder:
        def after(self, ended: Job) -> None:
            seen.append((ended.job_id, ended.state))

        def announces(self, ended: Job) -> bool:
            return False

    class Broken:
        def after(self, ended: Job) -> None:
            raise RuntimeError("follow-up failed")

        def announces(self, ended: Job) -> bool:
            return False

    worker = w.ctx.worker(followers=[Broken(), Recorder()])
    w.arm.poll_answers = [PollResult("succeeded", 0, resource={"sku": {"name": "Standard"}})]
    worker.handle(poll(job))
    worker.handle(poll(job))  # a duplicate message for the ended job: no second follow-up
    assert seen == [(job.job_id, JobState.SUCCEEDED)]
    assert w.store.rows[job.job_id].state is JobState.SUCCEEDED
