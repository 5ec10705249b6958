"""Start and stop Azurite (npm ``azurite``, pinned to 3.35.0 in package.json) on free ports.

Azurite runs over HTTPS with the local certificate and ``--oauth basic``, so one instance
serves both the connection-string (shared key) path and the managed-identity (bearer
token) path. Extra storage accounts (e.g. the backup account) are declared through
``AZURITE_ACCOUNTS``.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .certs import TlsFiles
from .ports import free_port, stop_process_group, wait_for_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_JS = PROJECT_ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"

# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    workdir: Path
    tls: TlsFiles | None
    accounts: dict[str, str] = field(default_factory=dict)
    oauth: bool = True
    in_memory: bool = True
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def all_accounts(self) -> dict[str, str]:
        return {DEV_ACCOUNT: DEV_KEY, **self.accounts}

    def start(self, *, timeout: float = 60.0) -> Azurite:
        if not AZURITE_JS.exists():
            raise RuntimeError(
                f"Azurite is not installed ({AZURITE_JS} missing). Run `make setup` (npm ci installs azurite 3.35.0)."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.blob_port = self.blob_port or free_port()
        self.queue_port = self.queue_port or free_port()
        self.table_port = self.table_port or free_port()
        cmd = [
            "node", str(AZURITE_JS),
            "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
            "--blobPort", str(self.blob_port), "--queuePort", str(self.queue_port), "--tablePort", str(self.table_port),
        ]
        # Azurite refuses --location together with --inMemoryPersistence.
        cmd += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.workdir)]
        if self.tls:
            cmd += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
            if self.oauth:
                cmd += ["--oauth", "basic"]
        env = dict(os.environ)
        env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in self.all_accounts().items())
        log = (self.workdir / "azurite.log").open("ab")
        self._proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.workdir
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        for port in (self.blob_port, self.queue_port, self.table_port):
            while True:
                if self._proc.poll() is not None:
                    tail = (self.workdir / "azurite.log").read_text(errors="replace")[-500:]
                    raise RuntimeError(f"Azurite exited with {self._proc.returncode}: {tail}")
                try:
                    wait_for_port(port, timeout=0.5)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoint(self, service: str, account: str = DEV_ACCOUNT) -> str:
        port = {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}[service]
        return f"{self.scheme}://127.0.0.1:{port}/{account}"

    def connection_string(self, account: str = DEV_ACCOUNT) -> str:
        key = self.all_accounts()[account]
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={account};AccountKey={key};"
            f"BlobEndpoint={self.endpoint('blob', account)};"
            f"QueueEndpoint={self.endpoint('queue', account)};"
            f"TableEndpoint={self.endpoint('table', account)};"
        )
