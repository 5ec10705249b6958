"""One blob front for this folder, before the session's Azurite; back to a clean state before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.azurite import Azurite
from emulator.blobfront import BlobFront
from emulator.certs import TlsFiles


@pytest.fixture(scope="session")
def session_front(azurite: Azurite, tls: TlsFiles) -> Iterator[BlobFront]:
    front = BlobFront(azurite.endpoint("blob", "").rstrip("/"), tls, accounts=azurite.all_accounts()).start()
    yield front
    front.stop()


@pytest.fixture
def front(session_front: BlobFront) -> BlobFront:
    """The session front with no policies, holds, roles or clock offset."""
    session_front.admin.reset()
    return session_front
