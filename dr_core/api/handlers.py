"""The HTTP API, independent of Azure Functions: request bytes in, :class:`ApiResponse` out.

The HTTP trigger modules only translate ``func.HttpRequest`` into these calls and the
result back into ``func.HttpResponse``; everything here is testable without the host.
Errors form a small hierarchy mapped to HTTP statuses; every one has a JSON body naming
what is wrong, and none ever carries a secret or a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dr_core.kernel.errors import DrError, InvalidRequestError, NotFoundError, PayloadTooLargeError, http_status

if TYPE_CHECKING:
    from dr_core.context import DrContext

__all__ = [
    "MAX_BODY_BYTES",
    "Api",
    "ApiResponse",
    "guarded",
    "operation_location",
    "parse_json_object",
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
    body: dict[str, Any] | list[Any]
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


def parse_json_object(body: bytes | None, *, allowed: set[str]) -> dict[str, Any]:
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


def _status_headers(base_url: str, job_id: str) -> dict[str, str]:
    return {"Location": operation_location(base_url, job_id), "Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}


class Api:
    """The HTTP API, independent of Azure Functions: request bytes in, :class:`ApiResponse` out."""

    def __init__(self, ctx: DrContext) -> None:
        self._ctx = ctx

    def post_backup(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/backups`` ``{"instance": "<resource ID | alias | service name>"}`` -> ``202``."""
        data = parse_json_object(body, allowed={"instance"})
        if "instance" not in data:
            raise InvalidRequestError("field 'instance' is required", fields={"instance": "required"})
        try:
            job, created = self._ctx.planner().request_backup(data["instance"])
        except NotFoundError as e:
            e.remediation = e.remediation or "List the instance in APIM_DR_INSTANCES or tag it for discovery."
            raise
        except InvalidRequestError as e:
            raise InvalidRequestError(f"instance: {e.message}", fields={"instance": e.message}) from e
        view = job.public_view(now=self._ctx.clock.now())
        return ApiResponse(202, {**view, "created": created}, _status_headers(base_url, job.job_id))

    def get_operation(self, job_id: str | None) -> ApiResponse:
        """``GET /api/operations/{id}`` -> the job as JSON (``200``), ``404`` if unknown."""
        from dr_core.jobs.job import parse_job_id

        try:
            parse_job_id(job_id)
        except ValueError as e:
            raise InvalidRequestError(f"operation id: {e}", fields={"id": "not an apim-dr job ID"}) from e
        assert job_id is not None
        job = self._ctx.store.get(job_id)
        if job is None:
            raise NotFoundError(f"no operation {job_id}")
        headers = {} if job.state.terminal else {"Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
        return ApiResponse(200, job.public_view(now=self._ctx.clock.now()), headers)

    def post_restore(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/restores``: preflight, then ``202`` + ``Location``; a dry run answers ``200`` with the plan.

        Refusals answer ``409`` (state: busy, locked, needs confirmation) or ``422`` (backup, tier,
        identity, CORS) with every check by name; nothing was sent to ARM.
        """
        from dr_core.jobs.job import JobState
        from dr_core.restore.restorer import parse_restore_request

        data = parse_json_object(body, allowed={"target", "source", "backup", "dryRun", "confirm"})
        request = parse_restore_request(data)
        try:
            plan, job = self._ctx.restorer().start(request)
        except NotFoundError as e:
            e.remediation = e.remediation or ("Name a protected instance, a configured standby or a drill target "
                                              "(APIM_DR_INSTANCES: resourceId, alias, standby, drillTarget).")
            raise
        now = self._ctx.clock.now()
        body_out: dict[str, Any] = {"dryRun": request.dry_run, "plan": plan.to_json(now=now)}
        if request.dry_run:
            return ApiResponse(200, body_out)
        if plan.refused or job is None or job.state is JobState.REFUSED:
            failed = plan.failed_checks
            body_out["error"] = {
                "code": "PreflightFailed",
                "message": "restore refused before anything was changed: "
                           + "; ".join(f"{c.name}: {c.message}" for c in failed),
                "remediation": " ".join(c.remediation or "" for c in failed).strip(),
            }
            if job is not None:
                body_out["operation"] = job.public_view(now=now)
            return ApiResponse(plan.status, body_out)
        body_out["operation"] = job.public_view(now=now)
        return ApiResponse(202, body_out, _status_headers(base_url, job.job_id))

    def list_backups(self, service: str | None) -> ApiResponse:
        """``GET /api/backups?service=<name | alias | resource ID>``: the catalog of one instance, newest first."""
        if not service:
            raise InvalidRequestError("query parameter 'service' is required", fields={"service": "required"})
        instance = self._ctx.resolver().named(service)
        target_sku = None
        warnings: list[str] = []
        if instance.standby is not None:
            try:
                target_sku = self._ctx.arm.get_service(instance.standby).sku
            except DrError as e:
                # The catalog lives in storage: list it anyway, and say what could not be checked.
                warnings.append(f"the standby's tier could not be read, so 'restorable' ignores it: {e.message}")
        now = self._ctx.clock.now()
        # The same margin as the restore preflight: "restorable" here means a restore would be accepted.
        margin = timedelta(hours=self._ctx.settings.expiry_margin_hours)
        entries = self._ctx.backups.find(instance.container, instance.name)
        body: dict[str, Any] = {
            "service": str(instance.resource_id),
            "restorableInto": str(instance.standby) if instance.standby else str(instance.resource_id),
            "backups": [e.to_json(now=now, target_sku=target_sku, margin=margin) for e in entries],
        }
        if warnings:
            body["warnings"] = warnings
        return ApiResponse(200, body)

    def get_status(self, service: str | None) -> ApiResponse:
        """``GET /api/status[?service=<name | alias | resource ID>]``: the posture of every protected instance.

        RPO state, backups of the last 30 days, open failures, standby sync and last drill;
        parts that cannot be read are named in ``problems``. ``400`` for an empty, oversized or
        ambiguous ``service``, ``404`` when it names no protected instance.
        """
        if service is not None and not service.strip():
            raise InvalidRequestError("query parameter 'service' is empty; omit it for every instance",
                                      fields={"service": "must not be empty"})
        return ApiResponse(200, self._ctx.posture_status().build(service))

    def dashboard(self) -> ApiResponse:
        """``GET /api/dashboard``: the status page (one self-contained HTML document, no external fetch)."""
        from dr_core.posture.dashboard import page_headers, render_dashboard

        status = self._ctx.posture_status().build(None)  # the same document as GET /api/status
        return ApiResponse.page(render_dashboard(status, now=self._ctx.clock.now()), page_headers())

    def list_drills(self, service: str | None) -> ApiResponse:
        """``GET /api/drills[?service=<name | alias | resource ID>]``: restore drills, newest first."""
        if service is not None and not service.strip():
            raise InvalidRequestError("query parameter 'service' is empty; omit it to list every drill",
                                      fields={"service": "empty"})
        return ApiResponse(200, {"drills": self._ctx.drills().history(service)})

    def post_drill(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/drills`` ``{"instance": "<resource ID | alias | service name>"}``: a drill now.

        ``202`` with the drill and ``Location`` of its restore job; ``409`` when the drill target is a
        primary or busy; ``422`` with the drill (``failed``) when the restore's preflight refused it.
        """
        data = parse_json_object(body, allowed={"instance"})
        if "instance" not in data:
            raise InvalidRequestError("field 'instance' is required", fields={"instance": "required"})
        from dr_core.drills.drills import public_view

        try:
            drill = public_view(self._ctx.drills().start(data["instance"]))
        except InvalidRequestError as e:
            raise InvalidRequestError(f"instance: {e.message}", fields={"instance": e.message},
                                      remediation=e.remediation) from e
        if drill["state"] == "failed":
            return ApiResponse(422, {"drill": drill, "error": drill["error"]})
        return ApiResponse(202, {"drill": drill}, _status_headers(base_url, drill["jobId"]))
