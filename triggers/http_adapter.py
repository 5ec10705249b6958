"""``func.HttpRequest`` -> ``dr_core.api`` -> ``func.HttpResponse``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import azure.functions as func

from dr_core.api import Api, ApiResponse, guarded


def base_url(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def respond(handler: Callable[[Api], ApiResponse]) -> func.HttpResponse:
    """Run ``handler`` with the API of the process-wide context; errors (bad settings included) become JSON."""
    from dr_core.context import get_context

    result = guarded(lambda: handler(get_context().api()))
    return func.HttpResponse(
        body=result.json_bytes(), status_code=result.status, headers=result.headers, mimetype="application/json"
    )
