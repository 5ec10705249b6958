"""HTTP without Azure Functions: the response type, the error guard and request-body parsing.

Every apim-dr error answers its status from one table (:func:`dr_core.kernel.errors.http_status`)
with a JSON body naming what is wrong; nothing else ever carries a secret or a stack trace out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dr_core.kernel.errors import DrError, InvalidRequestError, PayloadTooLargeError, http_status
from dr_core.kernel.wire import JsonObject

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "STATUS_RETRY_AFTER_SECONDS",
    "ApiResponse",
    "guarded",
    "json_depth",
    "operation_location",
    "parse_json_object",
    "status_headers",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Request bodies are flat objects; a limit far above that, checked before parsing so a hostile body
# is refused the same way whatever stack the parser runs on (the interpreter's recursion limit depends
# on how deep the caller already is).
MAX_JSON_DEPTH = 16
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
STATUS_RETRY_AFTER_SECONDS = 10


@dataclass
class ApiResponse:
    """An answer: a JSON ``body``, or an HTML page when ``html`` is set (errors are always JSON)."""

    status: int
    body: JsonObject | list[Any]
    headers: dict[str, str] = field(default_factory=dict)
    html: str | None = None

    @classmethod
    def page(cls, html: str, headers: dict[str, str]) -> ApiResponse:
        return cls(200, {}, headers, html=html)

    @property
    def mimetype(self) -> str:
        return "application/json" if self.html is None else "text/html"

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), default=str).encode()

    def content(self) -> bytes:
        """The bytes to send: the page as UTF-8 (unencodable characters replaced), else the JSON body."""
        return self.json_bytes() if self.html is None else self.html.encode("utf-8", "replace")


def guarded(handler: Callable[[], ApiResponse]) -> ApiResponse:
    """Run a handler; apim-dr errors answer their status (one table), anything else an opaque 500."""
    try:
        return handler()
    except DrError as e:
        status = http_status(e)
        if status >= 500:
            logger.error("request refused (%s): %s", e.error_code, e.message)
        headers = {"Retry-After": str(int(e.retry_after))} if e.retry_after else {}
        return ApiResponse(status, e.to_json(), headers)
    except Exception:
        logger.exception("unhandled error in an HTTP request")
        return ApiResponse(500, {"error": {"code": "InternalError",
                                           "message": "unexpected error; see the Function App's logs"}})


def parse_json_object(body: bytes | None, *, allowed: set[str]) -> JsonObject:
    if body is None or not body.strip():
        raise InvalidRequestError("the request body is empty; expected a JSON object")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the request body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise InvalidRequestError(f"the request body is nested too deeply (more than {MAX_JSON_DEPTH} levels); "
                                  "expected a flat JSON object")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequestError(f"the request body is not valid JSON: {str(e)[:120]}") from e
    if not isinstance(data, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, got a JSON {type(data).__name__}")
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidRequestError(f"unknown fields {names}; allowed: {', '.join(sorted(allowed))}",
                                  fields={k[:40]: "unknown field" for k in unknown[:5]})
    return data


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``body``, brackets inside strings not counted; no recursion."""
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b"", body):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def operation_location(base_url: str, job_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/operations/{job_id}"


def status_headers(base_url: str, job_id: str) -> dict[str, str]:
    return {"Location": operation_location(base_url, job_id), "Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
