"""A loopback ``ThreadingHTTPServer`` that speaks TLS per connection: the emulators' one HTTP server.

The TLS handshake runs in the connection's own thread (``finish_request``), not in the accept loop,
so one slow or broken client cannot stall the others; a failed handshake only ends that connection.
Used by the APIM emulator (``emulator/apim/server.py``) and the blob front (``emulator/blobfront``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.certs import TlsFiles

logger = logging.getLogger(__name__)


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """The server side of TLS 1.2 or newer with the local certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


class TlsHttpServer(ThreadingHTTPServer):
    """Serves ``handler_class`` on 127.0.0.1:``port`` (0: a free port), over TLS when ``tls`` is given.

    ``handshake_timeout`` bounds the handshake alone; the handler's own ``timeout`` then applies to
    the requests on the connection.
    """

    daemon_threads = True
    allow_reuse_address = True  # restart on the same port while old connections sit in TIME_WAIT
    request_queue_size = 128

    def __init__(self, port: int, handler_class: type[BaseHTTPRequestHandler], *, tls: TlsFiles | None,
                 handshake_timeout: float) -> None:
        self.ssl_context: ssl.SSLContext | None = server_context(tls) if tls is not None else None
        self.handshake_timeout = handshake_timeout
        super().__init__(("127.0.0.1", port), handler_class)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

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
                request.settimeout(self.handshake_timeout)
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                logger.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)
