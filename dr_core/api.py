"""The HTTP API, independent of Azure Functions: request bytes in, :class:`ApiResponse` out.

The HTTP trigger modules only translate ``func.HttpRequest`` into these calls and the
result back into ``func.HttpResponse``; everything here is testable without the host.
Errors form a small hierarchy mapped to HTTP statuses; every one has a JSON body naming
what is wrong, and none ever carries a secret or a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import DrError

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "ApiResponse",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "get_operation",
    "guarded",
    "post_backup",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STATUS_RETRY_AFTER_SECONDS = 10


class ApiError(DrError):
    status = 400
    code = "BadRequest"

    def __init__(self, message: str, *, remediation: str | None = None,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(message, remediation=remediation)
        self.fields = fields or {}

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        if self.fields:
            body["error"]["fields"] = self.fields
        return body


class BadRequestError(ApiError):
    status, code = 400, "BadRequest"


class NotFoundError(ApiError):
    status, code = 404, "NotFound"


class ConflictError(ApiError):
    status, code = 409, "Conflict"


class UnprocessableError(ApiError):
    status, code = 422, "Unprocessable"


class PayloadTooLargeError(ApiError):
    status, code = 413, "PayloadTooLarge"


class ConfigurationError(ApiError):
    status, code = 503, "ConfigurationError"


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any] | list[Any]
    headers: dict[str, str] = field(default_factory=dict)

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), default=str).encode()


def guarded(handler: Callable[[], ApiResponse]) -> ApiResponse:
    """Run a handler; turn apim-dr errors into their status and anything else into an opaque 500."""
    from .settings import SettingsError

    try:
        return handler()
    except ApiError as e:
        return ApiResponse(e.status, e.to_json())
    except SettingsError as e:
        err = ConfigurationError("the app's settings are invalid: " + "; ".join(e.problems),
                                 remediation="Fix the named app settings (docs/configuration.md) and restart.")
        logger.error("request refused: %s", e)
        return ApiResponse(err.status, err.to_json())
    except Exception:
        logger.exception("unhandled error in an HTTP request")
        return ApiResponse(500, {"error": {"code": "InternalError",
                                           "message": "unexpected error; see the Function App's logs"}})


def parse_json_object(body: bytes | None, *, allowed: set[str]) -> dict[str, Any]:
    if body is None or not body.strip():
        raise BadRequestError("the request body is empty; expected a JSON object")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the request body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequestError(f"the request body is not valid JSON: {str(e)[:120]}") from e
    if not isinstance(data, dict):
        raise BadRequestError(f"the request body must be a JSON object, got a JSON {type(data).__name__}")
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise BadRequestError(f"unknown fields {names}; allowed: {', '.join(sorted(allowed))}",
                              fields={k[:40]: "unknown field" for k in unknown[:5]})
    return data


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def operation_location(base_url: str, job_id: str) -> str:
    return f"{_base(base_url)}/api/operations/{job_id}"


def post_backup(body: bytes | None, *, base_url: str) -> ApiResponse:
    """``POST /api/backups`` ``{"instance": "<resource ID | alias | service name>"}`` -> ``202``."""
    from .context import get_context
    from .inventory import UnknownInstanceError
    from .planner import request_backup

    data = parse_json_object(body, allowed={"instance"})
    if "instance" not in data:
        raise BadRequestError("field 'instance' is required", fields={"instance": "required"})
    ctx = get_context()
    try:
        job, created = request_backup(ctx, data["instance"])
    except UnknownInstanceError as e:
        raise NotFoundError(str(e), remediation="List the instance in APIM_DR_INSTANCES or tag it for discovery."
                            ) from e
    except ValueError as e:
        raise BadRequestError(f"instance: {e}", fields={"instance": str(e)}) from e
    headers = {"Location": operation_location(base_url, job.job_id),
               "Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
    return ApiResponse(202, {**job.public_view(), "created": created}, headers)


def get_operation(job_id: str | None) -> ApiResponse:
    """``GET /api/operations/{id}`` -> the job as JSON (``200``), ``404`` if unknown."""
    from .context import get_context
    from .jobs import parse_job_id

    try:
        parse_job_id(job_id)
    except ValueError as e:
        raise BadRequestError(f"operation id: {e}", fields={"id": "not an apim-dr job ID"}) from e
    assert job_id is not None
    job = get_context().store.get(job_id)
    if job is None:
        raise NotFoundError(f"no operation {job_id}")
    headers = {} if job.state.terminal else {"Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
    return ApiResponse(200, job.public_view(), headers)
