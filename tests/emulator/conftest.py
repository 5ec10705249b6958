"""Shared fixtures: one Azurite and one APIM emulator for the whole session, reset before each test.

Named ``emu_*`` so they stand apart from tests/conftest.py's ``tls``/``azurite``: this Azurite holds the
accounts and keys of emulator/seed.example.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.storage.blob import BlobServiceClient
from emu_support import (
    ACCOUNT,
    ACCOUNT_KEY,
    SEED_PATH,
    SPEC_DIR,
    SUB,
    RawArm,
    SpecValidator,
    StaticTokenCredential,
    identity_token,
)

from emulator.apim import ApimEmulator, storage_accounts
from emulator.azurite import Azurite
from emulator.certs import TlsFiles, ensure_tls_files


@pytest.fixture(scope="session")
def emu_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def emu_azurite(tmp_path_factory: pytest.TempPathFactory, emu_tls: TlsFiles) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"), emu_tls, accounts=storage_accounts(SEED_PATH)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def blob_endpoint(emu_azurite: Azurite) -> str:
    return emu_azurite.endpoint("blob", "").rstrip("/")


@pytest.fixture(scope="session")
def session_emu(
    tmp_path_factory: pytest.TempPathFactory, emu_tls: TlsFiles, blob_endpoint: str
) -> Iterator[ApimEmulator]:
    emu = ApimEmulator(
        tmp_path_factory.mktemp("apim-emulator"),
        SEED_PATH,
        emu_tls,
        blob_endpoint=blob_endpoint,
        retry_after=1,
        op_duration=0.5,
    ).start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(session_emu: ApimEmulator) -> ApimEmulator:
    """The session emulator, back at its seed (services, faults, clock, roles, request log)."""
    session_emu.admin.reset()
    return session_emu


@pytest.fixture
def private_emu(tmp_path: Path, emu_tls: TlsFiles, blob_endpoint: str) -> Iterator[ApimEmulator]:
    """An emulator of its own (for restart tests)."""
    emu = ApimEmulator(
        tmp_path / "apim", SEED_PATH, emu_tls, blob_endpoint=blob_endpoint, retry_after=1, op_duration=1.0
    )
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def spec() -> SpecValidator:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"../shared/apim-spec not found: {SPEC_DIR.resolve()} (the reference spec lives beside the repo)")
    return SpecValidator(SPEC_DIR)


@pytest.fixture(scope="session")
def optional_spec() -> SpecValidator | None:
    """The validator when the spec is present; tests that are not about the spec still run without it."""
    return SpecValidator(SPEC_DIR) if SPEC_DIR.is_dir() else None


@pytest.fixture
def arm_token(emu: ApimEmulator) -> str:
    return identity_token(emu)


@pytest.fixture
def raw(emu: ApimEmulator, optional_spec: SpecValidator | None, arm_token: str) -> RawArm:
    return RawArm(emu, optional_spec, arm_token)


@pytest.fixture
def client(emu: ApimEmulator, arm_token: str) -> Iterator[ApiManagementClient]:
    """The official client, changed only in base_url and CA bundle."""
    with ApiManagementClient(
        StaticTokenCredential(arm_token), SUB, base_url=emu.arm_url, connection_verify=str(emu.ca_bundle)
    ) as c:
        yield c


@pytest.fixture
def blobs(emu_azurite: Azurite, emu_tls: TlsFiles) -> BlobServiceClient:
    return BlobServiceClient(
        emu_azurite.endpoint("blob", ACCOUNT),
        credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
        connection_verify=str(emu_tls.ca_bundle),
    )
