"""Snapshot restore over HTTP: ``POST /api/snapshots/{id}/restore`` (the job runs on the work queues)."""

from __future__ import annotations

import azure.functions as func

from .http_adapter import base_url, respond

bp = func.Blueprint()


@bp.function_name("restore_snapshot")
@bp.route(route="snapshots/{id}/restore", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def restore_snapshot(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.post_snapshot_restore(req.route_params.get("id"), req.get_body(),
                                                         base_url=base_url(req)), context)
