"""Helpers shared by the host stand-in tests (a module of its own, so its name cannot clash with other conftests)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from emulator.azurite import Azurite
from emulator.certs import TlsFiles
from emulator.funchost import HOSTS_CONTAINER, ScheduleStatus, function_id, status_blob

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"


@dataclass
class AzuriteHandle:
    azurite: Azurite
    tls: TlsFiles

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string()

    def queue(self, name: str) -> QueueClient:
        """A raw-text client (no encode/decode policy): tests see exactly what is stored."""
        return QueueClient.from_connection_string(
            self.connection_string, name, connection_verify=str(self.tls.ca_bundle)
        )


@dataclass
class SampleEnv:
    """Settings for one sample-app host, with its own queues and record file."""

    azurite: AzuriteHandle
    record_file: Path
    queue_name: str
    out_queue_name: str
    settings: dict[str, str] = field(default_factory=dict)

    def queue(self, name: str | None = None) -> QueueClient:
        client = self.azurite.queue(name or self.queue_name)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def send(self, body: str, *, encoding: str = "base64", visibility_timeout: int | None = None) -> None:
        text = base64.b64encode(body.encode()).decode() if encoding == "base64" else body
        self.queue().send_message(text, visibility_timeout=visibility_timeout)

    def records(self, function: str | None = None) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        lines = self.record_file.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        return [r for r in rows if function is None or r["function"] == function]

    def wait_records(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                     timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.records() if predicate(r)]
            if len(rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} of {count} records after {timeout} s: {self.records()}")
            time.sleep(0.05)

    def raw_messages(self, name: str) -> list[str]:
        """The visible messages' stored text; none when the queue does not exist (yet)."""
        try:
            return [m.content for m in self.azurite.queue(name).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def stored_status(env: SampleEnv, host_id: str, name: str) -> ScheduleStatus | None:
    """The timer's schedule status blob as the host stored it, or None."""
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(env.azurite.connection_string, HOSTS_CONTAINER)
    try:
        text = container.get_blob_client(status_blob(host_id, function_id(name))).download_blob().readall()
    except ResourceNotFoundError:
        return None
    return ScheduleStatus.from_json(json.loads(text))


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:.0f} s")
        time.sleep(0.05)
