"""What a job tells people and machines: one ``APIMDR_JOB {json}`` line per transition, and its announcement.

``log_transition`` writes one line per state change. Application Insights keeps it as a trace;
the alert rules in ``infra/`` match on it.

A failed or timed-out job is announced once (the job row's ``announced`` flag guards it), never
once per poll, and only when it finally fails (a backup's earlier attempts are listed in it, not
announced). :func:`announcement` is the payload: a ``text`` field (Slack, Teams workflows and most
chat webhooks display it) plus an ``apimDr`` object with the details for machines, including
``eventId`` (:func:`announcement_id`): delivery is at least once (a host that dies after the webhook
answered and before the flag is saved sends it again), and every delivery of it carries that ID.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.events import event_id
from dr_core.kernel.phases import JobState
from dr_core.kernel.wire import JsonObject

if TYPE_CHECKING:
    from datetime import datetime

    from .job import Job

__all__ = ["LOG_PREFIX", "announcement", "announcement_id", "announcement_type", "log_transition"]

logger = logging.getLogger("apim_dr.jobs")

LOG_PREFIX = "APIMDR_JOB "


def log_transition(job: Job, *, now: datetime) -> None:
    """One structured line per job transition (job ID, instance, state, duration, error and what to do); no secrets.

    The alert rules and the workbook in ``infra/monitor`` read these fields; the error message and
    the remediation are the job's own (also in its row and the announcement).
    """
    record = {
        "jobId": job.job_id,
        "kind": job.kind.value,
        "instance": job.instance,
        "state": job.state.value,
        "durationSeconds": None if job.duration_seconds is None else round(job.duration_seconds, 1),
        "elapsedSeconds": round(job.elapsed_seconds(now), 1),
        "errorCode": job.error_code,
        "errorMessage": job.error_message,
        "remediation": job.remediation,
        "waitingFor": job.wait_reason,
    }
    level = logging.WARNING if job.state in (JobState.FAILED, JobState.TIMED_OUT, JobState.REFUSED) else logging.INFO
    logger.log(level, "%s%s", LOG_PREFIX, json.dumps(record, separators=(",", ":")))


def announcement_id(job: Job) -> str:
    """The same for every delivery of ``job``'s announcement (a job ends, and is announced, once)."""
    return event_id("job", job.job_id, job.state.value)


def announcement_type(job: Job) -> str:
    """The CloudEvents ``type`` of ``job``'s announcement, e.g. ``apim-dr.backup.failed``."""
    return f"apim-dr.{job.kind.value}.{job.state.value.lower()}"


def announcement(job: Job) -> JsonObject:
    title = f"apim-dr: {job.kind.value} of {job.service_name} {job.state.value}"
    lines = [title, f"Job: {job.job_id}", f"Instance: {job.instance}"]
    if job.error_code:
        lines.append(f"Error: ({job.error_code}) {job.error_message}")
    if len(job.attempts) > 1:
        lines.append(f"Attempts: {len(job.attempts)} of {job.max_attempts}")
        for attempt in job.attempts:
            error = f"({attempt.error_code}) {attempt.error_message}" if attempt.error_code else attempt.outcome.value
            lines.append(f"  {attempt.number}. {error}")
    if job.remediation:
        lines.append(f"What to do: {job.remediation}")
    return {
        "text": "\n".join(lines),
        "apimDr": {
            "eventId": announcement_id(job),
            "jobId": job.job_id,
            "kind": job.kind.value,
            "state": job.state.value,
            "instance": job.instance,
            "serviceName": job.service_name,
            "errorCode": job.error_code,
            "errorMessage": job.error_message,
            "remediation": job.remediation,
            "createdAt": iso_or_none(job.created_at),
            "finishedAt": iso_or_none(job.finished_at),
            "attempts": [attempt.public_view() for attempt in job.attempts],
        },
    }
