"""One Azurite and one emulator (with the stand-ins seeded) for the session, reset before each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from standins_support import STANDIN_SEED, IdentityCredential

from emulator.apim import ApimEmulator, storage_accounts
from emulator.azurite import Azurite
from emulator.certs import TlsFiles, ensure_tls_files


@pytest.fixture(scope="session")
def si_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def si_azurite(tmp_path_factory: pytest.TempPathFactory, si_tls: TlsFiles) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"), si_tls, accounts=storage_accounts(STANDIN_SEED)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def session_emu(
    tmp_path_factory: pytest.TempPathFactory, si_tls: TlsFiles, si_azurite: Azurite
) -> Iterator[ApimEmulator]:
    emu = ApimEmulator(
        tmp_path_factory.mktemp("standins"),
        STANDIN_SEED,
        si_tls,
        blob_endpoint=si_azurite.endpoint("blob", "").rstrip("/"),
        retry_after=1,
        op_duration=0.5,
    ).start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(session_emu: ApimEmulator) -> ApimEmulator:
    """The session emulator back at its seed (stand-ins included)."""
    session_emu.admin.reset()
    return session_emu


@pytest.fixture
def credential(emu: ApimEmulator) -> IdentityCredential:
    """The Function App's system-assigned identity, through the emulator's managed-identity endpoint."""
    return IdentityCredential(emu)
