"""The status page: ``GET /api/dashboard`` (function key), one self-contained HTML document."""

from __future__ import annotations

import azure.functions as func

from .http_adapter import respond

bp = func.Blueprint()


@bp.function_name("dashboard")
@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def dashboard(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.dashboard(), context)
