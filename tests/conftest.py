"""Session-wide fixtures: local TLS material and one Azurite for the whole run.

Servers start once per session on free ports and are stopped at the end; nothing is left
running. Folders with their own needs (emulator, funchost, e2e) add fixtures beside this.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.apim.seed import storage_accounts
from emulator.azurite import Azurite
from emulator.certs import TlsFiles, ensure_tls_files
from emulator.stack import EXAMPLE_SEED

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"

# The storage accounts of the example seed (the backup account among them), with the same keys
# the APIM emulator uses, so every fixture's Azurite agrees with the emulator.
SEED_ACCOUNTS = storage_accounts(EXAMPLE_SEED)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFiles]:
    files = ensure_tls_files(tmp_path_factory.mktemp("tls"))
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    # Clients trust the local servers the production way: through a CA bundle.
    os.environ["REQUESTS_CA_BUNDLE"] = str(files.ca_bundle)
    yield files
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="session")
def azurite(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"), tls, accounts=SEED_ACCOUNTS)
    server.start()
    yield server
    server.stop()


def shared_dir(*parts: str) -> Path:
    """A folder of ../shared, or a visible skip when this clone has none beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: this test needs the reference material in ../shared "
                    "(present in CI; a user's clone has none)")
    return path


@pytest.fixture(scope="session")
def function_metadata() -> dict[str, str]:
    """``get_function_json()`` of every function; ``app.get_functions()`` may only be called once per app."""
    import function_app

    metadata: dict[str, str] = {}
    for f in function_app.app.get_functions():
        name = f.get_function_name()
        assert name is not None, f.get_function_json()
        metadata[name] = f.get_function_json()
    return metadata
