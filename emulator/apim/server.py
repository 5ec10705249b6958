"""HTTP plumbing: stdlib ``ThreadingHTTPServer``, TLS per connection, body limits, the request log.

Handlers never see sockets: each request becomes a ``wire.Request`` and is answered by a callable
returning a ``wire.Response``. TLS handshakes run in the connection's own thread (not in the accept
loop), so one slow client cannot stall the others.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.certs import TlsFiles

from .state import iso
from .wire import Request, Response, json_response

logger = logging.getLogger(__name__)

# Bodies larger than this are not read at all: the connection is answered 400 and closed.
HARD_BODY_LIMIT = 8 * 1024 * 1024
HOST_RE = re.compile(r"^(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

Handler = Callable[[Request], Response]
RequestLogger = Callable[[dict[str, Any]], None]


class EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart on the same port while old connections sit in TIME_WAIT
    request_queue_size = 128

    def __init__(
        self,
        port: int,
        handler: Handler,
        *,
        name: str,
        tls: TlsFiles | None = None,
        request_logger: RequestLogger | None = None,
        log_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self.app_handler = handler
        self.server_label = name
        self.request_logger = request_logger
        self.log_filter = log_filter
        self.ssl_context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self.ssl_context = context
        super().__init__(("127.0.0.1", port), _RequestHandler)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The status line and headers, then the body, leave as separate segments: without TCP_NODELAY the
        # body waits for the client's delayed ACK (~40 ms per answer with a body, e.g. every PUT).
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                request.settimeout(30)
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                logger.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS handshake per client, not per request
    server_version = "apim-dr-emulator"
    timeout = 60

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is too large to read (the connection is then closed)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            return None
        if length < 0 or length > HARD_BODY_LIMIT:
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > HARD_BODY_LIMIT:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _base_url(self) -> str:
        host = self.headers.get("Host") or ""
        if not HOST_RE.match(host):
            host = f"127.0.0.1:{self.server.port}"
        return f"{self.server.scheme}://{host}"

    def _serve(self) -> None:
        started = time.time()
        raw_path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            response = json_response(
                400,
                {
                    "error": {
                        "code": "InvalidParameters",
                        "message": "Invalid parameter: The request content is too large or malformed.",
                        "details": None,
                        "innerError": None,
                    }
                },
            )
            response.close = True
        else:
            request = Request(
                method=self.command,
                path=raw_path,
                raw_query=raw_query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                base_url=self._base_url(),
            )
            response = self.server.app_handler(request)
        sent = response.substitute or response
        # Log before answering: a client that has the answer must find it in the log.
        if self.server.request_logger is not None and (
            self.server.log_filter is None or self.server.log_filter(raw_path)
        ):
            entry: dict[str, Any] = {
                "server": self.server.server_label,
                "time": iso(started),
                "method": self.command,
                "path": raw_path,
                "query": raw_query,
                "status": response.status,
                "principal": response.principal,
                "durationMs": round((time.time() - started) * 1000, 1),
            }
            if response.substitute is not None:
                # The request was handled (status) but the client got this instead.
                entry["droppedAnswer"] = "close" if sent.abort else sent.status
            self.server.request_logger(entry)
        self._write(sent)

    def _write(self, response: Response) -> None:
        if response.abort:
            # No status line, nothing: the client sees the connection end (RemoteDisconnected / reset).
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if response.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and response.body:
                self.wfile.write(response.body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
