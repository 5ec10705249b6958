"""The HTTP front end: ``/{routePrefix}/{route}`` to HTTP-triggered functions, with function keys.

Deliberate differences from the real host: a configurable request body limit (1 MiB by default;
the platform allows 100 MB), host-level keys only (no per-function keys), plain HTTP, and
``POST /admin/functions/{name}`` only for timer and queue functions.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from .invoke import FAILURE, Invoker
from .metadata import FunctionSpec
from .routes import RouteTemplate

__all__ = [
    "Answer",
    "HttpFrontEnd",
    "HttpRoute",
    "admin_answer",
    "function_request",
    "invoke_route",
    "read_request_body",
    "resolve_route",
    "response_parts",
]

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 4096  # the host's limit on the request URL
_REDACT_CODE = re.compile(r"([?&]code=)[^&\s\"]*", re.IGNORECASE)
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class HttpRoute:
    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    auth_level: str  # anonymous | function | admin


class _KeyRing:
    def __init__(self, function_keys: Mapping[str, str], master_key: str) -> None:
        self._function_keys = [k for k in function_keys.values() if k]
        self._master = master_key

    def allows(self, level: str, key: str | None) -> bool:
        if level == "anonymous":
            return True
        if not key:
            return False
        # Compare every key in constant time so the answer does not leak which key almost matched.
        is_master = hmac.compare_digest(key.encode(), self._master.encode())
        if level == "admin":
            return is_master
        is_function_key = any(hmac.compare_digest(key.encode(), k.encode()) for k in self._function_keys)
        return is_master or is_function_key


def response_parts(value: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for what an HTTP function returned."""
    if isinstance(value, func.HttpResponse):
        headers = [(str(k), str(v)) for k, v in value.headers.items()]
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = value.mimetype or "text/plain"
            if mimetype.startswith("text/") or mimetype in ("application/json", "application/xml"):
                mimetype = f"{mimetype}; charset={value.charset or 'utf-8'}"
            headers.append(("Content-Type", mimetype))
        return int(value.status_code), headers, value.get_body() or b""
    if isinstance(value, str):
        return 200, [("Content-Type", "text/plain; charset=utf-8")], value.encode("utf-8")
    if isinstance(value, bytes):
        return 200, [("Content-Type", "application/octet-stream")], value
    if value is None:
        return 204, [], b""
    raise TypeError(f"an HTTP function must return func.HttpResponse, str or bytes, not {type(value).__name__}")


class HttpFrontEnd:
    def __init__(
        self,
        *,
        routes: list[HttpRoute],
        route_prefix: str,
        invoker: Invoker,
        function_keys: Mapping[str, str],
        master_key: str,
        max_request_body: int,
        admin_invoke: Callable[[str, str], bool],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.routes = sorted(routes, key=lambda r: r.template.sort_key())
        self.route_prefix = route_prefix.strip("/")
        self.invoker = invoker
        self.keys = _KeyRing(function_keys, master_key)
        self.max_request_body = max_request_body
        self.admin_invoke = admin_invoke
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() fast (shutdown() waits for the serve loop to notice).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="funchost-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        logger.info("HTTP functions listening on %s/%s", self.url, self.route_prefix)
        for route in self.routes:
            methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
            logger.info("  %s: [%s] %s/%s/%s", route.spec.name, methods, self.url, self.route_prefix,
                        route.template.template)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread.is_alive():
            self._thread.join(10)

    def relative_path(self, path: str) -> str | None:
        """The path under the route prefix, or None when the request is outside it."""
        path = path.strip("/")
        if not self.route_prefix:
            return path
        prefix = self.route_prefix.lower()
        lowered = path.lower()
        if lowered == prefix:
            return ""
        if lowered.startswith(prefix + "/"):
            return path[len(prefix) + 1:]
        return None


# -- request handling, in named parts ----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the front end sends itself (not a function's): status, headers, body, and whether
    the connection must close (the request body was not read)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    close: bool = False


def read_request_body(rfile: Any, headers: Any, limit: int) -> bytes | Answer:
    """The request body, or the answer to send instead: 400 (unreadable length), 413 (above ``limit``)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return _read_chunked(rfile, limit)
    try:
        length = int(headers.get("Content-Length") or "0")
    except ValueError:
        return Answer(HTTPStatus.BAD_REQUEST, close=True)
    if length > limit:
        return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
    return rfile.read(length) if length > 0 else b""


def _read_chunked(rfile: Any, limit: int) -> bytes | Answer:
    data = bytearray()
    while True:
        size_line = rfile.readline(1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            return Answer(HTTPStatus.BAD_REQUEST, close=True)
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(data)
        if len(data) + size > limit:
            return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
        data += rfile.read(size)
        rfile.readline(16)


def has_request_body(headers: Any) -> bool:
    return bool(headers.get("Content-Length", "0") not in ("", "0") or headers.get("Transfer-Encoding"))


def resolve_route(front: HttpFrontEnd, path: str, method: str,
                  has_body: bool) -> tuple[HttpRoute, dict[str, str]] | Answer:
    """The function route for ``path`` and ``method`` (literal routes first), or 404 / 405 with ``Allow``."""
    relative = front.relative_path(path)
    matches = []
    if relative is not None:
        for route in front.routes:
            values = route.template.match(relative)
            if values is not None:
                matches.append((route, values))
    if not matches:
        return Answer(HTTPStatus.NOT_FOUND, close=has_body)
    allowed = [(r, v) for r, v in matches if r.methods is None or method in r.methods]
    if not allowed:
        methods = sorted({m for r, _ in matches for m in (r.methods or ())})
        return Answer(HTTPStatus.METHOD_NOT_ALLOWED, (("Allow", ", ".join(methods)),), close=has_body)
    return allowed[0]


def admin_answer(front: HttpFrontEnd, command: str, path: str, key: str | None, *, has_body: bool,
                 read_body: Callable[[], bytes | Answer]) -> Answer:
    """``/admin/...`` with the master key: host status, and running a timer or queue function."""
    if not front.keys.allows("admin", key):
        return Answer(HTTPStatus.UNAUTHORIZED, close=has_body)
    segments = path.split("/")
    if command == "GET" and segments[1:] == ["host", "status"]:
        body = json.dumps({"state": "Running", "version": "funchost"}).encode()
        return Answer(200, (("Content-Type", "application/json; charset=utf-8"),), body)
    if command == "POST" and len(segments) == 3 and segments[1] == "functions":
        raw = read_body()
        if isinstance(raw, Answer):
            return raw
        try:
            payload = json.loads(raw or b"{}")
            text = str(payload.get("input", "")) if isinstance(payload, dict) else ""
        except ValueError:
            text = ""
        return Answer(HTTPStatus.ACCEPTED if front.admin_invoke(segments[2], text) else HTTPStatus.NOT_FOUND)
    return Answer(HTTPStatus.NOT_FOUND, close=has_body)


def function_request(command: str, raw_path: str, headers: Any, *, host_header: str,
                     route_params: dict[str, str], query: dict[str, str], body: bytes) -> func.HttpRequest:
    """The ``func.HttpRequest`` the worker hands to the function (repeated headers joined with ``, ``)."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return func.HttpRequest(method=command.upper(), url=f"http://{host_header}{raw_path}", headers=joined,
                            params=query, route_params=route_params, body=body)


def invoke_route(front: HttpFrontEnd, route: HttpRoute, request: func.HttpRequest) -> Answer:
    """Run the function and turn what it returned into the answer; a failure answers 500 with no body."""
    details: dict[str, Any] = {"method": request.method, "path": urlsplit(request.url).path}
    result = front.invoker.invoke(
        route.spec, request, trigger="http", reason=f"HTTP request {request.method} {details['path']}",
        details=details,
    )
    status, out_body = 500, b""
    out_headers: list[tuple[str, str]] = []
    if result.exception is None:
        try:
            status, out_headers, out_body = response_parts(result.value)
        except TypeError as exc:
            logger.error("Functions.%s: %s", route.spec.name, exc)
            result.record.outcome, result.record.error = FAILURE, f"TypeError: {exc}"
    # A failed function answers 500 with an empty body: the traceback is logged, never sent.
    result.record.details["status"] = status
    front.invoker.publish(result.record)
    return Answer(status, tuple(out_headers), out_body)


class _Handler(BaseHTTPRequestHandler):
    """One request: route it (admin, root, function), check the key, read the body, invoke, answer."""

    protocol_version = "HTTP/1.1"
    server_version = "funchost"
    front: HttpFrontEnd  # set on the per-front-end subclass

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may carry a function key in ?code=; never log it.
        logger.debug("%s - %s", self.address_string(), _REDACT_CODE.sub(r"\1***", format % args))

    def handle_any(self) -> None:
        # The request thread is the host's (the function runs on the worker's pool): name it so.
        threading.current_thread().name = "funchost-http-request"
        try:
            self._send(self._answer())
        except Exception:
            logger.exception("HTTP front end failed on %s %s", self.command, self.path)
            with contextlib.suppress(OSError):
                self._send(Answer(500, close=True))

    def _answer(self) -> Answer:
        if len(self.path) > MAX_URL_LENGTH:
            return Answer(HTTPStatus.REQUEST_URI_TOO_LONG, close=True)
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        key = self.headers.get("x-functions-key") or query.get("code")
        path = parts.path.strip("/")
        has_body = has_request_body(self.headers)
        if path.lower().startswith("admin/"):
            return admin_answer(self.front, self.command, path, key, has_body=has_body, read_body=self._read_body)
        if path == "":
            return Answer(200, (("Content-Type", "text/plain; charset=utf-8"),),
                          b"Your Functions app is up and running (apim-dr host stand-in).\n")
        resolved = resolve_route(self.front, parts.path, self.command.upper(), has_body)
        if isinstance(resolved, Answer):
            return resolved
        route, route_params = resolved
        if not self.front.keys.allows(route.auth_level, key):
            return Answer(HTTPStatus.UNAUTHORIZED, close=has_body)
        body = self._read_body()
        if isinstance(body, Answer):
            return body
        host_header = self.headers.get("Host") or f"127.0.0.1:{self.front.port}"
        request = function_request(self.command, self.path, self.headers, host_header=host_header,
                                   route_params=route_params, query=query, body=body)
        return invoke_route(self.front, route, request)

    def _read_body(self) -> bytes | Answer:
        return read_request_body(self.rfile, self.headers, self.front.max_request_body)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.close:
            # The request body was not read, so the connection cannot be reused.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and answer.body:
            self.wfile.write(answer.body)


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler.handle_any)


def _handler_class(front: HttpFrontEnd) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to ``front`` (ThreadingHTTPServer instantiates it per request)."""
    return type("Handler", (_Handler,), {"front": front})
