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


def post_restore(body: bytes | None, *, base_url: str) -> ApiResponse:
    """``POST /api/restores``: preflight, then ``202`` + ``Location``; a dry run answers ``200`` with the plan.

    Refusals answer ``409`` (state: busy, locked, needs confirmation) or ``422`` (backup, tier,
    identity, CORS) with every check by name; nothing was sent to ARM.
    """
    from .context import get_context
    from .jobs import now_utc
    from .restore import RequestError, parse_restore_request, start_restore

    data = parse_json_object(body, allowed={"target", "source", "backup", "dryRun", "confirm"})
    try:
        request = parse_restore_request(data)
    except RequestError as e:
        raise BadRequestError(f"invalid restore request: {e}", fields=e.fields) from e
    ctx = get_context()
    try:
        plan, job = start_restore(ctx, request)
    except RequestError as e:
        raise BadRequestError(f"invalid restore request: {e}", fields=e.fields) from e
    except LookupError as e:
        raise NotFoundError(str(e), remediation="Name a protected instance or a configured standby "
                            "(APIM_DR_INSTANCES: resourceId, alias, standby).") from e
    now = now_utc()
    body_out: dict[str, Any] = {"dryRun": request.dry_run, "plan": plan.to_json(now=now)}
    if request.dry_run:
        return ApiResponse(200, body_out)
    if plan.refused or job is None or job.state.value == "Refused":
        failed = [c for c in plan.checks if c.outcome == "fail"]
        body_out["error"] = {
            "code": "PreflightFailed",
            "message": "restore refused before anything was changed: "
                       + "; ".join(f"{c.name}: {c.message}" for c in failed),
            "remediation": " ".join(c.remediation or "" for c in failed).strip(),
        }
        if job is not None:
            body_out["operation"] = job.public_view()
        return ApiResponse(plan.status, body_out)
    body_out["operation"] = job.public_view()
    headers = {"Location": operation_location(base_url, job.job_id),
               "Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
    return ApiResponse(202, body_out, headers)


def list_backups(service: str | None) -> ApiResponse:
    """``GET /api/backups?service=<name | alias | resource ID>``: the catalog of one instance, newest first."""
    from .catalog import find_backups
    from .context import get_context
    from .inventory import UnknownInstanceError, resolve_instance
    from .jobs import now_utc

    if not service:
        raise BadRequestError("query parameter 'service' is required", fields={"service": "required"})
    ctx = get_context()
    try:
        instance = resolve_instance(service, list(ctx.settings.instances))
    except UnknownInstanceError as e:
        raise NotFoundError(str(e)) from e
    except ValueError as e:
        raise BadRequestError(f"service: {e}", fields={"service": str(e)}) from e
    target_sku = None
    if instance.standby is not None:
        from .arm import ArmCallError

        try:
            target_sku = ctx.operations.get_service(instance.standby).sku
        except ArmCallError:
            target_sku = None
    container = ctx.clients.backup_blobs().get_container_client(instance.container)
    now = now_utc()
    entries = find_backups(container, instance.name)
    return ApiResponse(200, {
        "service": str(instance.resource_id),
        "restorableInto": str(instance.standby) if instance.standby else str(instance.resource_id),
        "backups": [e.to_json(now=now, target_sku=target_sku) for e in entries],
    })
