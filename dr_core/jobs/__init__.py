"""The life of a job: the :class:`Job` record and its state machine, IDs, work messages, and the worker that runs them.

A job is one backup or restore (more kinds to come); its row says where it stands, a queue message only
says "work on job X". Everything that creates, moves, logs or resumes a job lives here.
"""

from .job import Job, JobKind, JobState

__all__ = ["Job", "JobKind", "JobState"]
