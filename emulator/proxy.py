"""The local network's name resolution: an HTTP ``CONNECT`` proxy for the Azure host names the
stand-ins answer for.

Why a proxy: the official Key Vault client checks that the vault's host ends with the domain of the
resource its 401 challenge names (``azure/keyvault/secrets/_shared/challenge_auth_policy.py``,
``_validate_challenge_resource``: ``https://vault.azure.net`` needs a host ``*.vault.azure.net``),
and nothing on this machine resolves such names (``*.localhost`` does not resolve here either). So
clients keep the real URLs (``https://kv-contoso.vault.azure.net``, ``https://apim-x.azure-api.net``,
``https://api.contoso.com``) and reach them through this proxy, set the ordinary way
(``HTTPS_PROXY=http://127.0.0.1:<port>``, ``NO_PROXY=127.0.0.1,localhost``), which ``requests`` and
so azure-core honour. TLS stays end to end: the proxy only pipes bytes to the emulator's data-plane
server, whose certificate (``emulator/certs.py``) names ``*.vault.azure.net`` and ``*.azure-api.net``.

A host the stand-ins do not serve, or one in a region that is down, gets ``502 Bad Gateway`` to its
``CONNECT``: the client sees a connection failure (``requests`` ``ProxyError``, azure-core
``ServiceRequestError``), as it would for a name that does not resolve or a region that does not answer.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import socketserver
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# host (lower-case, no port) -> None when the tunnel may open, else the reason it may not
Resolver = Callable[[str], str | None]
IDLE_SECONDS = 120
MAX_HEADER_BYTES = 16 * 1024


class ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream_port: int, resolver: Resolver) -> None:
        self.upstream_port = upstream_port
        self.resolver = resolver
        self.tunnels: set[socket.socket] = set()
        self.tunnels_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _TunnelHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close_tunnels(self) -> None:
        """End every open tunnel (a region going down cuts existing keep-alive connections too)."""
        with self.tunnels_lock:
            tunnels, self.tunnels = self.tunnels, set()
        for sock in tunnels:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("proxy connection error from %s", client_address, exc_info=True)


class _TunnelHandler(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > MAX_HEADER_BYTES:
                self._answer(client, 431, "Request Header Fields Too Large", "headers too large")
                return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or parts[0].upper() != "CONNECT":
            self._answer(client, 405, "Method Not Allowed", "this proxy only opens CONNECT tunnels")
            return
        host, _, port = parts[1].rpartition(":")
        host = host.strip("[]").lower()
        if not host or port != "443":
            self._answer(client, 502, "Bad Gateway", f"no route to {parts[1]}")
            return
        reason = self.server.resolver(host)
        if reason is not None:
            self._answer(client, 502, "Bad Gateway", reason)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.upstream_port), timeout=10)
        except OSError as exc:
            self._answer(client, 502, "Bad Gateway", f"the emulator's data plane does not answer ({exc})")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        with self.server.tunnels_lock:
            self.server.tunnels.update((client, upstream))
        try:
            _pipe(client, upstream)
        finally:
            with self.server.tunnels_lock:
                self.server.tunnels.discard(client)
                self.server.tunnels.discard(upstream)
            upstream.close()

    @staticmethod
    def _answer(client: socket.socket, status: int, phrase: str, reason: str) -> None:
        body = reason.encode()
        client.sendall(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )


def _pipe(a: socket.socket, b: socket.socket) -> None:
    a.settimeout(None)
    b.settimeout(None)
    sockets = [a, b]
    while True:
        readable, _, broken = select.select(sockets, [], sockets, IDLE_SECONDS)
        if broken or not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            other = b if sock is a else a
            try:
                other.sendall(data)
            except OSError:
                return
