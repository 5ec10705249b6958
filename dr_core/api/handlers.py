"""The HTTP API, independent of Azure Functions: request bytes in, :class:`~.http.ApiResponse` out.

The HTTP trigger modules only translate ``func.HttpRequest`` into these calls and the result back
into ``func.HttpResponse``; everything here is testable without the host. Each handler parses its
request, calls one use case and writes its typed result as the JSON contract of the route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dr_core.jobs.job import Trigger
from dr_core.kernel.errors import InvalidRequestError, NotFoundError
from dr_core.kernel.phases import DrillPhase, JobState
from dr_core.kernel.wire import JsonObject
from dr_core.posture.dashboard import page_headers, render_dashboard
from dr_core.restore.request import parse_restore_request
from dr_core.snapshots.restoring import parse_snapshot_restore_request

from .http import STATUS_RETRY_AFTER_SECONDS, ApiResponse, parse_json_object, status_headers

if TYPE_CHECKING:
    from dr_core.usecases import UseCases

__all__ = ["Api"]


class Api:
    """The routes of ``/api``; each handler raises apim-dr errors, which :func:`~.http.guarded` answers."""

    def __init__(self, use_cases: UseCases) -> None:
        self._use = use_cases

    def post_backup(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/backups`` ``{"instance": "<resource ID | alias | service name>"}`` -> ``202``."""
        data = parse_json_object(body, allowed={"instance"})
        if "instance" not in data:
            raise InvalidRequestError("field 'instance' is required", fields={"instance": "required"})
        try:
            job, created = self._use.planner().request_backup(data["instance"])
        except NotFoundError as e:
            e.remediation = e.remediation or "List the instance in APIM_DR_INSTANCES or tag it for discovery."
            raise
        except InvalidRequestError as e:
            raise InvalidRequestError(f"instance: {e.message}", fields={"instance": e.message}) from e
        view = job.public_view(now=self._use.clock.now())
        return ApiResponse(202, {**view, "created": created}, status_headers(base_url, job.job_id))

    def get_operation(self, job_id: str | None) -> ApiResponse:
        """``GET /api/operations/{id}`` -> the job as JSON (``200``), ``404`` if unknown."""
        try:
            job = self._use.operations().get(job_id)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"operation id: {e.message}", fields={"id": "not an apim-dr job ID"}) from e
        except NotFoundError as e:
            raise NotFoundError(f"no operation {job_id}") from e
        headers = {} if job.state.terminal else {"Retry-After": str(STATUS_RETRY_AFTER_SECONDS)}
        return ApiResponse(200, job.public_view(now=self._use.clock.now()), headers)

    def post_restore(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/restores``: preflight, then ``202`` + ``Location``; a dry run answers ``200`` with the plan.

        Refusals answer ``409`` (state: busy, locked, needs confirmation) or ``422`` (backup, tier,
        identity, CORS) with every check by name; nothing was sent to ARM.
        """
        data = parse_json_object(body, allowed={"target", "source", "backup", "dryRun", "confirm"})
        request = parse_restore_request(data)
        try:
            plan, job = self._use.restorer().start(request)
        except NotFoundError as e:
            e.remediation = e.remediation or ("Name a protected instance, a configured standby or a drill target "
                                              "(APIM_DR_INSTANCES: resourceId, alias, standby, drillTarget).")
            raise
        now = self._use.clock.now()
        body_out: JsonObject = {"dryRun": request.dry_run, "plan": plan.to_json(now=now)}
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
        return ApiResponse(202, body_out, status_headers(base_url, job.job_id))

    def list_backups(self, service: str | None) -> ApiResponse:
        """``GET /api/backups?service=<name | alias | resource ID>``: the catalog of one instance, newest first."""
        return ApiResponse(200, self._use.catalog().list(service).to_json())

    def get_status(self, service: str | None) -> ApiResponse:
        """``GET /api/status[?service=<name | alias | resource ID>]``: the posture of every protected instance.

        RPO state, backups of the last 30 days, open failures, standby sync and last drill;
        parts that cannot be read are named in ``problems``. ``400`` for an empty, oversized or
        ambiguous ``service``, ``404`` when it names no protected instance.
        """
        if service is not None and not service.strip():
            raise InvalidRequestError("query parameter 'service' is empty; omit it for every instance",
                                      fields={"service": "must not be empty"})
        return ApiResponse(200, self._use.posture_status().build(service).to_json())

    def dashboard(self) -> ApiResponse:
        """``GET /api/dashboard``: the status page (one self-contained HTML document, no external fetch)."""
        status = self._use.posture_status().build(None).to_json()  # the same document as GET /api/status
        return ApiResponse.page(render_dashboard(status, now=self._use.clock.now()), page_headers())

    def list_drills(self, service: str | None) -> ApiResponse:
        """``GET /api/drills[?service=<name | alias | resource ID>]``: restore drills, newest first."""
        if service is not None and not service.strip():
            raise InvalidRequestError("query parameter 'service' is empty; omit it to list every drill",
                                      fields={"service": "empty"})
        return ApiResponse(200, {"drills": [d.public_json() for d in self._use.drills().history(service)]})

    def post_drill(self, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/drills`` ``{"instance": "<resource ID | alias | service name>"}``: a drill now.

        ``202`` with the drill and ``Location`` of its restore job; ``409`` when the drill target is a
        primary or busy; ``422`` with the drill (``failed``) when the restore's preflight refused it.
        """
        data = parse_json_object(body, allowed={"instance"})
        if "instance" not in data:
            raise InvalidRequestError("field 'instance' is required", fields={"instance": "required"})
        try:
            drill = self._use.drills().start(data["instance"])
        except InvalidRequestError as e:
            raise InvalidRequestError(f"instance: {e.message}", fields={"instance": e.message},
                                      remediation=e.remediation) from e
        view = drill.public_json()
        if drill.state is DrillPhase.FAILED:
            return ApiResponse(422, {"drill": view, "error": view["error"]})
        return ApiResponse(202, {"drill": view}, status_headers(base_url, drill.job_id or ""))

    def post_snapshot_restore(self, snapshot: str | None, body: bytes | None, *, base_url: str) -> ApiResponse:
        """``POST /api/snapshots/{id}/restore`` ``{"target", "source"?, "items"?, "dryRun"?, "confirm"?}``.

        ``{id}`` is a snapshot ID or ``latest`` (the source's newest; the source defaults to the target). ``202``
        with the checks and ``Location`` of the job (which reads the target, plans, and applies or, for a dry run,
        ends with the plan); ``409``/``422``/``503`` with every check by name when refused, nothing changed.
        """
        data = parse_json_object(body, allowed={"target", "source", "items", "dryRun", "confirm"})
        request = parse_snapshot_restore_request(snapshot or "", data)
        started = self._use.snapshot_restorer().start(request, trigger=Trigger.HTTP)
        out: JsonObject = {"dryRun": request.dry_run, "start": started.to_json()}
        if started.job is None:
            failed = started.failed_checks
            out["error"] = {"code": "PreflightFailed",
                            "message": "snapshot restore refused before anything was changed: "
                                       + "; ".join(f"{c.name}: {c.message}" for c in failed),
                            "remediation": " ".join(c.remediation or "" for c in failed).strip()}
            return ApiResponse(started.status, out)
        out["operation"] = started.job.public_view(now=self._use.clock.now())
        return ApiResponse(202, out, status_headers(base_url, started.job.job_id))

