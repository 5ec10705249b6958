"""The queue worker: move one job one step per invocation, never waiting on ARM.

Order of writes, so a crash at any point loses nothing and never sends a second POST:

1. ``Planned -> Starting`` is recorded (conditional) **before** the ARM POST.
2. The POST is sent; ``Starting -> Running`` records the operation's ``Location``, then
   the first poll message is enqueued, visible after ``Retry-After``.
3. A worker that died between 1 and 2 leaves the job ``Starting``. Once the start lease has
   passed, the next message for it does not POST blindly: it reads the instance. Busy means
   the operation runs (wait); idle with the backup blob present means it finished (adopt it);
   idle without the blob means no backup happened, and only then is the POST sent again.
4. Each poll is one GET; the row's ``pollSeq`` is advanced conditionally before the next poll
   message is sent, so duplicated poll messages are recognised as stale and dropped.

A message whose step was lost (crash after the row update, before the enqueue) is picked up
by the watchdog (:func:`dr_core.planner.requeue_stalled_jobs`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .arm import API_VERSION, ArmCallError, BackupTarget, PollResult, StartedOperation
from .catalog import backup_metadata, backup_tags
from .errors import ArmError
from .jobs import Job, JobConflictError, JobKind, JobState, from_iso, iso, now_utc
from .messages import WorkMessage, send_messages
from .notify import log_transition

if TYPE_CHECKING:
    from datetime import datetime

    from .context import DrContext

__all__ = ["handle_message", "process_job"]

logger = logging.getLogger(__name__)

_BUSY_STATES = {"updating", "activating", "creating", "terminating", "deleting"}
_MIN_DELAY = 1


def handle_message(ctx: DrContext, text: str, *, dequeue_count: int = 1) -> None:
    """Entry point of the queue trigger.

    :raises InvalidMessageError: for a message apim-dr did not write (the host retries it,
        then moves it to the poison queue, so nothing is silently dropped).
    """
    message = WorkMessage.decode(text)
    if message.op == "fanout":
        send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=j), 0) for j in message.jobs])
        return
    process_job(ctx, message, dequeue_count=dequeue_count)


def process_job(ctx: DrContext, message: WorkMessage, *, dequeue_count: int = 1) -> None:
    job = ctx.store.get(message.job)
    if job is None:
        logger.warning("message for unknown job %s dropped (row missing)", message.job)
        return
    now = now_utc()
    if job.state.terminal:
        _announce_if_needed(ctx, job)
        return
    deadline = from_iso(job.deadline)
    if deadline is not None and now >= deadline:
        _time_out(ctx, job, now)
        return
    if message.op == "poll":
        if job.state is not JobState.RUNNING or message.seq != job.poll_seq:
            logger.info("stale poll message for %s (seq %s, job at %s/%s) dropped",
                        job.job_id, message.seq, job.state.value, job.poll_seq)
            return
        _poll(ctx, job, now)
        return
    # op == "start"
    if job.state is JobState.PLANNED:
        _start(ctx, job, now)
    elif job.state is JobState.STARTING:
        _recover_starting(ctx, job, now)
    else:
        logger.info("start message for %s, already %s: nothing to do", job.job_id, job.state.value)


def _delay(ctx: DrContext, seconds: float) -> int:
    return int(min(max(seconds, _MIN_DELAY), ctx.settings.max_poll_delay_seconds))


def _save(ctx: DrContext, job: Job) -> bool:
    """Conditional write; False if another worker moved the job first (then we stop here)."""
    try:
        ctx.store.update(job)
    except JobConflictError:
        logger.info("job %s was changed by another worker; this message stops here", job.job_id)
        return False
    return True


def _target(ctx: DrContext, job: Job) -> BackupTarget:
    key = ctx.settings.backup_storage_key
    return BackupTarget(
        storage_account=job.storage_account,
        container=job.container,
        blob_name=job.blob_name,
        access_type=job.access_type,
        client_id=job.client_id,
        access_key=key.reveal() if key is not None and job.access_type == "AccessKey" else None,
    )


def _start(ctx: DrContext, job: Job, now: datetime) -> None:
    job.transition(JobState.STARTING, now)
    job.starting_at = iso(now)
    job.start_attempts += 1
    job.start_uncertain = False
    job.wait_reason = None
    if not _save(ctx, job):
        return
    log_transition(job)
    _send_start(ctx, job)


def _send_start(ctx: DrContext, job: Job) -> None:
    """The ARM POST, then record what ARM said. The job is ``Starting`` and owned by us."""
    rid = job.resource_id
    ops = ctx.operations
    try:
        if job.kind is JobKind.BACKUP:
            started = ops.begin_backup(rid, _target(ctx, job))
        else:
            started = ops.begin_restore(rid, _target(ctx, job))
    except ArmCallError as e:
        _start_refused(ctx, job, e.error)
        return
    except Exception as e:
        # Network failure or similar: ARM may or may not have accepted the POST.
        logger.warning("start of %s ended without an answer (%s); checking the instance later", job.job_id,
                       type(e).__name__)
        _start_refused(ctx, job, ArmError("NoResponse", f"{type(e).__name__}: {str(e)[:300]}"), uncertain=True)
        return
    _record_started(ctx, job, started)


def _record_started(ctx: DrContext, job: Job, started: StartedOperation) -> None:
    now = now_utc()
    if started.location is None:
        _succeed(ctx, job, now, started.resource)
        return
    job.transition(JobState.RUNNING, now)
    job.operation_url = started.location
    job.started_at = iso(now)
    job.poll_seq = 1
    delay = _delay(ctx, started.retry_after)
    job.next_action_at = iso(now + timedelta(seconds=delay))
    if not _save(ctx, job):
        return
    log_transition(job)
    send_messages(ctx.clients.work_queue(), [(WorkMessage("poll", job=job.job_id, seq=1), delay)])


def _start_refused(ctx: DrContext, job: Job, error: ArmError, *, uncertain: bool = False) -> None:
    now = now_utc()
    status = error.status or 0
    if not uncertain and status >= 500:
        uncertain = True  # a 5xx after the SDK's retries: the operation may have started
    if uncertain or error.retryable:
        # 409 ServiceLocked / 429: ARM refused, nothing started -> Planned, try again later.
        # 5xx / no answer: unknown -> stay Starting, the recovery path checks the instance.
        delay = _delay(ctx, 30 if error.code == "ServiceLocked" else 15)
        if not uncertain:
            job.transition(JobState.PLANNED, now)
        job.start_uncertain = uncertain
        job.wait_reason = error.code
        job.next_action_at = iso(now + timedelta(seconds=delay))
        if _save(ctx, job):
            log_transition(job)
            send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=job.job_id), delay)])
        return
    _fail(ctx, job, now, error)


def _recover_starting(ctx: DrContext, job: Job, now: datetime) -> None:
    """A job left ``Starting``: its worker died or the POST's outcome is unknown."""
    starting_at = from_iso(job.starting_at) or now
    lease_end = starting_at + timedelta(seconds=ctx.settings.start_lease_seconds)
    if not job.start_uncertain and now < lease_end:
        # Its worker may still be alive and about to record the Location: check back later.
        delay = _delay(ctx, (lease_end - now).total_seconds() + 1)
        send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=job.job_id), delay)])
        return
    rid = job.resource_id
    try:
        info = ctx.operations.get_service(rid)
    except ArmCallError as e:
        if e.error.retryable:
            _wait(ctx, job, now, e.error.code, 30)
            return
        _fail(ctx, job, now, e.error)
        return
    if info.provisioning_state.lower() in _BUSY_STATES:
        # Most likely our own operation, still running: never POST into it.
        _wait(ctx, job, now, "InstanceBusy", 30)
        return
    if job.kind is JobKind.BACKUP and _blob_exists(ctx, job):
        logger.info("job %s: backup blob found after a lost start; adopting it", job.job_id)
        job.started_at = job.starting_at
        _succeed(ctx, job, now, None, service=info)
        return
    if job.kind is JobKind.RESTORE:
        # A restore leaves no artefact to check; re-sending it could overwrite changes made since.
        _fail(ctx, job, now, ArmError(
            "RestoreOutcomeUnknown",
            "The worker stopped after sending the restore and the instance is idle again; apim-dr cannot tell "
            "whether the restore ran. Check the target's configuration before starting a new restore."))
        return
    # Idle and nothing written: no backup ran. Send the POST again (a new attempt).
    job.starting_at = iso(now)
    job.start_attempts += 1
    job.start_uncertain = False
    job.wait_reason = None
    job.updated_at = iso(now) or job.updated_at
    if not _save(ctx, job):
        return
    log_transition(job)
    _send_start(ctx, job)


def _wait(ctx: DrContext, job: Job, now: datetime, reason: str, seconds: float) -> None:
    delay = _delay(ctx, seconds)
    job.wait_reason = reason
    job.next_action_at = iso(now + timedelta(seconds=delay))
    job.updated_at = iso(now) or job.updated_at
    if _save(ctx, job):
        send_messages(ctx.clients.work_queue(), [(WorkMessage("start", job=job.job_id), delay)])


def _poll(ctx: DrContext, job: Job, now: datetime) -> None:
    assert job.operation_url
    result: PollResult = ctx.operations.poll_once(job.resource_id, job.operation_url)
    job.polls += 1
    if result.status in ("running", "retry"):
        delay = _delay(ctx, result.retry_after)
        job.poll_seq += 1
        job.wait_reason = result.error.code if result.error else None
        job.next_action_at = iso(now + timedelta(seconds=delay))
        job.updated_at = iso(now) or job.updated_at
        if _save(ctx, job):
            send_messages(ctx.clients.work_queue(), [(WorkMessage("poll", job=job.job_id, seq=job.poll_seq), delay)])
        return
    if result.status == "succeeded":
        _succeed(ctx, job, now, result.resource)
        return
    _fail(ctx, job, now, result.error or ArmError("Unknown", "the operation failed without an error body"))


def _succeed(ctx: DrContext, job: Job, now: datetime, resource: dict[str, Any] | None, *, service: Any = None) -> None:
    if resource:
        sku = resource.get("sku") or {}
        job.sku, job.sku_capacity = sku.get("name"), sku.get("capacity")
        job.region = resource.get("location")
    elif service is not None:
        job.sku, job.sku_capacity, job.region = service.sku, service.sku_capacity, service.location
    elif job.kind is JobKind.BACKUP:
        info = ctx.operations.get_service(job.resource_id)
        job.sku, job.sku_capacity, job.region = info.sku, info.sku_capacity, info.location
    if job.kind is JobKind.BACKUP:
        try:
            job.blob_size = _tag_backup_blob(ctx, job)
        except _BlobMissingError:
            _fail(ctx, job, now, ArmError(
                "BackupBlobMissing",
                f"ARM reported success but {job.container}/{job.blob_name} is not in {job.storage_account}"))
            return
    job.transition(JobState.SUCCEEDED, now)
    job.wait_reason = None
    if job.started_at is None:
        job.started_at = job.starting_at
    if _save(ctx, job):
        log_transition(job)
        _ended(ctx, job)


class _BlobMissingError(Exception):
    pass


def _blob_exists(ctx: DrContext, job: Job) -> bool:
    blob = ctx.clients.backup_blobs().get_blob_client(job.container, job.blob_name)
    return bool(blob.exists())


def _tag_backup_blob(ctx: DrContext, job: Job) -> int:
    """Metadata and index tags on the new backup blob; returns its size. Idempotent."""
    from azure.core.exceptions import ResourceNotFoundError

    blob = ctx.clients.backup_blobs().get_blob_client(job.container, job.blob_name)
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError as e:
        raise _BlobMissingError from e
    created = props.creation_time or now_utc()
    blob.set_blob_metadata(backup_metadata(
        source_resource_id=job.instance, sku=job.sku or "", sku_capacity=job.sku_capacity,
        location=job.region or "", job_id=job.job_id, api_version=API_VERSION, created=created,
    ))
    blob.set_blob_tags(backup_tags(service_name=job.service_name, sku=job.sku or "", created=created,
                                   job_id=job.job_id, size=int(props.size or 0), location=job.region or ""))
    return int(props.size or 0)


def _fail(ctx: DrContext, job: Job, now: datetime, error: ArmError) -> None:
    job.transition(JobState.FAILED, now)
    job.error_code, job.error_message, job.remediation = error.code, error.message, error.remediation
    job.wait_reason = None
    if _save(ctx, job):
        log_transition(job)
        _ended(ctx, job)
        _announce_if_needed(ctx, job)


def _time_out(ctx: DrContext, job: Job, now: datetime) -> None:
    minutes = (ctx.settings.backup_timeout_minutes if job.kind is JobKind.BACKUP
               else ctx.settings.restore_timeout_minutes)
    was = job.state.value
    job.transition(JobState.TIMED_OUT, now)
    job.error_code = "TimedOut"
    job.error_message = (f"The {job.kind.value} did not finish within {minutes} minutes "
                         f"(it was {was} after {job.polls} polls).")
    job.remediation = ArmError("TimedOut", job.error_message).remediation
    if _save(ctx, job):
        log_transition(job)
        _ended(ctx, job)
        _announce_if_needed(ctx, job)


def _ended(ctx: DrContext, job: Job) -> None:
    if job.kind is JobKind.RESTORE:
        from .restore import release_restore_lock

        release_restore_lock(ctx, job)


def _announce_if_needed(ctx: DrContext, job: Job) -> None:
    """Announce a failure exactly once: the flag is set only after the notifier succeeded.

    If the notifier raises, the exception fails the invocation; the host redelivers the
    message, which comes back here and tries again.
    """
    if job.state not in (JobState.FAILED, JobState.TIMED_OUT) or job.announced:
        return
    ctx.notifier.announce(job)
    job.announced = True
    _save(ctx, job)
