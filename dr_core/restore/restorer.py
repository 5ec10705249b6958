"""Incident restore: the preflight, then the job, started once.

One restore per target at a time: the job takes its target's lock (:mod:`dr_core.jobs.locks`)
when it is created and frees it when it ends. Standby sync and drills start their restores
here too, so every restore gets every preflight check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dr_core.jobs.job import Job, Trigger

from .preflight import Check, Outcome

if TYPE_CHECKING:
    from dr_core.jobs.launcher import JobLauncher
    from dr_core.jobs.locks import RestoreLock
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.settings import Settings

    from .preflight import Preflight, RestorePlan
    from .request import RestoreRequest

__all__ = ["Restorer"]


class Restorer:
    """Plans restores (every preflight check, nothing written) and starts them (job, lock, start message)."""

    def __init__(self, *, settings: Settings, preflight: Preflight, launcher: JobLauncher, lock: RestoreLock,
                 clock: Clock) -> None:
        self._settings = settings
        self._preflight = preflight
        self._launcher = launcher
        self._lock = lock
        self._clock = clock

    def plan(self, request: RestoreRequest) -> RestorePlan:
        """:meth:`Preflight.plan <dr_core.restore.preflight.Preflight.plan>`: every check, nothing written."""
        return self._preflight.plan(request)

    def start(self, request: RestoreRequest, *, trigger: Trigger = Trigger.HTTP) -> tuple[RestorePlan, Job | None]:
        """Preflight, then (unless dry run or refused) create the job, take the lock and enqueue the start.

        Returns the plan and the job: ``None`` for a dry run; a ``Refused`` job for a refusal (kept for audit).
        """
        now = self._clock.now().replace(microsecond=0)
        plan = self._preflight.plan(request, now=now)
        if request.dry_run:
            return plan, None
        job = Job.new_restore(target=plan.target, source=plan.source, backup=plan.backup,
                              storage_account=plan.storage_account, access_type=plan.access_type,
                              client_id=plan.client_id, timeout_minutes=self._settings.restore_timeout_minutes,
                              trigger=trigger, now=now)
        if plan.refused:
            failed = plan.failed_checks
            job.refuse(now, message="; ".join(f"{c.name}: {c.message}" for c in failed),
                       remediation=" ".join(c.remediation or "" for c in failed).strip())
            self._launcher.launch(job)  # kept for audit; a refused job is never started
            return plan, job
        if not self._lock.take(plan.target, job.job_id):
            holder = self._lock.holder(plan.target)
            plan.checks = [c for c in plan.checks if c.name != "no-restore-in-progress"]
            plan.checks.append(Check("no-restore-in-progress", Outcome.FAIL,
                                     f"restore {holder.job_id if holder else 'another job'} into the target started "
                                     "meanwhile", "Follow the running restore; start another when it ends.",
                                     status=409))
            return plan, None
        job, _ = self._launcher.launch(job)
        return plan, job
