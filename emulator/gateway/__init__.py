"""An API Management gateway per instance, as far as a health check needs.

``GET https://{service}.azure-api.net/{api path}/{operation url}`` (or a custom ``Proxy`` hostname of
the instance, or its regional URL), reached through emulator/proxy.py, answers **200** when the
instance's configuration has an API with that path and an operation whose method and URL template
match; otherwise APIM's own 404 (``{"statusCode": 404, "message": "Resource not found"}``). APIs that
require a subscription (APIM's default) want a key of an active subscription in the configuration
(``Ocp-Apim-Subscription-Key`` header or ``subscription-key`` query), else APIM's 401s ("Access denied
due to missing subscription key ..." / "... invalid subscription key ..."). No backend is called: the
200 body names the instance, region, API and operation that answered, and ``x-apim-dr-served-by``
names the instance, so a test can see where traffic lands.

The configuration is read in one function, ``find_operation``: APIs are ``configuration["apis"]`` items
with ``path`` and an ``operations`` list of ``{method, urlTemplate}`` (``OperationContract``
properties; ``properties`` nesting is accepted too). Reshaping the configuration means changing only it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from emulator.apim.wire import Request, Response


@dataclass(frozen=True)
class OperationMatch:
    api_id: str
    api_path: str
    operation_id: str
    url_template: str
    subscription_required: bool


def _props(item: dict[str, Any]) -> dict[str, Any]:
    inner = item.get("properties")
    return item | inner if isinstance(inner, dict) else item


def _template_regex(template: str) -> re.Pattern[str]:
    path = template.split("?", 1)[0].strip("/")
    parts = re.split(r"(\{[^{}/]+\})", path)
    regex = "".join("[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}/?$", re.IGNORECASE)


def find_operation(configuration: dict[str, Any], method: str, path: str) -> OperationMatch | None:
    """The API operation that serves ``method path`` in an instance's configuration, if any.

    The API with the longest matching ``path`` prefix wins (as APIM routes); then the first operation
    whose method and URL template match the rest of the path.
    """
    wanted = unquote(path).strip("/")
    candidates: list[tuple[str, dict[str, Any]]] = []
    for raw in configuration.get("apis") or []:
        if not isinstance(raw, dict):
            continue
        api = _props(raw)
        api_path = str(api.get("path") or "").strip("/")
        if wanted == api_path or wanted.startswith(api_path + "/") or api_path == "":
            candidates.append((api_path, api))
    for api_path, api in sorted(candidates, key=lambda c: len(c[0]), reverse=True):
        rest = wanted[len(api_path) :].strip("/")
        for raw_op in api.get("operations") or []:
            if not isinstance(raw_op, dict):
                continue
            op = _props(raw_op)
            if str(op.get("method", "")).upper() != method.upper():
                continue
            template = str(op.get("urlTemplate") or "/")
            if _template_regex(template).match(rest):
                return OperationMatch(
                    api_id=str(api.get("id") or api.get("name") or api_path),
                    api_path=api_path,
                    operation_id=str(op.get("id") or op.get("name") or template),
                    url_template=template,
                    subscription_required=bool(api.get("subscriptionRequired", True)),
                )
    return None


def _active_keys(configuration: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for raw in configuration.get("subscriptions") or []:
        if not isinstance(raw, dict):
            continue
        sub = _props(raw)
        if str(sub.get("state", "active")).lower() != "active":
            continue
        for field in ("primaryKey", "secondaryKey"):
            if isinstance(sub.get(field), str) and sub[field]:
                keys.add(sub[field])
    return keys


def _apim_answer(status: int, message: str) -> Response:
    body = json.dumps({"statusCode": status, "message": message}).encode()
    return Response(status, body, {"Content-Type": "application/json; charset=utf-8"})


def serve(req: Request, service: dict[str, Any], region: str) -> Response:
    """One gateway request for ``service`` (the emulator's service record)."""
    match = find_operation(service.get("configuration") or {}, req.method, req.path)
    if match is None:
        return _apim_answer(404, "Resource not found")
    if match.subscription_required:
        key = req.header("ocp-apim-subscription-key") or req.param("subscription-key")
        if not key:
            return _apim_answer(
                401,
                "Access denied due to missing subscription key. Make sure to include subscription key when making "
                "requests to an API.",
            )
        if key not in _active_keys(service.get("configuration") or {}):
            return _apim_answer(
                401,
                "Access denied due to invalid subscription key. Make sure to provide a valid key for an active "
                "subscription.",
            )
    body = {
        "service": service["name"],
        "region": region,
        "api": match.api_id,
        "operation": match.operation_id,
        "urlTemplate": match.url_template,
    }
    return Response(
        200,
        json.dumps(body).encode(),
        {"Content-Type": "application/json; charset=utf-8", "x-apim-dr-served-by": service["name"]},
    )
