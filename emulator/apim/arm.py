"""The ARM surface of ``Microsoft.ApiManagement/service``: routing, checks in ARM's order, answers.

Order of checks, as ARM applies them: authentication (401) -> route (404/405) -> api-version (400) ->
injected faults and throttling (429/5xx) -> subscription (400/404) -> path names (400) -> RBAC (403) ->
resource group (404) -> resource (404) -> the resource provider's own rules (400/409/202).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from . import auth
from . import faults as fault_rules
from .children import ChildApi
from .errors import ArmError, apim_error
from .kinds import ChildRoute, ChildRouteError, match_child
from .operations import Engine
from .params import parse_parameters
from .resources import (
    REGION_DISPLAY_NAMES,
    RESOURCE_GROUP_MAX,
    SERVICE_NAME_MAX,
    SERVICE_NAME_RE,
    SUPPORTED_API_VERSIONS,
    etag_for,
    normalize_location,
    render_service,
)
from .wire import Request, Response, json_response

logger = logging.getLogger(__name__)

ROUTE_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)"
    r"(?:/resourcegroups/(?P<rg>[^/]+))?"
    r"/providers/microsoft\.apimanagement/service"
    r"(?:/(?P<name>[^/]+)(?P<rest>/.*?)?)?/?$",
    re.IGNORECASE,
)
OPERATION_RESULT_RE = re.compile(r"^/operationresults/(?P<op>[^/]+)$", re.IGNORECASE)
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
RG_ALLOWED_RE = re.compile(r"[\w\-.()]", re.UNICODE)
ROUTING_REGION = "WESTEUROPE"
# ARM's three buckets by HTTP method (apim-arm.md §4.3): reads, writes (PUT, PATCH, POST), deletes.
BUCKET_OF_METHOD = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "POST": "write",
                    "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    kind: str  # list | get | backup | restore | poll | child
    subscription: str
    resource_group: str | None
    name: str | None
    operation_id: str | None
    child: ChildRoute | None = None  # a configuration child resource (kind "child")
    http_method: str = "GET"

    @property
    def method(self) -> str:
        return self.http_method

    @property
    def bucket(self) -> str:
        return BUCKET_OF_METHOD.get(self.http_method, "write")

    @property
    def fault_target(self) -> str:
        """What an injected fault's ``on`` matches: the service routes' kinds; a child list is a ``list``,
        a child read a ``get``, any other child request a ``write``."""
        if self.child is None:
            return self.kind
        if self.child.operation == "list":
            return "list"
        return "get" if self.child.operation in ("get", "head") else "write"


def parse_route(method: str, path: str) -> Route:
    match = ROUTE_RE.match(path)
    if match is None or (match["name"] is not None and match["rg"] is None):
        raise ArmError(404, "NotFound", f"The emulator does not serve '{unquote(path)}'.")

    def decoded(group: str) -> str | None:
        value = match[group]
        return None if value is None else unquote(value)

    sub, rg, name = decoded("sub") or "", decoded("rg"), decoded("name")
    rest = (match["rest"] or "").rstrip("/")
    expected = "GET"
    child: ChildRoute | None = None
    op_id: str | None = None
    if name is None or not rest:
        kind = "list" if name is None else "get"
    elif rest.lower() in ("/backup", "/restore"):
        kind, expected = rest[1:].lower(), "POST"
    elif (result := OPERATION_RESULT_RE.match(rest)) is not None:
        kind, op_id = "poll", unquote(result["op"])
    else:
        kind, expected = "child", method.upper()
        try:
            child = match_child(method, tuple(unquote(s) for s in rest[1:].split("/")))
        except ChildRouteError as exc:
            if exc.status == 405:
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
                ) from None
            raise ArmError(404, "NotFound", f"The emulator does not serve '{unquote(path)}'.") from None
    if method.upper() != expected:
        raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")
    return Route(kind, sub, rg, name, op_id, child, method.upper())


class RateCounters:
    """``x-ms-ratelimit-remaining-subscription-*`` as the legacy hourly limits (12,000 reads, 1,200 writes)."""

    LIMITS: ClassVar[dict[str, int]] = {"reads": 12000, "writes": 1200, "deletes": 15000}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def remaining(self, subscription: str, kind: str) -> int:
        now = time.monotonic()
        with self._lock:
            start, used = self._windows.get((subscription.lower(), kind), (now, 0))
            if now - start > 3600:
                start, used = now, 0
            used += 1
            self._windows[(subscription.lower(), kind)] = (start, used)
        return max(0, self.LIMITS[kind] - used)


class ArmApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.counters = RateCounters()
        self.children = ChildApi(engine)

    def handle(self, req: Request) -> Response:
        request_id = str(uuid.uuid4())
        principal: auth.Principal | None = None
        route: Route | None = None
        tokens: float | None = None
        try:
            principal = auth.authenticate(req.header("authorization"), tenant=self._tenant())
            route = parse_route(req.method, req.path)
            self.engine.complete_due(route.name)  # this service's due operations (a list: every one)
            api_version = self._check_api_version(req, route)
            tokens = self._apply_faults_and_throttling(route, principal)
            response = self._dispatch(req, route, principal, api_version)
        except ArmError as exc:
            response = json_response(exc.status, exc.body(), exc.headers)
        except Exception:
            # A bug must still answer like ARM would (500 + error body), and leave a trace in the log.
            logger.exception("unhandled error for %s %s", req.method, req.path)
            response = json_response(
                500, {"error": {"code": "InternalServerError", "message": "The emulator failed; see its log."}}
            )
        response.principal = principal.object_id if principal else None
        self._decorate(req, response, request_id, route, tokens)
        lost = self.engine.take_fault(("drop_answer",), route.fault_target, route.name) if route is not None else None
        if lost is not None:
            response.substitute = fault_rules.lost_answer(lost, response)
        return response

    # -- headers -------------------------------------------------------------------------------
    def _decorate(
        self, req: Request, response: Response, request_id: str, route: Route | None, tokens: float | None
    ) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Expires": "-1",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": req.header("x-ms-correlation-request-id") or request_id,
            "x-ms-routing-request-id": f"{ROUTING_REGION}:{stamp}:{request_id}",
        }
        if route is not None:
            counter = f"{route.bucket}s"
            # With a token bucket on, its tokens left; else the legacy hourly countdown.
            remaining = int(tokens) if tokens is not None else self.counters.remaining(route.subscription, counter)
            headers[f"x-ms-ratelimit-remaining-subscription-{counter}"] = str(remaining)
        response.headers = headers | response.headers

    # -- checks --------------------------------------------------------------------------------
    def _tenant(self) -> str:
        return str(self.engine.store.get("tenantId", "00000000-0000-0000-0000-000000000000"))

    def _check_api_version(self, req: Request, route: Route) -> str:
        version = req.param("api-version")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in SUPPORTED_API_VERSIONS:
            location = self._location_hint(route)
            regions = ", ".join(sorted(REGION_DISPLAY_NAMES))
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location '{location}' and API version '{version}' "
                f"for type 'service'. The supported api-versions are '{', '.join(SUPPORTED_API_VERSIONS)}'. "
                f"The supported locations are '{regions}'.",
            )
        return version

    def _location_hint(self, route: Route) -> str:
        if route.name:
            svc = self.engine.service(route.name)
            if svc is not None:
                return normalize_location(svc["location"])
        group = self._resource_group(route) if route.resource_group else None
        if group and group.get("location"):
            return normalize_location(group["location"])
        return "global"

    def _apply_faults_and_throttling(self, route: Route, principal: auth.Principal) -> float | None:
        """Injected faults, then ARM's token bucket for the request's kind (per subscription and principal).

        Reads use ``settings.readThrottling`` (250 / 25 per s), writes and deletes ``settings.writeThrottling``
        (200 / 10 per s), each bucket of its own; the tokens left (or None when the bucket is off).
        """
        operation = route.bucket
        fault = self.engine.take_fault(("http", "throttle"), route.fault_target, route.name)
        if fault is not None:
            raise fault_rules.http_fault_error(
                fault, subscription=route.subscription, principal=principal.object_id, operation=operation
            )
        throttling = self.engine.settings()["readThrottling" if operation == "read" else "writeThrottling"]
        if not throttling["enabled"]:
            return None
        allowed, tokens, wait = self.engine.buckets.take(
            f"{operation}|{route.subscription.lower()}|{principal.object_id}",
            float(throttling["burst"]),
            float(throttling["refillPerSecond"]),
        )
        if not allowed:
            raise fault_rules.throttled(route.subscription, principal.object_id, operation, wait)
        return tokens

    def _subscription(self, route: Route) -> dict[str, Any]:
        if not GUID_RE.match(route.subscription):
            raise ArmError(
                400,
                "InvalidSubscriptionId",
                f"The provided subscription identifier '{route.subscription}' is malformed or invalid.",
            )
        for sub in self.engine.store.get("subscriptions", []):
            if sub["subscriptionId"].lower() == route.subscription.lower():
                return dict(sub)
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{route.subscription}' could not be found.")

    def _resource_group(self, route: Route) -> dict[str, Any] | None:
        for sub in self.engine.store.get("subscriptions", []):
            if sub["subscriptionId"].lower() != route.subscription.lower():
                continue
            for group in sub["resourceGroups"]:
                if route.resource_group and group["name"].lower() == route.resource_group.lower():
                    return dict(group)
        return None

    @staticmethod
    def _validate_names(route: Route) -> None:
        rg = route.resource_group
        if rg is not None:
            invalid = sorted({c for c in rg if not RG_ALLOWED_RE.match(c)})
            if invalid:
                raise ArmError(
                    400,
                    "InvalidResourceGroup",
                    f"The provided resource group name '{rg}' has these invalid characters: '{''.join(invalid)}'. "
                    "The name can only be a letter, digit, '-', '.', '(', ')' or '_'.",
                )
            if not 1 <= len(rg) <= RESOURCE_GROUP_MAX or rg.endswith("."):
                raise ArmError(
                    400,
                    "InvalidResourceGroup",
                    f"The provided resource group name '{rg}' is invalid: it must be 1-{RESOURCE_GROUP_MAX} "
                    "characters long and must not end with a period.",
                )
        name = route.name
        if name is not None and (not SERVICE_NAME_RE.match(name) or len(name) > SERVICE_NAME_MAX):
            raise ArmError(
                400,
                "InvalidResourceName",
                f"Resource name '{name}' is invalid. The name must be 1-{SERVICE_NAME_MAX} characters long, "
                "start with a letter, contain only letters, numbers and hyphens, and end with a letter or number.",
            )

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, req: Request, route: Route, principal: auth.Principal, api_version: str) -> Response:
        self._subscription(route)
        self._validate_names(route)
        # The action and scope come from the path and method, as ARM derives them (auth.required_permission).
        auth.authorize(self.engine.store.get("armRoles"), principal, auth.required_permission(req.method, req.path))
        if route.resource_group is not None and self._resource_group(route) is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{route.resource_group}' could not be found.")
        if route.kind == "list" and route.name is None:
            return self._list(req, route, api_version)
        svc = self._find_service(route)
        if route.child is not None:
            return self.children.handle(req, route.child, svc, api_version)
        if route.kind == "get":
            body = render_service(svc)
            return json_response(200, body, {"ETag": f'"{etag_for(svc["etagCounter"])}"'})
        if route.kind == "poll":
            return self._poll(req, route, svc)
        params = parse_parameters(req.body, api_version)
        op = self.engine.start(route.kind, svc["name"], params, api_version, principal.object_id)
        return self._accepted(req, op)

    def _find_service(self, route: Route) -> dict[str, Any]:
        assert route.name is not None and route.resource_group is not None
        svc = self.engine.service(route.name)
        if (
            svc is None
            or svc["subscriptionId"].lower() != route.subscription.lower()
            or svc["resourceGroup"].lower() != route.resource_group.lower()
        ):
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ApiManagement/service/{route.name}' under resource group "
                f"'{route.resource_group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return svc

    def _list(self, req: Request, route: Route, api_version: str) -> Response:
        page_size = int(self.engine.settings()["pageSize"])
        token = req.param("$skiptoken") or "0"
        start = int(token) if token.isdigit() else 0
        # Stored pre-rendered: a page is joined from JSON text, nothing is decoded.
        items, more = self.engine.service_page(route.subscription, route.resource_group, start, page_size)
        body = '{"value": [' + ", ".join(items) + "]"
        if more:
            next_link = f"{req.base_url}{req.path}?api-version={api_version}&$skiptoken={start + page_size}"
            body += ', "nextLink": ' + json.dumps(next_link)
        return Response(200, (body + "}").encode(), {"Content-Type": "application/json; charset=utf-8"})

    def _location(self, req: Request, op: dict[str, Any]) -> str:
        return f"{req.base_url}{op['locationPath']}?api-version={op['apiVersion']}"

    def _accepted(self, req: Request, op: dict[str, Any]) -> Response:
        # Real APIM: 202, empty body, absolute Location to operationresults, Retry-After (apim-arm.md §1.5).
        return Response(202, b"", {"Location": self._location(req, op), "Retry-After": str(self.engine.retry_after())})

    def _poll(self, req: Request, route: Route, svc: dict[str, Any]) -> Response:
        op = self.engine.operation(route.operation_id or "")
        if op is None or op["service"].lower() != svc["name"].lower():
            raise apim_error(
                404, "ResourceNotFound", f"Operation '{route.operation_id}' was not found for service '{svc['name']}'."
            )
        if op["status"] == "Running":
            return self._accepted(req, op)
        if op["status"] == "Succeeded":
            return json_response(200, op["result"])
        error = op["error"]
        return json_response(int(error["status"]), apim_error(error["status"], error["code"], error["message"]).body())
