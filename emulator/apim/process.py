"""``ApimEmulator``: run the emulator as a child process (``python -m emulator.apim``).

A real process makes restart tests real: ``restart()`` kills it and starts a new one on the same
ports with the same state directory, so Location URLs and continuation tokens stay valid.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from emulator.certs import TlsFiles
from emulator.ports import free_port, stop_process_group

from .admin import EmulatorAdmin
from .app import IDENTITY_HEADER_ENV
from .seed import load_seed

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ApimEmulator:
    def __init__(
        self,
        state_dir: Path,
        seed: dict[str, Any] | Path,
        tls: TlsFiles,
        *,
        blob_endpoint: str,
        retry_after: float = 1,
        op_duration: float = 2.0,
        port: int | None = None,
        identity_port: int | None = None,
        dataplane_port: int | None = None,
        proxy_port: int | None = None,
        startup_timeout: float = 30.0,
        reset: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.tls = tls
        self.blob_endpoint = blob_endpoint.rstrip("/")
        self.retry_after = retry_after
        self.op_duration = op_duration
        self.port = port or free_port()
        self.identity_port = identity_port or free_port()
        self.dataplane_port = dataplane_port or free_port()
        self.proxy_port = proxy_port or free_port()
        self.identity_header = secrets.token_urlsafe(24)
        self.startup_timeout = startup_timeout
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(seed, dict):
            self.seed_path = self.state_dir / "seed.json"
            self.seed_path.write_text(json.dumps(seed, indent=2))
        else:
            self.seed_path = Path(seed)
        load_seed(self.seed_path)  # fail here, with the seed's own error, not in the child
        self.ready_file = self.state_dir / "ready.json"
        self.log_path = self.state_dir / "emulator.log"
        self.admin = EmulatorAdmin(self.arm_url, tls.ca_bundle)
        self._proc: subprocess.Popen[bytes] | None = None
        # The first start() begins from the seed unless reset=False (then existing state is resumed).
        self._started_once = not reset
        atexit.register(self.stop)

    # -- endpoints -----------------------------------------------------------------------------
    @property
    def arm_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.identity_port}/msi/token"

    @property
    def proxy_url(self) -> str:
        """The CONNECT proxy through which ``https://{vault}.vault.azure.net`` and the gateways answer."""
        return f"http://127.0.0.1:{self.proxy_port}"

    def proxy_env(self) -> dict[str, str]:
        """What a client process needs besides ``env()`` to reach Key Vault and the gateways by their
        real names (emulator/proxy.py): the proxy for HTTPS, and loopback kept direct."""
        return {"HTTPS_PROXY": self.proxy_url, "NO_PROXY": "127.0.0.1,localhost"}

    @property
    def ca_bundle(self) -> Path:
        return self.tls.ca_bundle

    def env(self) -> dict[str, str]:
        """What a client process needs: the managed-identity endpoint and the CA bundle."""
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ApimEmulator:
        """Start the child and wait until both servers listen. The first start begins from the seed."""
        if self.running:
            return self
        self.ready_file.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "emulator.apim",
            "--seed", str(self.seed_path),
            "--state-dir", str(self.state_dir),
            "--port", str(self.port),
            "--identity-port", str(self.identity_port),
            "--dataplane-port", str(self.dataplane_port),
            "--proxy-port", str(self.proxy_port),
            "--blob-endpoint", self.blob_endpoint,
            "--tls-cert", str(self.tls.cert),
            "--tls-key", str(self.tls.key),
            "--retry-after", str(self.retry_after),
            "--op-duration", str(self.op_duration),
            "--ready-file", str(self.ready_file),
        ]  # fmt: skip
        if not self._started_once:
            cmd.append("--reset")
        env = dict(os.environ)
        env[IDENTITY_HEADER_ENV] = self.identity_header
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._started_once = True
        deadline = time.monotonic() + self.startup_timeout
        while not self.ready_file.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"the APIM emulator exited with {self._proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"the APIM emulator was not ready after {self.startup_timeout:.0f} s: {self._log_tail()}"
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, *, hard: bool = False) -> ApimEmulator:
        """Stop (or kill, with ``hard``) and start again on the same ports and state."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> ApimEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
