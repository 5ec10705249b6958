"""HTTP plumbing: the emulators' TLS server (``emulator.tls_server``), body limits, the request log.

Handlers never see sockets: each request becomes a ``wire.Request`` and is answered by a callable
returning a ``wire.Response``.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from emulator.certs import TlsFiles
from emulator.tls_server import TlsHttpServer

from .state import iso
from .wire import Request, Response, json_response

logger = logging.getLogger(__name__)

# Bodies larger than this are not read at all: the connection is answered 400 and closed.
HARD_BODY_LIMIT = 8 * 1024 * 1024
HOST_RE = re.compile(r"^(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

Handler = Callable[[Request], Response]
RequestLogger = Callable[[dict[str, Any]], None]


class EmulatorHttpServer(TlsHttpServer):
    """One endpoint (ARM or identity): each request answered by ``handler``, logged by ``request_logger``."""

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
        super().__init__(port, _RequestHandler, tls=tls, handshake_timeout=30)


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
