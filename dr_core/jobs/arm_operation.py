"""The ARM backup and restore operations as job steps: start (one POST), then one poll per invocation.

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
5. A poll answered with an error that means "ask again" (429, 5xx, ``409 ServiceLocked``: the error
   table's "not now" and transient kinds) is asked again: such an answer is about the GET, not the
   operation. After a few in a row (or a ``404``: ARM no longer knows the operation), the instance is
   read: busy means the operation runs (poll on); idle with the backup blob written means it
   succeeded (adopt it); idle without it means it ended without a backup (failed). A job's end
   agrees with the operation's.
6. An operation that failed for a transient reason (the same table) gives a backup a new attempt,
   after a backoff, within its deadline and its ``maxAttempts``: a new POST, a new blob name. A
   permanent failure ends the job at once. Restores are never repeated (see ``docs/architecture.md``).
7. A backup job that ended without knowing how its operation ended (its deadline passed, or ARM
   refused the polls themselves) is re-checked by :meth:`ArmOperation.settle_late` when the watchdog
   sends it a message: an operation found finished is adopted after all (``Failed``/``TimedOut`` ->
   ``Succeeded``), its blob labelled, so no finished backup stays invisible to the catalog.

:class:`ArmOperation` is the worker's handler of backup and restore jobs
(:class:`~dr_core.jobs.worker.JobHandler`); every step is written down through the worker's
:class:`~dr_core.jobs.worker.Journal`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dr_core.catalog.tags import backup_metadata, backup_tags
from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, DrError, NoAnswerError
from dr_core.kernel.phases import JobState
from dr_core.kernel.wire import JsonObject
from dr_core.ports import ARM_API_VERSION, BackupTarget, ServiceInfo, StartedOperation

from .ids import JobKind
from .job import Job, ServiceFacts, Step

if TYPE_CHECKING:
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings
    from dr_core.ports import ApimManagement, BackupStore

    from .messages import WorkMessage
    from .worker import Journal

__all__ = ["ArmOperation"]

logger = logging.getLogger(__name__)

_BUSY_STATES = frozenset({"updating", "activating", "creating", "terminating", "deleting"})
_MIN_DELAY = 1
_LOCKED_DELAY = 30  # ServiceLocked: another operation runs; check back in half a minute
_REFUSED_DELAY = 15  # 429 and other "not now" answers
_BUSY_DELAY = 30
# Polls in a row answered "ask again" before the instance is read to see whether the operation has ended.
_POLL_ERRORS_BEFORE_CHECK = 3
# Statuses of a poll's answer that are about the call (who may read the operation), not the operation itself.
_CALL_REFUSED = (401, 403)
_NO_BACKUP_IN_TIER = "MethodNotAllowedInPricingTier"  # a tier without backup (Consumption, v2)


class ArmOperation:
    """Backup and restore jobs: one ARM long-running operation each, started once and polled to its end."""

    kinds = (JobKind.BACKUP, JobKind.RESTORE)

    def __init__(self, *, settings: Settings, arm: ApimManagement, backups: BackupStore, journal: Journal,
                 clock: Clock) -> None:
        self._settings = settings
        self._arm = arm
        self._backups = backups
        self._journal = journal
        self._clock = clock

    def step(self, job: Job, message: WorkMessage, now: datetime) -> None:
        """One step of a job that has not ended and is within its deadline."""
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
        elif error.code == _NO_BACKUP_IN_TIER and job.tier_may_lack_backup:
            self._finish(job, job.not_applicable(
                now, code="TierHasNoNativeBackup",
                message=f"{job.service_name}'s tier has no native backup ({error.message[:300]}); its configuration "
                        "snapshots protect it (recovery: auto)",
                remediation="Nothing to do. To stop trying native backups of this instance, set its recovery "
                            "to 'snapshot' in APIM_DR_INSTANCES."))
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
            self._journal.resume(job, delay)
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
        if job.kind is JobKind.BACKUP and self._backups.facts(job.container, job.blob_name) is not None:
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
        if result.status == "running":
            job.count_poll()
            self._commit(job, job.poll_again(now, delay=self._delay(result.retry_after)))
        elif result.status == "retry":
            # An answer about the GET, not the operation (throttled, ARM or a gateway failing, ServiceLocked).
            errors = job.count_poll(error=True)
            error = result.error or ArmError("NoResponse", "the poll got no answer")
            if errors % _POLL_ERRORS_BEFORE_CHECK == 0:
                self._check_operation_end(job, now, error, retry_after=result.retry_after)
            else:
                self._commit(job, job.poll_again(now, delay=self._delay(result.retry_after), reason=error.code))
        elif result.status == "succeeded":
            job.count_poll()
            self._succeed(job, now, _facts_from_resource(result.resource))
        else:
            job.count_poll()
            error = result.error or ArmError("Unknown", "the operation failed without an error body")
            if error.status == 404:
                # ARM no longer knows the operation: what the instance and the blob say decides.
                self._check_operation_end(job, now, error, retry_after=_REFUSED_DELAY)
            elif error.status in _CALL_REFUSED:
                # Not allowed to read the operation: the job ends, the operation may not have; re-checked later.
                self._finish(job, job.fail(now, error, settled=False))
            else:
                self._operation_failed(job, now, error)

    def _check_operation_end(self, job: Job, now: datetime, error: ArmError, *, retry_after: float) -> None:
        """The polls keep failing: read the instance. Busy: poll on. Idle: the operation has ended; for a backup,
        its blob says how (written: succeeded; not written: failed). A restore leaves no such evidence."""
        try:
            info = self._arm.get_service(job.resource_id)
        except DrError as e:
            logger.info("job %s: polls fail (%s) and the instance cannot be read (%s); polling on", job.job_id,
                        error.code, e.error_code)
            self._commit(job, job.poll_again(now, delay=self._delay(retry_after), reason=error.code))
            return
        if info.provisioning_state.lower() in _BUSY_STATES:
            self._commit(job, job.poll_again(now, delay=self._delay(retry_after), reason=error.code))
            return
        if job.kind is JobKind.BACKUP:
            if self._backups.facts(job.container, job.blob_name) is not None:
                logger.warning("job %s: polls answered %s, the instance is idle and the backup blob is written; "
                               "the operation succeeded", job.job_id, error.code)
                self._succeed(job, now, _facts_from_service(info))
                return
            self._operation_failed(job, now, ArmError(
                error.code, f"{error.message} (polls kept failing; the instance is idle again and no backup blob was "
                f"written, so the operation ended without a backup)", error.status, error.retry_after))
            return
        self._finish(job, job.fail(now, ArmError(
            "RestoreOutcomeUnknown",
            f"The restore's polls kept failing ({error.code}: {error.message}) and the instance is idle again; "
            "apim-dr cannot tell whether the restore ran.")))

    def _operation_failed(self, job: Job, now: datetime, error: ArmError) -> None:
        """The operation ended failed: a new attempt if the error is transient and the job may, else the job fails."""
        delay = job.attempt_backoff(self._settings.attempt_backoff_seconds)
        if job.may_try_again(error, now, delay=delay):
            logger.warning("job %s: attempt %d of %d failed (%s); attempt %d in %d s", job.job_id, job.attempt,
                           job.max_attempts, error.code, job.attempt + 1, delay)
            self._commit(job, job.try_again(now, error, delay=delay))
            return
        self._finish(job, job.fail(now, error))

    # -- at the deadline, and after the end ----------------------------------------------------------
    def last_look(self, job: Job, now: datetime) -> bool:
        """At the deadline, one last poll of a running operation: True if it had succeeded (the job is ended)."""
        if job.state is not JobState.RUNNING or not job.operation_url:
            return False
        try:
            result = self._arm.poll_once(job.resource_id, job.operation_url)
        except DrError:
            return False
        if result.status != "succeeded":
            return False
        job.count_poll()
        self._succeed(job, now, _facts_from_resource(result.resource))
        return True

    def settle_late(self, job: Job, now: datetime) -> None:
        """A backup job that ended while its operation was unsettled: has the operation ended since, and how?

        Succeeded (or, without a ``Location``, the instance idle and the blob written): the backup is
        labelled and the job adopts it (``Succeeded``; its follow-ups run). Failed, or idle without a
        blob: the attempt is settled as failed. Still running, or unknowable now: the next message asks again.
        """
        attempt = job.current_attempt
        assert attempt is not None
        try:
            if attempt.operation_url:
                result = self._arm.poll_once(job.resource_id, attempt.operation_url)
                if result.status == "succeeded":
                    self._adopt_late(job, now, _facts_from_resource(result.resource))
                    return
                if result.status != "failed":
                    return  # still running, or the poll itself failed: ask again next time
                error = result.error
                if error is not None and error.status not in (404, *_CALL_REFUSED):
                    self._commit(job, job.settle_attempt(now, error=error))
                    return
                # ARM forgot the operation, or refuses to show it: the instance and the blob decide.
            info = self._arm.get_service(job.resource_id)
            if info.provisioning_state.lower() in _BUSY_STATES:
                return
            if self._backups.facts(job.container, job.blob_name) is not None:
                self._adopt_late(job, now, _facts_from_service(info))
            else:
                self._commit(job, job.settle_attempt(now, error=ArmError(
                    "NoBackupWritten", "the operation has ended and wrote no backup blob")))
        except DrError as e:
            logger.info("job %s: its operation could not be checked now (%s); the watchdog asks again", job.job_id,
                        e.error_code)

    def _adopt_late(self, job: Job, now: datetime, facts: ServiceFacts | None) -> None:
        if facts is None:
            facts = _facts_from_service(self._arm.get_service(job.resource_id))
        blob_size = self._label_backup(job, facts)
        if blob_size is None:
            self._commit(job, job.settle_attempt(now, error=ArmError(
                "BackupBlobMissing", f"ARM reported success but {job.container}/{job.blob_name} is not written")))
            return
        logger.warning("job %s ended %s, but its backup finished after all: %s/%s labelled and adopted", job.job_id,
                       job.state.value, job.container, job.blob_name)
        self._finish(job, job.adopt_late(now, facts=facts, blob_size=blob_size))

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
                location=facts.region or "", job_id=job.job_id, api_version=ARM_API_VERSION, created=created),
            tags=backup_tags(service_name=job.service_name, sku=facts.sku or "", created=created, job_id=job.job_id,
                             size=blob.size, location=facts.region or ""),
        )
        return blob.size

    # -- writing it down ---------------------------------------------------------------------------
    def _commit(self, job: Job, step: Step) -> bool:
        return self._journal.commit(job, step)

    def _finish(self, job: Job, step: Step) -> None:
        self._journal.finish(job, step)

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


def _facts_from_resource(resource: JsonObject | None) -> ServiceFacts | None:
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
