"""``func.HttpRequest`` -> ``dr_core.api`` -> ``func.HttpResponse``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import azure.functions as func

from dr_core.api import ApiResponse, guarded


def base_url(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def respond(handler: Callable[[], ApiResponse]) -> func.HttpResponse:
    result = guarded(handler)
    return func.HttpResponse(
        body=result.json_bytes(), status_code=result.status, headers=result.headers, mimetype="application/json"
    )
