"""``func.HttpRequest`` -> ``dr_core.api`` -> ``func.HttpResponse``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import azure.functions as func

from dr_core.api.http import ApiResponse, guarded

from .invocation import invocation

if TYPE_CHECKING:
    from dr_core.api.handlers import Api


def base_url(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def respond(handler: Callable[[Api], ApiResponse], context: func.Context | None = None) -> func.HttpResponse:
    """Run ``handler`` with the API over the process-wide use cases; errors (bad settings included) become JSON.

    A handler may answer an HTML page (``ApiResponse.html``): it goes out as ``text/html; charset=utf-8``
    with the handler's headers; any error on the way is still a JSON error body. ``context``: the
    invocation, carried into the threads the handler starts (their log lines stay the invocation's).
    """
    from dr_core.api.handlers import Api
    from dr_core.context import get_context

    with invocation(context):
        result = guarded(lambda: handler(Api(get_context())))
    return func.HttpResponse(
        body=result.content(), status_code=result.status, headers=result.headers, mimetype=result.mimetype,
        charset="utf-8",
    )
