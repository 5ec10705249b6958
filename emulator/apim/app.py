"""One running emulator: state, engine, the ARM (HTTPS) and identity (HTTP) servers, the ticker."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from emulator.certs import TlsFiles
from emulator.proxy import ConnectProxy
from emulator.standins import Standins

from .admin_api import PREFIX as ADMIN_PREFIX
from .admin_api import AdminApi
from .arm import ArmApi
from .identity import TOKEN_PATH, IdentityApi
from .operations import Engine
from .server import EmulatorHttpServer
from .state import Store
from .storage import BlobStore
from .wire import Request, Response

logger = logging.getLogger(__name__)

IDENTITY_HEADER_ENV = "APIM_EMULATOR_IDENTITY_HEADER"
TICK_SECONDS = 0.2


@dataclass
class AppConfig:
    state_dir: Path
    seed: Path | dict[str, Any] | None
    tls: TlsFiles
    blob_endpoint: str
    port: int = 0
    identity_port: int = 0
    retry_after: float = 1
    op_duration: float = 2.0
    reset: bool = False
    identity_header: str | None = None
    dataplane_port: int = 0
    proxy_port: int = 0


class EmulatorApp:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.state_dir / "state.sqlite")
        self.engine = Engine(
            self.store,
            BlobStore(config.blob_endpoint, config.tls.ca_bundle),
            retry_after=config.retry_after,
            op_duration=config.op_duration,
        )
        # Before initialize: the stand-ins seed themselves through the engine's seed hooks.
        self.standins = Standins(self.engine, config.tls, config.state_dir)
        self.engine.initialize(config.seed, reset=config.reset)
        self.identity_header = self._identity_header()
        self.arm = ArmApi(self.engine)
        self.admin = AdminApi(self.engine)
        self.identity = IdentityApi(self.engine, self.identity_header)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.arm_server = EmulatorHttpServer(
            config.port,
            self._dispatch_arm,
            name="arm",
            tls=config.tls,
            request_logger=self._log_request,
            log_filter=lambda path: not path.startswith(ADMIN_PREFIX),
        )
        self.identity_server = EmulatorHttpServer(
            config.identity_port, self.identity.handle, name="identity", request_logger=self._log_request
        )
        # Key Vault and the gateways (by Host), reached through the CONNECT proxy (emulator/proxy.py).
        self.dataplane_server = EmulatorHttpServer(
            config.dataplane_port,
            self.standins.handle_dataplane,
            name="dataplane",
            tls=config.tls,
            request_logger=self._log_request,
        )
        assert self.dataplane_server.ssl_context is not None
        self.dataplane_server.ssl_context.sni_callback = self._sni
        self.proxy = ConnectProxy(config.proxy_port, self.dataplane_server.port, self.standins.resolve)
        self.standins.on_outage_change = self.proxy.close_tunnels

    def _identity_header(self) -> str:
        """Explicit value, else the environment, else the one kept in the state (stable across restarts)."""
        header = self.config.identity_header or os.environ.get(IDENTITY_HEADER_ENV)
        if not header:
            with self.engine.lock:
                header = self.store.get("identityHeader") or secrets.token_urlsafe(24)
        with self.engine.lock:
            self.store.put("identityHeader", header)
        return header

    def _sni(self, sock: Any, server_name: str | None, context: Any) -> None:
        chosen = self.standins.sni_context(server_name)
        if chosen is not None:
            sock.context = chosen

    def _dispatch_arm(self, req: Request) -> Response:
        if req.path == ADMIN_PREFIX or req.path.startswith(ADMIN_PREFIX + "/"):
            parts = [unquote(p) for p in req.path[len(ADMIN_PREFIX) :].strip("/").split("/") if p]
            answered = self.standins.handle_admin(req, parts)
            return answered if answered is not None else self.admin.handle(req)
        # The stand-in providers beside APIM (emulator/standins.py); everything else is APIM's.
        answered = self.standins.handle_arm(req)
        return answered if answered is not None else self.arm.handle(req)

    def _log_request(self, entry: dict[str, Any]) -> None:
        self.store.log_request(entry)

    @property
    def arm_url(self) -> str:
        return f"https://127.0.0.1:{self.arm_server.port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.identity_server.port}{TOKEN_PATH}"

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "armUrl": self.arm_url,
            "armPort": self.arm_server.port,
            "identityEndpoint": self.identity_endpoint,
            "identityPort": self.identity_server.port,
            "identityHeader": self.identity_header,
            "dataplanePort": self.dataplane_server.port,
            "proxyUrl": self.proxy.url,
            "caBundle": str(self.config.tls.ca_bundle),
            "blobEndpoint": self.config.blob_endpoint,
            "stateDir": str(self.config.state_dir),
        }

    def start(self) -> None:
        for server in (self.arm_server, self.identity_server, self.dataplane_server):
            thread = threading.Thread(target=server.serve_forever, name=f"{server.server_label}-server", daemon=True)
            thread.start()
            self._threads.append(thread)
        proxy_thread = threading.Thread(target=self.proxy.serve_forever, name="proxy", daemon=True)
        proxy_thread.start()
        self._threads.append(proxy_thread)
        ticker = threading.Thread(target=self._tick, name="op-ticker", daemon=True)
        ticker.start()
        self._threads.append(ticker)
        logger.info("ARM emulator on %s, identity endpoint on %s", self.arm_url, self.identity_endpoint)

    def _tick(self) -> None:
        # Operations also complete lazily on requests; the ticker makes blobs appear without polling.
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.engine.complete_due()
            except Exception:
                logger.exception("background completion failed")

    def write_ready_file(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2))
        tmp.replace(path)

    def stop(self) -> None:
        self._stop.set()
        for server in (self.arm_server, self.identity_server, self.dataplane_server, self.proxy):
            if self._threads:  # shutdown() would wait forever for a loop that never ran
                server.shutdown()
            server.server_close()
        self.proxy.close_tunnels()
        for thread in self._threads:
            thread.join(timeout=5)
        self.engine.close()
        self.engine.blobs.close()
        self.store.close()
