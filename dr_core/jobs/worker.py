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

Every step goes through :meth:`Worker._commit`: save the row (conditionally), log the
transition, then send the message the step asked for. A message whose send was lost (crash
after the save) is picked up by the watchdog (:meth:`dr_core.backup.planner.BackupPlanner.requeue_stalled`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from dr_core.azure.arm import API_VERSION, ArmCallError, BackupTarget, ServiceInfo, StartedOperation
from dr_core.azure.tables import JobConflictError
from dr_core.catalog.tags import backup_metadata, backup_tags
from dr_core.jobs.job import Job, JobKind, JobState, ServiceFacts, Step
from dr_core.jobs.messages import WorkMessage
from dr_core.jobs.notify import log_transition
from dr_core.kernel.errors import ArmError, AzureUnavailableError, NoAnswerError

if TYPE_CHECKING:
    from dr_core.azure.arm import ApimManagement
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.tables import JobStore
    from dr_core.jobs.messages import WorkQueue
    from dr_core.jobs.notify import Notifier
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings

__all__ = ["JobFollower", "Worker"]

logger = logging.getLogger(__name__)

_BUSY_STATES = frozenset({"updating", "activating", "creating", "terminating", "deleting"})
_MIN_DELAY = 1
_LOCKED_DELAY = 30  # ServiceLocked: another operation runs; check back in half a minute
_REFUSED_DELAY = 15  # 429 and other "not now" answers
_BUSY_DELAY = 30


class JobFollower(Protocol):
    """Work that follows a job's end (a standby sync after a backup, a drill's verification after its restore).

    Called once, by the worker that committed the terminal state, after the job's own wrap-up.
    It must be idempotent and never raise for the job's sake: the job has ended either way.
    """

    def after(self, job: Job) -> None: ...

    def announces(self, job: Job) -> bool:
        """True if this follower tells people about ``job``'s failure itself, with more context than the
        worker has (a drill's restore), so the worker does not announce it a second time."""
        ...


class Worker:
    """One step of one job per message."""

    def __init__(self, *, settings: Settings, store: JobStore, queue: WorkQueue, arm: ApimManagement,
                 backups: BackupStore, notifier: Notifier, clock: Clock,
                 followers: Sequence[JobFollower] = ()) -> None:
        self._followers = tuple(followers)
        self._settings = settings
        self._store = store
        self._queue = queue
        self._arm = arm
        self._backups = backups
        self._notifier = notifier
        self._clock = clock

    def handle(self, text: str) -> None:
        """Entry point of the queue trigger.

        :raises InvalidMessageError: for a message apim-dr did not write (the host retries it,
            then moves it to the poison queue, so nothing is silently dropped).
        """
        message = WorkMessage.decode(text)
        if message.op == "fanout":
            self._queue.send([(WorkMessage("start", job=j), 0) for j in message.jobs])
            return
        self.process(message)

    def process(self, message: WorkMessage) -> None:
        job = self._store.get(message.job)
        if job is None:
            logger.warning("message for unknown job %s dropped (row missing)", message.job)
            return
        now = self._clock.now()
        if job.state.terminal:
            self._announce_if_needed(job)
            return
        if job.past_deadline(now):
            minutes = (self._settings.backup_timeout_minutes if job.kind is JobKind.BACKUP
                       else self._settings.restore_timeout_minutes)
            self._finish(job, job.time_out(now, minutes=minutes))
            return
        if message.op == "poll":
            if job.state is not JobState.RUNNING or message.seq != job.poll_seq:
                logger.info("stale poll message for %s (seq %s, job at %s/%s) dropped",
                            job.job_id, message.seq, job.state.value, job.poll_seq)
                return
            self._poll(job, now)
        elif job.state is JobState.PLANNED:
            if self._commit(job, job.begin_start(now)):
                self._send_start(job)
        elif job.state is JobState.STARTING:
            self._recover_starting(job, now)
        else:
            logger.info("start message for %s, already %s: nothing to do", job.job_id, job.state.value)

    # -- the steps ---------------------------------------------------------------------------------
    def _send_start(self, job: Job) -> None:
        """The ARM POST, then record what ARM said. The job is ``Starting`` and owned by us."""
        target = self._target(job)
        now = self._clock.now
        try:
            if job.kind is JobKind.BACKUP:
                started = self._arm.begin_backup(job.resource_id, target)
            else:
                started = self._arm.begin_restore(job.resource_id, target)
        except ArmCallError as e:
            self._start_refused(job, e.error)
            return
        except NoAnswerError as e:
            # Sent, no answer: ARM may have accepted it. The recovery path finds out; never POST blindly.
            logger.warning("start of %s got no answer; checking the instance before anything else", job.job_id)
            self._commit(job, job.await_start_outcome(now(), reason=e.error_code, delay=self._delay(_REFUSED_DELAY),
                                                      unanswered=True))
            return
        except AzureUnavailableError as e:
            # Never sent (no connection, no token): nothing started; try again later.
            logger.warning("start of %s not sent: %s", job.job_id, e.message)
            self._commit(job, job.retry_start_later(now(), reason=e.error_code,
                                                    delay=self._delay(e.retry_after or _REFUSED_DELAY)))
            return
        except Exception as e:
            # Anything else: ARM may or may not have accepted the POST.
            logger.warning("start of %s ended without an answer (%s); checking the instance later", job.job_id,
                           type(e).__name__)
            self._commit(job, job.await_start_outcome(now(), reason="NoResponse", delay=self._delay(_REFUSED_DELAY),
                                                      unanswered=True))
            return
        self._record_started(job, started)

    def _record_started(self, job: Job, started: StartedOperation) -> None:
        now = self._clock.now()
        if started.location is None:
            self._succeed(job, now, _facts_from_resource(started.resource))
            return
        self._commit(job, job.record_started(now, location=started.location, delay=self._delay(started.retry_after)))

    def _start_refused(self, job: Job, error: ArmError) -> None:
        now = self._clock.now()
        status = error.status or 0
        maybe_ours = error.code == "ServiceLocked" and job.unanswered_posts > 0
        if status >= 500 or maybe_ours:
            # A 5xx: the operation may have started. A 409 after an earlier POST of this job went
            # unanswered: the operation that locks the instance may be ours. The recovery path checks.
            self._commit(job, job.await_start_outcome(now, reason=error.code, unanswered=status >= 500,
                                                      delay=self._delay(error.retry_after or _REFUSED_DELAY)))
        elif error.retryable:
            # 409 ServiceLocked / 429: ARM refused, nothing started -> Planned, try again when ARM said.
            default = _LOCKED_DELAY if error.code == "ServiceLocked" else _REFUSED_DELAY
            self._commit(job, job.retry_start_later(now, reason=error.code,
                                                    delay=self._delay(error.retry_after or default)))
        else:
            self._finish(job, job.fail(now, error))

    def _recover_starting(self, job: Job, now: datetime) -> None:
        """A job left ``Starting``: its worker died or the POST's outcome is unknown."""
        lease_end = job.start_lease_end(timedelta(seconds=self._settings.start_lease_seconds))
        if not job.start_uncertain and now < lease_end:
            # Its worker may still be alive and about to record the Location: check back later.
            delay = self._delay((lease_end - now).total_seconds() + 1)
            self._queue.send([(WorkMessage("start", job=job.job_id), delay)])
            return
        try:
            info = self._arm.get_service(job.resource_id)
        except ArmCallError as e:
            if e.error.retryable:
                self._commit(job, job.await_start_outcome(
                    now, reason=e.error.code, delay=self._delay(e.error.retry_after or _BUSY_DELAY)))
            else:
                self._finish(job, job.fail(now, e.error))
            return
        except AzureUnavailableError as e:
            self._commit(job, job.await_start_outcome(now, reason=e.error_code, delay=self._delay(_BUSY_DELAY)))
            return
        if info.provisioning_state.lower() in _BUSY_STATES:
            # Most likely our own operation, still running: never POST into it.
            self._commit(job, job.await_start_outcome(now, reason="InstanceBusy", delay=self._delay(_BUSY_DELAY)))
            return
        if job.kind is JobKind.BACKUP and self._backups.exists(job.container, job.blob_name):
            logger.info("job %s: backup blob found after a lost start; adopting it", job.job_id)
            self._succeed(job, now, _facts_from_service(info))
            return
        if job.kind is JobKind.RESTORE:
            # A restore leaves no artefact to check; re-sending it could overwrite changes made since.
            self._finish(job, job.fail(now, ArmError(
                "RestoreOutcomeUnknown",
                "The worker stopped after sending the restore and the instance is idle again; apim-dr cannot tell "
                "whether the restore ran. Check the target's configuration before starting a new restore.")))
            return
        # Idle and nothing written: no backup ran. Send the POST again (a new attempt).
        if self._commit(job, job.begin_start(now)):
            self._send_start(job)

    def _poll(self, job: Job, now: datetime) -> None:
        assert job.operation_url
        result = self._arm.poll_once(job.resource_id, job.operation_url)
        job.count_poll()
        if result.status in ("running", "retry"):
            reason = result.error.code if result.error else None
            self._commit(job, job.poll_again(now, delay=self._delay(result.retry_after), reason=reason))
        elif result.status == "succeeded":
            self._succeed(job, now, _facts_from_resource(result.resource))
        else:
            self._finish(job, job.fail(now, result.error or ArmError(
                "Unknown", "the operation failed without an error body")))

    def _succeed(self, job: Job, now: datetime, facts: ServiceFacts | None) -> None:
        blob_size = None
        if job.kind is JobKind.BACKUP:
            if facts is None:
                facts = _facts_from_service(self._arm.get_service(job.resource_id))
            blob_size = self._label_backup(job, facts)
            if blob_size is None:
                self._finish(job, job.fail(now, ArmError(
                    "BackupBlobMissing",
                    f"ARM reported success but {job.container}/{job.blob_name} is not in {job.storage_account}")))
                return
        self._finish(job, job.succeed(now, facts=facts, blob_size=blob_size))

    def _label_backup(self, job: Job, facts: ServiceFacts) -> int | None:
        """Metadata and index tags on the new backup blob; its size, or None if it is missing. Idempotent.

        The backup's time is when ARM accepted it (or, for an adopted or synchronous one, when
        its start was sent), on the app's clock: APIM takes the snapshot after that, so ages and
        the 30-day expiry are never understated, and "now" and "created" come from one clock.
        The blob's own creation time (storage's clock) is the fallback.
        """
        blob = self._backups.facts(job.container, job.blob_name)
        if blob is None:
            return None
        created = job.started_at or job.starting_at or blob.created or self._clock.now()
        self._backups.label(
            job.container, job.blob_name,
            metadata=backup_metadata(
                source_resource_id=job.instance, sku=facts.sku or "", sku_capacity=facts.sku_capacity,
                location=facts.region or "", job_id=job.job_id, api_version=API_VERSION, created=created),
            tags=backup_tags(service_name=job.service_name, sku=facts.sku or "", created=created, job_id=job.job_id,
                             size=blob.size, location=facts.region or ""),
        )
        return blob.size

    # -- saving ------------------------------------------------------------------------------------
    def _commit(self, job: Job, step: Step) -> bool:
        """Save the step (conditionally), log it, send the message it needs. False if another worker was first."""
        try:
            self._store.update(job)
        except JobConflictError:
            logger.info("job %s was changed by another worker; this message stops here", job.job_id)
            return False
        if step.transition:
            log_transition(job, now=self._clock.now())
        if step.next_op == "poll":
            self._queue.send([(WorkMessage("poll", job=job.job_id, seq=job.poll_seq), step.delay)])
        elif step.next_op == "start":
            self._queue.send([(WorkMessage("start", job=job.job_id), step.delay)])
        return True

    def _finish(self, job: Job, step: Step) -> None:
        """Commit a terminal step, free what the job held, announce it if a person must know, then its followers."""
        if not self._commit(job, step):
            return
        if job.kind is JobKind.RESTORE:
            self._store.release_restore_lock(job)
        self._announce_if_needed(job)
        for follower in self._followers:
            try:
                follower.after(job)
            except Exception:
                logger.exception("follow-up of job %s failed; the job itself has ended", job.job_id)

    def _announce_if_needed(self, job: Job) -> None:
        """Announce a failure exactly once: the flag is set only after the notifier succeeded.

        If the notifier raises, the exception fails the invocation; the host redelivers the
        message, which comes back here and tries again.
        """
        if not job.state.announced_on_end or job.announced:
            return
        owner = next((f for f in self._followers if f.announces(job)), None)
        if owner is not None:
            logger.info("job %s %s: announced by %s, not as a job", job.job_id, job.state.value, type(owner).__name__)
            return
        self._notifier.announce(job)
        self._commit(job, job.mark_announced())

    # -- helpers -----------------------------------------------------------------------------------
    def _delay(self, seconds: float) -> int:
        return int(min(max(seconds, _MIN_DELAY), self._settings.max_poll_delay_seconds))

    def _target(self, job: Job) -> BackupTarget:
        key = self._settings.backup_storage_key
        return BackupTarget(
            storage_account=job.storage_account,
            container=job.container,
            blob_name=job.blob_name,
            access_type=job.access_type,
            client_id=job.client_id,
            access_key=key.reveal() if key is not None and job.access_type == "AccessKey" else None,
        )


def _facts_from_resource(resource: dict[str, object] | None) -> ServiceFacts | None:
    if not resource:
        return None
    sku = resource.get("sku")
    sku = sku if isinstance(sku, dict) else {}
    capacity = sku.get("capacity")
    location = resource.get("location")
    return ServiceFacts(sku=str(sku["name"]) if sku.get("name") else None,
                        sku_capacity=capacity if isinstance(capacity, int) else None,
                        region=str(location) if location else None)


def _facts_from_service(info: ServiceInfo) -> ServiceFacts:
    return ServiceFacts(sku=info.sku, sku_capacity=info.sku_capacity, region=info.location)
