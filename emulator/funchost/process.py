"""``FunctionsHostProcess``: start ``python -m emulator.funchost`` as a subprocess and watch its output."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .crash import CRASH_EXIT_CODE

__all__ = ["FunctionsHostProcess"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class FunctionsHostProcess:
    """A host stand-in in its own process: a real crash (``--crash-at``) kills only it.

    The settings are written to a ``local.settings.json`` (mode 0600) in ``workdir`` (a temporary
    folder by default). Keys are made here when not given, so callers always know them.
    Output (stdout and stderr) is kept in :attr:`lines`; invocation events in :attr:`invocations`.
    With ``crash_at``, ``start()`` also returns when the process died at a crash point before it was ready.
    """

    def __init__(
        self,
        project_dir: Path,
        settings: Mapping[str, str],
        *,
        app_module: str = "function_app",
        http_port: int | None = 0,
        timers: bool = False,
        queues: bool = True,
        crash_at: Sequence[str] = (),
        function_keys: Mapping[str, str] | None = None,
        master_key: str | None = None,
        queue_lease: float | None = None,
        queue_overrides: Mapping[str, Any] | None = None,
        workdir: Path | None = None,
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
        echo: bool = False,
        instance_id: str | None = None,
        clock_file: Path | None = None,
        processor_count: int | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.settings = dict(settings)
        self.app_module = app_module
        self.http_port = http_port
        self.timers = timers
        self.queues = queues
        self.crash_at = list(crash_at)
        self.function_keys = dict(function_keys) if function_keys else {"default": secrets.token_urlsafe(32)}
        self.master_key = master_key or secrets.token_urlsafe(32)
        self.queue_lease = queue_lease
        self.queue_overrides = dict(queue_overrides or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="funchost-"))
        self.python = python
        self.extra_args = list(extra_args)
        self.echo = echo
        self.instance_id = instance_id
        self.clock_file = Path(clock_file) if clock_file else None
        self.processor_count = processor_count
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.ready: dict[str, Any] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------------

    def command(self) -> list[str]:
        # "--flag=value" throughout: a random key may start with "-", which argparse would take for a flag.
        settings_file = self.workdir / "local.settings.json"
        cmd = [self.python, "-m", "emulator.funchost", f"--project={self.project_dir}",
               f"--app-module={self.app_module}", f"--settings={settings_file}", f"--master-key={self.master_key}"]
        cmd += ["--no-http"] if self.http_port is None else [f"--http-port={self.http_port}"]
        cmd += [f"--function-key={name}={key}" for name, key in self.function_keys.items()]
        if self.timers:
            cmd.append("--timers")
        if not self.queues:
            cmd.append("--no-queues")
        cmd += [f"--crash-at={spec}" for spec in self.crash_at]
        if self.queue_lease is not None:
            cmd.append(f"--queue-lease={self.queue_lease}")
        for name, value in self.queue_overrides.items():
            cmd.append(f"--queue-option={name}={value if isinstance(value, str) else json.dumps(value)}")
        if self.instance_id:
            cmd.append(f"--instance-id={self.instance_id}")
        if self.clock_file:
            cmd.append(f"--clock-file={self.clock_file}")
        if self.processor_count is not None:
            cmd.append(f"--processor-count={self.processor_count}")
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> FunctionsHostProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings_file = self.workdir / "local.settings.json"
        # Connection strings are secrets: create the file private before writing them.
        fd = os.open(settings_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"IsEncrypted": False, "Values": self.settings}, handle)
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        self._proc = subprocess.Popen(
            self.command(), cwd=self.project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="funchost-process-reader", daemon=True)
        self._reader.start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self.ready is not None or self._reader_done, timeout)
        if self.ready is None:
            exited = None
            if ok:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    exited = self._proc.wait(5)
            if self.crash_at and exited == CRASH_EXIT_CODE:
                # A crash point may be reached while the host is still starting (a queue message was
                # waiting): that is the expected outcome, observed through wait()/returncode.
                return self
            self.stop()
            state = "exited" if ok else f"not ready after {timeout:.0f} s"
            tail = "\n".join(self.lines[-30:])
            raise RuntimeError(f"the host process {state}:\n{tail}")
        return self

    _reader_done = False

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            event = _event(line)
            with self._cond:
                self.lines.append(line)
                if event is not None:
                    self.events.append(event)
                    if event.get("funchost") == "ready":
                        self.ready = event
                self._cond.notify_all()
            if self.echo:
                print(f"[funchost {self._proc.pid}] {line}", flush=True)
        with self._cond:
            self._reader_done = True
            self._cond.notify_all()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL after ``timeout``. Returns the exit code."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            except ProcessLookupError:
                pass
        if self._reader is not None:
            self._reader.join(5)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return None if proc is None else proc.returncode

    def kill(self) -> int | None:
        """SIGKILL the process (and its group) now, as a platform kill does: no cleanup at all."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        return None if proc is None else proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; its exit code (137 after a ``--crash-at``)."""
        assert self._proc is not None, "start() first"
        code = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def __enter__(self) -> FunctionsHostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def http_url(self) -> str | None:
        return (self.ready or {}).get("http_url")

    @property
    def invocations(self) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("funchost") == "invocation"]

    @property
    def dropped_logs(self) -> list[dict[str, Any]]:
        """App log records the real host would have dropped (``log_dropped`` events)."""
        with self._cond:
            return [e for e in self.events if e.get("funchost") == "log_dropped"]

    def timer_lock_held(self, function: str) -> bool:
        """Whether the last ``timer_lock`` event of this process says it holds the function's listener lock."""
        with self._cond:
            changes = [e for e in self.events if e.get("funchost") == "timer_lock" and e.get("function") == function]
        return bool(changes and changes[-1].get("held") and self.returncode is None)

    def wait_for_invocation(self, predicate: Callable[[dict[str, Any]], bool],
                            timeout: float = 30.0) -> dict[str, Any]:
        """The first invocation event matching ``predicate``; ``TimeoutError`` if none comes (or the process ends)."""
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if e.get("funchost") == "invocation" and predicate(e)), None)

        deadline = time.monotonic() + timeout
        with self._cond:
            while (match := found()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._reader_done:
                    raise TimeoutError("no matching invocation; last output:\n" + "\n".join(self.lines[-20:]))
                self._cond.wait(remaining)
            return match


def _event(line: str) -> dict[str, Any] | None:
    if not line.startswith('{"funchost"'):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
