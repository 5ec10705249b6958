"""Test-only fault injection and ARM's write throttling.

A fault is a JSON object stored with the rest of the state (so it survives a restart)::

    {"id": "f1", "kind": "http" | "throttle" | "op_failure" | "drop_answer",
     "on": "any" | "start" | "backup" | "restore" | "poll" | "get" | "list",  (aliases: TARGET_ALIASES)
     "service": null | "<name>", "count": 1 (null = until cleared),
     "status": 503, "code": "...", "message": "...", "retryAfter": null | <seconds>,
     "then": "close" | <status>}  (drop_answer only)

``http``/``throttle`` faults answer a matching request instead of handling it. ``op_failure`` faults
are taken when a backup/restore starts: that operation is accepted (202) and later fails on poll
with the given status/code/message. ``drop_answer`` faults let the request be handled in full (a
backup really starts) and then lose its answer: the connection is closed without a response
(``"then": "close"``) or an error status is sent instead (``"then": 503``), as when a gateway or
the network between client and ARM fails after ARM acted.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any

from .errors import ArmError, apim_error
from .wire import Response, json_response

FAULT_KINDS = ("http", "throttle", "op_failure", "drop_answer")
# get/list: reads of a service or of its configuration entities; write: PUT/PATCH/DELETE/POST on those.
FAULT_TARGETS = ("any", "start", "backup", "restore", "poll", "get", "list", "write")
# Spellings callers reach for; they mean the POST that starts the operation.
TARGET_ALIASES = {"backup_start": "backup", "restore_start": "restore", "post": "start", "operationresults": "poll"}

DEFAULT_HTTP_FAULT = {
    500: ("InternalServerError", "Encountered an internal server error. Please try again later."),
    502: ("BadGateway", "The gateway did not receive a response from the upstream server."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}


def normalize_fault(raw: dict[str, Any]) -> dict[str, Any]:
    """Check an admin-supplied fault and fill in defaults; raises ValueError with a clear reason."""
    if not isinstance(raw, dict):
        raise ValueError("a fault must be a JSON object")
    kind = raw.get("kind", "http")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    on = raw.get("on", "any")
    on = TARGET_ALIASES.get(on, on) if isinstance(on, str) else on
    if on not in FAULT_TARGETS:
        raise ValueError(f"on must be one of {', '.join(FAULT_TARGETS)}")
    count = raw.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError("count must be a positive integer or null (until cleared)")
    retry_after = raw.get("retryAfter")
    if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
        raise ValueError("retryAfter must be a non-negative number of seconds")
    service = raw.get("service")
    if service is not None and not isinstance(service, str):
        raise ValueError("service must be a service name")
    status: int | None
    code: str | None
    message: str | None
    then: str | int | None = None
    if kind == "drop_answer":
        then = raw.get("then", "close")
        if then == "close":
            status, code, message = None, None, None
        elif isinstance(then, int) and not isinstance(then, bool) and 400 <= then <= 599:
            status = then
            default_code, default_message = DEFAULT_HTTP_FAULT.get(status, ("InjectedFault", "Injected fault."))
            code, message = raw.get("code") or default_code, raw.get("message") or default_message
        else:
            raise ValueError('then must be "close" or an HTTP error status (400-599)')
    elif kind == "throttle":
        status, code, message = 429, "SubscriptionRequestsThrottled", raw.get("message")
        if retry_after is None:
            retry_after = 10
    elif kind == "http":
        status = int(raw.get("status", 500))
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        default_code, default_message = DEFAULT_HTTP_FAULT.get(status, ("InjectedFault", "Injected fault."))
        code, message = raw.get("code") or default_code, raw.get("message") or default_message
    else:
        status = int(raw.get("status", 400))
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        code, message = raw.get("code"), raw.get("message")
    return {
        "id": str(raw.get("id") or f"fault-{secrets.token_hex(4)}"),
        "kind": kind,
        "on": on,
        "service": service,
        "count": count,
        "status": status,
        "code": code,
        "message": message,
        "retryAfter": retry_after,
        **({"then": then} if kind == "drop_answer" else {}),
    }


def _matches(fault: dict[str, Any], route: str, service: str | None) -> bool:
    on = fault["on"]
    if on not in ("any", route) and not (on == "start" and route in ("backup", "restore")):
        return False
    wanted = fault.get("service")
    return wanted is None or (service is not None and wanted.lower() == service.lower())


def take(
    faults: list[dict[str, Any]], kinds: tuple[str, ...], route: str, service: str | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first matching fault and the fault list after using it up once."""
    for index, fault in enumerate(faults):
        if fault["kind"] in kinds and _matches(fault, route, service):
            remaining = list(faults)
            if fault["count"] is not None:
                if fault["count"] <= 1:
                    del remaining[index]
                else:
                    remaining[index] = fault | {"count": fault["count"] - 1}
            return fault, remaining
    return None, faults


def throttled(subscription: str, principal: str, operation: str, retry_after: float) -> ArmError:
    """ARM's 429; wording from live ARM answers (apim-arm.md §4.2)."""
    seconds = max(1, math.ceil(retry_after))
    return ArmError(
        429,
        "SubscriptionRequestsThrottled",
        f"Number of '{operation}' requests for subscription '{subscription}' actor '{principal}' exceeded. "
        f"Please try again after '{seconds}' seconds after additional tokens are available. "
        "Refer to https://aka.ms/arm-throttling",
        headers={"Retry-After": str(seconds)},
    )


def http_fault_error(fault: dict[str, Any], *, subscription: str, principal: str, operation: str) -> ArmError:
    if fault["kind"] == "throttle":
        error = throttled(subscription, principal, operation, fault["retryAfter"])
        if fault.get("message"):
            error.message = fault["message"]
        return error
    headers = {}
    if fault.get("retryAfter") is not None:
        headers["Retry-After"] = str(max(0, math.ceil(fault["retryAfter"])))
    return apim_error(fault["status"], fault["code"], fault["message"], headers=headers)


def lost_answer(fault: dict[str, Any], handled: Response) -> Response:
    """What the client gets instead of ``handled`` under a ``drop_answer`` fault.

    ``handled`` stays the emulator's answer (it is what the request log records); the returned
    response is what goes on the wire: nothing at all (the connection is closed) or the fault's
    error status with an APIM-shaped body, the front door's headers and none of the real answer's
    (no ``Location``, no ``Retry-After`` unless the fault sets one).
    """
    if fault["then"] == "close":
        return Response(handled.status, abort=True)
    headers = {
        name: value
        for name, value in handled.headers.items()
        if name.lower() not in ("location", "retry-after", "etag", "content-type", "content-length")
    }
    if fault.get("retryAfter") is not None:
        headers["Retry-After"] = str(max(0, math.ceil(fault["retryAfter"])))
    error = apim_error(fault["status"], fault["code"], fault["message"])
    return json_response(fault["status"], error.body(), headers)


class TokenBuckets:
    """ARM's per-principal token buckets (apim-arm.md §4.3): reads 250 / 25 per s, writes and deletes
    200 / 10 per s by default; the caller's key names the bucket (``read|{sub}|{oid}`` ...).

    Real time, in memory: a restart refills the buckets, as a pause of a few seconds would.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._levels: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._levels.clear()

    def take(self, key: str, burst: float, refill_per_second: float) -> tuple[bool, float, float]:
        """(allowed, tokens left, seconds until one token is back)."""
        now = time.monotonic()
        with self._lock:
            level, stamp = self._levels.get(key, (burst, now))
            level = min(burst, level + (now - stamp) * refill_per_second)
            if level >= 1:
                self._levels[key] = (level - 1, now)
                return True, level - 1, 0.0
            self._levels[key] = (level, now)
            wait = (1 - level) / refill_per_second if refill_per_second > 0 else 3600.0
            return False, level, wait
