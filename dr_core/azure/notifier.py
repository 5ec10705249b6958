"""The notifiers: a webhook (JSON through an azure-core pipeline), or the log when no webhook is configured."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dr_core.jobs.events import announcement
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

    def _post(self, payload: JsonObject) -> None:
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", self._url, json=payload)
        response = self._client.send_request(request, connection_timeout=self._timeout, read_timeout=self._timeout)
        if response.status_code >= 300:
            # The URL may embed a token: never log it.
            raise RuntimeError(f"alert webhook answered HTTP {response.status_code}")
