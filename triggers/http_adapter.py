"""``func.HttpRequest`` -> ``dr_core.api.handlers`` -> ``func.HttpResponse``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import azure.functions as func

from dr_core.api.handlers import Api, ApiResponse, guarded


def base_url(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def respond(handler: Callable[[Api], ApiResponse]) -> func.HttpResponse:
    """Run ``handler`` with the API of the process-wide context; errors (bad settings included) become JSON.

    A handler may answer an HTML page (``ApiResponse.html``): it goes out as ``text/html; charset=utf-8``
    with the handler's headers; any error on the way is still a JSON error body.
    """
    from dr_core.context import get_context

    result = guarded(lambda: handler(get_context().api()))
    return func.HttpResponse(
        body=result.content(), status_code=result.status, headers=result.headers, mimetype=result.mimetype,
        charset="utf-8",
    )
