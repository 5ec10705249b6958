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

__all__ = ["HttpFrontEnd", "HttpRoute", "response_parts"]

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


def _handler_class(front: HttpFrontEnd) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "funchost"

        def log_message(self, format: str, *args: Any) -> None:
            # The request line may carry a function key in ?code=; never log it.
            logger.debug("%s - %s", self.address_string(), _REDACT_CODE.sub(r"\1***", format % args))

        def _send(self, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                  *, close: bool = False) -> None:
            self.send_response(status)
            for name, value in headers or []:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            if close:
                # The request body was not read, so the connection cannot be reused.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _handle(self) -> None:
            try:
                self._dispatch()
            except Exception:
                logger.exception("HTTP front end failed on %s %s", self.command, self.path)
                with contextlib.suppress(OSError):
                    self._send(500, close=True)

        def _dispatch(self) -> None:
            if len(self.path) > MAX_URL_LENGTH:
                self._send(HTTPStatus.REQUEST_URI_TOO_LONG, close=True)
                return
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            key = self.headers.get("x-functions-key") or query.get("code")
            if parts.path.strip("/").lower().startswith("admin/"):
                self._admin(parts.path.strip("/"), key)
                return
            if parts.path.strip("/") == "":
                self._send(200, [("Content-Type", "text/plain; charset=utf-8")],
                           b"Your Functions app is up and running (apim-dr host stand-in).\n")
                return
            relative = front.relative_path(parts.path)
            matches = []
            if relative is not None:
                for route in front.routes:
                    values = route.template.match(relative)
                    if values is not None:
                        matches.append((route, values))
            if not matches:
                self._send(HTTPStatus.NOT_FOUND, close=self._has_body())
                return
            method = self.command.upper()
            allowed = [(r, v) for r, v in matches if r.methods is None or method in r.methods]
            if not allowed:
                methods = sorted({m for r, _ in matches for m in (r.methods or ())})
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", ", ".join(methods))], close=self._has_body())
                return
            route, route_params = allowed[0]
            if not front.keys.allows(route.auth_level, key):
                self._send(HTTPStatus.UNAUTHORIZED, close=self._has_body())
                return
            body = self._read_body()
            if body is None:
                return
            self._invoke(route, route_params, query, body)

        def _has_body(self) -> bool:
            return bool(self.headers.get("Content-Length", "0") not in ("", "0") or
                        self.headers.get("Transfer-Encoding"))

        def _read_body(self) -> bytes | None:
            """The request body, or None after answering 411/413 (too large, or unreadable)."""
            limit = front.max_request_body
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked(limit)
            length_text = self.headers.get("Content-Length") or "0"
            try:
                length = int(length_text)
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, close=True)
                return None
            if length > limit:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
                return None
            return self.rfile.read(length) if length > 0 else b""

        def _read_chunked(self, limit: int) -> bytes | None:
            data = bytearray()
            while True:
                size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    self._send(HTTPStatus.BAD_REQUEST, close=True)
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(data)
                if len(data) + size > limit:
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
                    return None
                data += self.rfile.read(size)
                self.rfile.readline(16)

        def _invoke(self, route: HttpRoute, route_params: dict[str, str], query: dict[str, str],
                    body: bytes) -> None:
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            host = self.headers.get("Host") or f"127.0.0.1:{front.port}"
            request = func.HttpRequest(
                method=self.command.upper(),
                url=f"http://{host}{self.path}",
                headers=headers,
                params=query,
                route_params=route_params,
                body=body,
            )
            details: dict[str, Any] = {"method": request.method, "path": urlsplit(self.path).path}
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
            self._send(status, out_headers, out_body)

        def _admin(self, path: str, key: str | None) -> None:
            if not front.keys.allows("admin", key):
                self._send(HTTPStatus.UNAUTHORIZED, close=self._has_body())
                return
            segments = path.split("/")
            if self.command == "GET" and segments[1:] == ["host", "status"]:
                body = json.dumps({"state": "Running", "version": "funchost"}).encode()
                self._send(200, [("Content-Type", "application/json; charset=utf-8")], body)
                return
            if self.command == "POST" and len(segments) == 3 and segments[1] == "functions":
                raw = self._read_body()
                if raw is None:
                    return
                try:
                    payload = json.loads(raw or b"{}")
                    text = str(payload.get("input", "")) if isinstance(payload, dict) else ""
                except ValueError:
                    text = ""
                if front.admin_invoke(segments[2], text):
                    self._send(HTTPStatus.ACCEPTED)
                else:
                    self._send(HTTPStatus.NOT_FOUND)
                return
            self._send(HTTPStatus.NOT_FOUND, close=self._has_body())

    for method in _METHODS:
        setattr(Handler, f"do_{method}", Handler._handle)
    return Handler
