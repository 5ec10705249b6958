"""Restore and catalog triggers: guarded HTTP restore and the backup catalog."""

from __future__ import annotations

import azure.functions as func

from .http_adapter import base_url, respond

bp = func.Blueprint()


@bp.function_name("start_restore")
@bp.route(route="restores", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_restore(req: func.HttpRequest) -> func.HttpResponse:
    from dr_core.api import post_restore

    return respond(lambda: post_restore(req.get_body(), base_url=base_url(req)))


@bp.function_name("list_backups")
@bp.route(route="backups", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_backups(req: func.HttpRequest) -> func.HttpResponse:
    from dr_core.api import list_backups as catalog

    return respond(lambda: catalog(req.params.get("service")))
