"""Announcements of failed and timed-out jobs, and the structured log line of every transition.

``log_transition`` writes one line per state change: ``APIMDR_JOB {json}``. Application
Insights keeps it as a trace; the alert rules in ``infra/`` match on it.

Notifiers are called once per failure (the job row's ``announced`` flag guards it), never
once per poll. The first implementation posts JSON to a webhook; the payload carries a
``text`` field (Slack, Teams workflows and most chat webhooks display it) plus a
``apimDr`` object with the details for machines.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dr_core.jobs.job import JobState
from dr_core.kernel.clock import iso_or_none

if TYPE_CHECKING:
    from datetime import datetime

    from dr_core.jobs.job import Job

__all__ = ["Event", "LogNotifier", "Notifier", "WebhookNotifier", "announcement", "log_event", "log_transition"]

logger = logging.getLogger("apim_dr.jobs")
_event_logger = logging.getLogger("apim_dr.events")
_module_logger = logging.getLogger(__name__)

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


def log_event(prefix: str, data: dict[str, Any], *, warning: bool = False) -> None:
    """One structured line for a notable transition that is not a job's own: ``prefix`` then the JSON.

    ``prefix`` is the caller's literal (``"APIMDR_DRILL "``), so a scan of the code finds every line
    kind the app writes; ``data`` must hold no secret.
    """
    line = json.dumps(data, separators=(",", ":"), default=str)
    _event_logger.log(logging.WARNING if warning else logging.INFO, "%s%s", prefix, line)


def announcement(job: Job) -> dict[str, Any]:
    title = f"apim-dr: {job.kind.value} of {job.service_name} {job.state.value}"
    lines = [title, f"Job: {job.job_id}", f"Instance: {job.instance}"]
    if job.error_code:
        lines.append(f"Error: ({job.error_code}) {job.error_message}")
    if job.remediation:
        lines.append(f"What to do: {job.remediation}")
    return {
        "text": "\n".join(lines),
        "apimDr": {
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
        },
    }


@dataclass(frozen=True)
class Event:
    """Something other than a job that people must hear about (an RPO breach and its recovery, a failed drill).

    ``text`` is what a chat shows; ``details`` is for machines (no secrets).
    """

    kind: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    severe: bool = True

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "apimDr": {"event": self.kind, **self.details}}


class Notifier(Protocol):
    def announce(self, job: Job) -> None:
        """Tell humans about a failed or timed-out job. Raise on failure to deliver."""

    def announce_event(self, event: Event) -> None:
        """Tell humans about an event. Raise on failure to deliver."""


class LogNotifier:
    """Used when no webhook is configured: the failure is still visible in the logs."""

    def announce(self, job: Job) -> None:
        logger.error("%s", announcement(job)["text"])

    def announce_event(self, event: Event) -> None:
        logger.log(logging.ERROR if event.severe else logging.WARNING, "%s", event.text)


class WebhookNotifier:
    """POSTs the announcement as JSON through an azure-core pipeline (retries included)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import HeadersPolicy, RetryPolicy

        self._url = url
        self._timeout = timeout
        self._client: PipelineClient[Any, Any] = PipelineClient(
            base_url=url,
            policies=[HeadersPolicy({"Content-Type": "application/json"}), RetryPolicy(retry_total=3)],
        )

    def announce(self, job: Job) -> None:
        self._post(announcement(job))
        _module_logger.info("announced %s %s to the webhook", job.job_id, job.state.value)

    def announce_event(self, event: Event) -> None:
        self._post(event.payload())
        _module_logger.info("announced a %s event to the webhook", event.kind)

    def _post(self, payload: dict[str, Any]) -> None:
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", self._url, json=payload)
        response = self._client.send_request(request, connection_timeout=self._timeout, read_timeout=self._timeout)
        if response.status_code >= 300:
            # The URL may embed a token: never log it.
            raise RuntimeError(f"alert webhook answered HTTP {response.status_code}")
