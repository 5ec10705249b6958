"""Restore and catalog triggers: guarded HTTP restore and the backup catalog."""

from __future__ import annotations

import azure.functions as func

from .http_adapter import base_url, respond

bp = func.Blueprint()


@bp.function_name("start_restore")
@bp.route(route="restores", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_restore(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.post_restore(req.get_body(), base_url=base_url(req)), context)


@bp.function_name("list_backups")
@bp.route(route="backups", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_backups(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.list_backups(req.params.get("service")), context)
