"""The queue worker: move one job one step per invocation, never waiting on ARM.

The worker is the state machine's runner. It reads the job a message names, settles what every
job has in common (an ended job is only announced, a job past its deadline becomes ``TimedOut``)
and hands the step itself to the handler of the job's kind (:class:`JobHandler`; backups and
restores: :class:`~dr_core.jobs.arm_operation.ArmOperation`).

Every step is written down through the :class:`Journal`: save the row (conditionally), log the
transition, then send the message that resumes the job (:meth:`WorkMessage.resume
<dr_core.jobs.messages.WorkMessage.resume>`). A message whose send was lost (crash after the save)
is picked up by the watchdog (:mod:`dr_core.jobs.watchdog`). A job's end also frees what it held
(a restore's lock), announces a failure once, and runs the followers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dr_core.ports import JobConflictError

from .events import log_transition
from .messages import WorkMessage

if TYPE_CHECKING:
    from dr_core.kernel.clock import Clock
    from dr_core.ports import JobStore, Notifier, WorkQueue

    from .ids import JobKind
    from .job import Job, Step
    from .locks import RestoreLock

__all__ = ["JobFollower", "JobHandler", "Journal", "Worker"]

logger = logging.getLogger(__name__)


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


class JobHandler(Protocol):
    """How jobs of some kinds move: one step of a job that has not ended and is within its deadline."""

    def step(self, job: Job, message: WorkMessage, now: datetime) -> None:
        """Move ``job`` one step on, writing it down through the worker's :class:`Journal`."""
        ...


class Journal:
    """Where a step is written down: the job's row, its log line, the message that resumes it, its end."""

    def __init__(self, *, jobs: JobStore, queue: WorkQueue, lock: RestoreLock, notifier: Notifier, clock: Clock,
                 followers: Sequence[JobFollower] = ()) -> None:
        self._jobs = jobs
        self._queue = queue
        self._lock = lock
        self._notifier = notifier
        self._clock = clock
        self._followers = tuple(followers)

    def commit(self, job: Job, step: Step) -> bool:
        """Save the step (conditionally), log it, send the message it needs. False if another worker was first."""
        try:
            self._jobs.update(job)
        except JobConflictError:
            logger.info("job %s was changed by another worker; this message stops here", job.job_id)
            return False
        if step.transition:
            log_transition(job, now=self._clock.now())
        if step.resume_after is not None:
            self.resume(job, step.resume_after)
        return True

    def resume(self, job: Job, delay: int) -> None:
        """Send the message that moves ``job`` on from where it stands, visible after ``delay`` seconds."""
        self._queue.send([(WorkMessage.resume(job), delay)])

    def finish(self, job: Job, step: Step) -> None:
        """Commit a terminal step, free what the job held, announce it if a person must know, then its followers."""
        if not self.commit(job, step):
            return
        self._lock.release(job)
        self.announce_if_needed(job)
        for follower in self._followers:
            try:
                follower.after(job)
            except Exception:
                logger.exception("follow-up of job %s failed; the job itself has ended", job.job_id)

    def announce_if_needed(self, job: Job) -> None:
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
        self.commit(job, job.mark_announced())


class Worker:
    """One step of one job per message, by the handler of the job's kind."""

    def __init__(self, *, jobs: JobStore, queue: WorkQueue, journal: Journal, handlers: Mapping[JobKind, JobHandler],
                 timeout_minutes: Mapping[JobKind, int], clock: Clock) -> None:
        self._jobs = jobs
        self._queue = queue
        self._journal = journal
        self._handlers = dict(handlers)
        self._timeout_minutes = dict(timeout_minutes)
        self._clock = clock

    def handle(self, text: str) -> None:
        """Entry point of the queue triggers.

        :raises InvalidMessageError: for a message apim-dr did not write (the host retries it,
            then moves it to the poison queue, so nothing is silently dropped).
        """
        message = WorkMessage.decode(text)
        if message.op == "fanout":
            self._queue.send([(WorkMessage("start", job=j), 0) for j in message.jobs])
            return
        self.process(message)

    def process(self, message: WorkMessage) -> None:
        job = self._jobs.get(message.job)
        if job is None:
            logger.warning("message for unknown job %s dropped (row missing)", message.job)
            return
        now = self._clock.now()
        if job.state.terminal:
            self._journal.announce_if_needed(job)
            return
        if job.past_deadline(now):
            self._journal.finish(job, job.time_out(now, minutes=self._timeout_minutes[job.kind]))
            return
        self._handlers[job.kind].step(job, message, now)
