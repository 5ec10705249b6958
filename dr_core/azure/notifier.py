"""The notifiers: a webhook (JSON through an azure-core pipeline), or the log when no webhook is configured.

Announcements are delivered at least once, each with a stable ID. The webhook gets the announcement's JSON as
the body, unchanged (``text`` for Slack and Teams, ``apimDr`` for machines, ``apimDr.eventId`` among it), and
the CloudEvents attributes as headers (HTTP binding, binary content mode: ``ce-specversion``, ``ce-id``,
``ce-source``, ``ce-type``, ``ce-time``), which chat webhooks ignore and event receivers read: a receiver drops
a delivery whose ID it has seen.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dr_core.jobs.events import announcement, announcement_id, announcement_type
from dr_core.kernel.events import EVENT_SOURCE, event_id
from dr_core.kernel.wire import JsonObject

if TYPE_CHECKING:
    from dr_core.jobs.job import Job
    from dr_core.kernel.events import Event

__all__ = ["LogNotifier", "WebhookNotifier"]

logger = logging.getLogger("apim_dr.jobs")
_module_logger = logging.getLogger(__name__)


class LogNotifier:
    """Used when no webhook is configured: the failure is still visible in the logs."""

    def announce(self, job: Job) -> None:
        logger.error("%s\nEvent: %s", announcement(job)["text"], announcement_id(job))

    def announce_event(self, event: Event) -> None:
        logger.log(logging.ERROR if event.severe else logging.WARNING, "%s\nEvent: %s", event.text,
                   _event_id_of(event))


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
        ident = announcement_id(job)
        self._post(announcement(job), ident=ident, kind=announcement_type(job), at=job.finished_at)
        _module_logger.info("announced %s %s to the webhook (event %s)", job.job_id, job.state.value, ident)

    def announce_event(self, event: Event) -> None:
        ident = _event_id_of(event)
        self._post(event.payload(), ident=ident, kind=f"apim-dr.{event.kind}")
        _module_logger.info("announced a %s event to the webhook (event %s)", event.kind, ident)

    def _post(self, payload: JsonObject, *, ident: str, kind: str, at: datetime | None = None) -> None:
        from azure.core.rest import HttpRequest

        moment = (at or datetime.now(UTC)).astimezone(UTC)
        headers = {"ce-specversion": "1.0", "ce-id": ident, "ce-source": EVENT_SOURCE, "ce-type": kind,
                   "ce-time": moment.isoformat(timespec="seconds").replace("+00:00", "Z")}
        request = HttpRequest("POST", self._url, json=payload, headers=headers)
        response = self._client.send_request(request, connection_timeout=self._timeout, read_timeout=self._timeout)
        if response.status_code >= 300:
            # The URL may embed a token: never log it.
            raise RuntimeError(f"alert webhook answered HTTP {response.status_code}")


def _event_id_of(event: Event) -> str:
    """The event's own ID; for an event built without one, one derived from its kind and text (stable for the
    same text)."""
    return event.event_id or event_id(event.kind, event.text)
