"""Fixtures for the host stand-in tests: one Azurite per session, and a fresh set of queues per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from funchost_support import AzuriteHandle, SampleEnv

from emulator.azurite import Azurite
from emulator.certs import TlsFiles, ensure_tls_files


@pytest.fixture(scope="session")
def funchost_azurite(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteHandle]:
    """The session's Azurite from tests/conftest.py when there is one, else one of our own (also per session)."""
    try:
        shared_tls: TlsFiles = request.getfixturevalue("tls")
        shared: Azurite = request.getfixturevalue("azurite")
    except pytest.FixtureLookupError:
        base = tmp_path_factory.mktemp("funchost-azurite")
        tls = ensure_tls_files(base / "tls")
        own = Azurite(base / "azurite", tls).start()
        try:
            yield AzuriteHandle(own, tls)
        finally:
            own.stop()
        return
    yield AzuriteHandle(shared, shared_tls)


@pytest.fixture
def sample_env(funchost_azurite: AzuriteHandle, tmp_path: Path) -> SampleEnv:
    suffix = uuid.uuid4().hex[:12]
    env = SampleEnv(
        azurite=funchost_azurite,
        record_file=tmp_path / "records.jsonl",
        queue_name=f"sample-{suffix}",
        out_queue_name=f"sample-out-{suffix}",
    )
    env.settings = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": funchost_azurite.connection_string,
        "SampleStorage": funchost_azurite.connection_string,
        # The host's and the app's storage clients trust Azurite's self-signed certificate through this.
        "REQUESTS_CA_BUNDLE": str(funchost_azurite.tls.ca_bundle),
        "SAMPLE_QUEUE": env.queue_name,
        "SAMPLE_OUT_QUEUE": env.out_queue_name,
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",  # once a year: tests that want ticks override it
        "SAMPLE_MONITORED_SCHEDULE": "0 0 0 1 1 *",
        # Each test is its own app as far as the host's storage goes: its own timer locks and schedule status.
        "AzureFunctionsJobHost__id": f"sample-{suffix}",
        "SAMPLE_RECORD_FILE": str(env.record_file),
    }
    return env
