"""What apim-dr tells people and machines apart from a job's own lines: events and their ``APIMDR_*`` log lines."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from dr_core.kernel.wire import JsonObject

__all__ = ["Event", "log_event"]

_event_logger = logging.getLogger("apim_dr.events")


@dataclass(frozen=True)
class Event:
    """Something other than a job that people must hear about (an RPO breach and its recovery, a failed drill).

    ``text`` is what a chat shows; ``details`` is for machines (no secrets).
    """

    kind: str
    text: str
    details: JsonObject = field(default_factory=dict)
    severe: bool = True

    def payload(self) -> JsonObject:
        return {"text": self.text, "apimDr": {"event": self.kind, **self.details}}


def log_event(prefix: str, data: JsonObject, *, warning: bool = False) -> None:
    """One structured line for a notable transition that is not a job's own: ``prefix`` then the JSON.

    ``prefix`` is the caller's literal (``"APIMDR_DRILL "``), so a scan of the code finds every line
    kind the app writes; ``data`` must hold no secret.
    """
    line = json.dumps(data, separators=(",", ":"), default=str)
    _event_logger.log(logging.WARNING if warning else logging.INFO, "%s%s", prefix, line)
