"""Every state apim-dr records, in one vocabulary.

Jobs, standby syncs and drills move through phases, as Velero's Backup and Restore do. Their
members share one set of names (``PLANNED``, ``STARTING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``,
``TIMED_OUT``, ``REFUSED``), whatever each writes on the wire: the values below are a contract
(job rows, records, the HTTP API, the status document, ``APIMDR_*`` log lines) and never change.

=================  ===================  =====================  ================
member             :class:`JobState`    :class:`SyncPhase`     :class:`DrillPhase`
=================  ===================  =====================  ================
``PLANNED``        ``Planned``          ``Planned``            --
``STARTING``       ``Starting``         --                     --
``RUNNING``        ``Running``          ``Running``            ``running``
``SUCCEEDED``      ``Succeeded``        ``Succeeded``          ``passed``
``FAILED``         ``Failed``           ``Failed``             ``failed``
``TIMED_OUT``      ``TimedOut``         --                     --
``REFUSED``        ``Refused``          ``Refused``            --
``NOT_STARTED``    --                   --                     ``not-started``
=================  ===================  =====================  ================

:class:`RpoState` is not a phase but a grade of an instance's protection (``ok`` ... ``breached``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DrillPhase", "JobState", "RpoState", "SyncPhase"]


class JobState(StrEnum):
    """Where a job stands: ``Planned -> Starting -> Running -> Succeeded | Failed | TimedOut`` (or ``Refused``)."""

    PLANNED = "Planned"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    REFUSED = "Refused"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED)

    @property
    def announced_on_end(self) -> bool:
        """States a person must hear about (once)."""
        return self in (JobState.FAILED, JobState.TIMED_OUT)


class SyncPhase(StrEnum):
    """Where a standby's last sync stands (the restore job's state, coarser)."""

    PLANNED = "Planned"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REFUSED = "Refused"

    @property
    def in_flight(self) -> bool:
        return self in (SyncPhase.PLANNED, SyncPhase.RUNNING)

    @classmethod
    def of(cls, state: JobState) -> SyncPhase:
        """The phase a sync is in while its restore job is in ``state``."""
        if state is JobState.SUCCEEDED:
            return cls.SUCCEEDED
        if state is JobState.REFUSED:
            return cls.REFUSED
        if state.terminal:
            return cls.FAILED
        return cls.RUNNING if state is JobState.RUNNING else cls.PLANNED


class DrillPhase(StrEnum):
    """Where a restore drill stands: its restore runs, then the verification passes or fails."""

    RUNNING = "running"
    SUCCEEDED = "passed"
    FAILED = "failed"
    NOT_STARTED = "not-started"  # log lines only: a due drill that could not start (never recorded)


class RpoState(StrEnum):
    """An instance's RPO grade: the age of its newest restorable backup against its target."""

    OK = "ok"
    AT_RISK = "at-risk"
    BREACHED = "breached"
    UNKNOWN = "unknown"
