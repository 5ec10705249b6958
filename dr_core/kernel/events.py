"""What apim-dr tells people and machines apart from a job's own lines: events and their ``APIMDR_*`` log lines."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field

from dr_core.kernel.wire import JsonObject

__all__ = ["EVENT_SOURCE", "Event", "event_id", "log_event"]

_event_logger = logging.getLogger("apim_dr.events")

# CloudEvents "source" of every announcement; an event's ID is unique within it.
EVENT_SOURCE = "/apim-dr"
_EVENT_NAMESPACE = uuid.UUID("8f0d2a8e-5b7c-4d5e-9a51-0c1d7e3b6a42")


def event_id(*parts: str) -> str:
    """A stable announcement ID (a UUID) from what makes the announcement the one it is (its kind, the job or
    instance, the episode), so an announcement sent again after a crash carries the same ID as the first."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class Event:
    """Something other than a job that people must hear about (an RPO breach and its recovery, a failed drill).

    ``text`` is what a chat shows; ``details`` is for machines (no secrets). ``event_id`` is the same for
    every delivery of the same announcement (:func:`event_id`): announcements are at least once, and a
    receiver drops repeats by it (``apimDr.eventId``, and the CloudEvents ``ce-id`` header).
    """

    kind: str
    text: str
    details: JsonObject = field(default_factory=dict)
    severe: bool = True
    event_id: str = ""

    def payload(self) -> JsonObject:
        ident = {"eventId": self.event_id} if self.event_id else {}
        return {"text": self.text, "apimDr": {"event": self.kind, **ident, **self.details}}


def log_event(prefix: str, data: JsonObject, *, warning: bool = False) -> None:
    """One structured line for a notable transition that is not a job's own: ``prefix`` then the JSON.

    ``prefix`` is the caller's literal (``"APIMDR_DRILL "``), so a scan of the code finds every line
    kind the app writes; ``data`` must hold no secret.
    """
    line = json.dumps(data, separators=(",", ":"), default=str)
    _event_logger.log(logging.WARNING if warning else logging.INFO, "%s%s", prefix, line)
