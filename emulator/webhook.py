"""A local webhook receiver that records every JSON announcement (demo and tests).

``received`` holds the JSON bodies, in order; ``headers`` the request headers of each (lower-cased names),
so a test can read the CloudEvents attributes (``ce-id``) that travel beside an unchanged body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20))
                try:
                    data: dict[str, Any] = json.loads(body or b"{}")
                except ValueError:
                    data = {"invalid": True}
                with outer._lock:  # bodies and headers stay in step when deliveries overlap
                    outer.headers.append({name.lower(): value for name, value in self.headers.items()})
                    outer.received.append(data)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        """Forget what was received (bodies and headers alike)."""
        with self._lock:
            self.received.clear()
            self.headers.clear()
