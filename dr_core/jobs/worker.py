"""The queue worker: move one job one step per invocation, never waiting on ARM.

The worker is the state machine's runner. It reads the job a message names, settles what every
job has in common (an ended job is only announced, a job past its deadline becomes ``TimedOut``)
and hands the step itself to the handler of the job's kind (:class:`JobHandler`; backups and
restores: :class:`~dr_core.jobs.arm_operation.ArmOperation`).

Every step is written down through the :class:`Journal`: save the row (conditionally), log the
transition, then send the message that resumes the job (:meth:`WorkMessage.resume
<dr_core.jobs.messages.WorkMessage.resume>`). A message whose send was lost (crash after the save)
is picked up by the watchdog (:mod:`dr_core.jobs.watchdog`). A job's end also frees what it held
(a restore's lock), announces a failure (at least once, with a stable event ID), and runs the
followers. Which followers are still to run is saved with the terminal state (``Job.follow_ups``)
and cleared once they ran, so a message for an ended job (a redelivery, or the watchdog's) finishes
what a crash interrupted; followers are idempotent.
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

__all__ = ["MAX_FOLLOW_UP_RUNS", "JobFollower", "JobHandler", "Journal", "Worker", "follower_name"]

logger = logging.getLogger(__name__)

# A follower that raised is run again (by a redelivery or the watchdog) this many times in all, then given up.
MAX_FOLLOW_UP_RUNS = 5
_SAVE_ATTEMPTS = 3


def follower_name(follower: JobFollower) -> str:
    """The name a job's ``follow_ups`` records a follower by: its ``follow_up_name``, else its class name."""
    return str(getattr(follower, "follow_up_name", None) or type(follower).__name__)


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

    # Optional, looked up with getattr (a handler without them ends at its deadline, and is never re-checked):
    # ``last_look(job, now) -> bool``: at the deadline, one last look at the operation; True if it ended the job.
    # ``settle_late(job, now) -> None``: an ended job whose operation was not settled (``Job.unsettled``).


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
        """Commit a terminal step with the follow-ups it needs, free what the job held, announce it if a person
        must know, then run the followers."""
        job.await_follow_ups([follower_name(f) for f in self._followers])
        if not self.commit(job, step):
            return
        self._lock.release(job)
        self.announce_if_needed(job)
        self.run_follow_ups(job)

    def run_follow_ups(self, job: Job) -> None:
        """Run the followers ``job`` still waits for, then clear those that ran (one conditional save).

        A follower that raises stays pending: the next message for the job (a redelivery, the watchdog's)
        runs it again, up to :data:`MAX_FOLLOW_UP_RUNS` runs in all. A name this version does not know
        (a follower renamed or removed) is cleared.
        """
        if not job.follow_ups:
            return
        by_name = {follower_name(f): f for f in self._followers}
        done: set[str] = set()
        failed: set[str] = set()
        for name in list(job.follow_ups):
            follower = by_name.get(name)
            if follower is None:
                logger.warning("job %s: follow-up %s is unknown to this version; cleared", job.job_id, name)
                done.add(name)
                continue
            try:
                follower.after(job)
            except Exception:
                logger.exception("follow-up %s of job %s failed; the job itself has ended", name, job.job_id)
                failed.add(name)
                continue
            done.add(name)
        give_up = failed if job.follow_up_runs + 1 >= MAX_FOLLOW_UP_RUNS else set()
        if give_up:
            logger.error("job %s: follow-ups %s failed %d times; given up (their hourly catch-ups remain)",
                         job.job_id, ", ".join(sorted(give_up)), MAX_FOLLOW_UP_RUNS)
        self._clear_follow_ups(job, done, give_up)

    def _clear_follow_ups(self, job: Job, done: set[str], give_up: set[str]) -> None:
        current: Job | None = job
        for _ in range(_SAVE_ATTEMPTS):
            if current is None:
                return
            current.follow_ups_done(done, give_up=give_up)
            try:
                self._jobs.update(current)
                return
            except JobConflictError:
                current = self._jobs.get(job.job_id)  # another worker saved it meanwhile: clear on its copy
        logger.warning("job %s: its follow-ups ran but could not be marked done; they may run again", job.job_id)

    def announce_if_needed(self, job: Job) -> None:
        """Announce a failure once: the flag is set only after the notifier succeeded.

        If the notifier raises, the exception fails the invocation; the host redelivers the
        message, which comes back here and tries again. Delivery is at least once: a host that
        dies after the webhook answered and before the flag is saved announces again, with the
        same event ID (``announcement_id``), so a receiver can drop the repeat.
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
        handler = self._handlers.get(job.kind)
        if job.state.terminal:
            # An ended job: announce it if still due, finish its follow-ups, re-check an unsettled operation.
            self._journal.announce_if_needed(job)
            self._journal.run_follow_ups(job)
            settle_late = getattr(handler, "settle_late", None)
            if job.unsettled and settle_late is not None:
                settle_late(job, now)
            return
        if job.past_deadline(now):
            last_look = getattr(handler, "last_look", None)
            if last_look is not None and last_look(job, now):
                return
            self._journal.finish(job, job.time_out(now, minutes=self._timeout_minutes[job.kind]))
            return
        self._handlers[job.kind].step(job, message, now)
