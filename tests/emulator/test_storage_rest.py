"""The emulator's own Blob REST calls (Shared Key signed) against Azurite, checked with azure-storage-blob."""

from __future__ import annotations

import uuid

import pytest
from azure.storage.blob import BlobServiceClient, CorsRule
from emu_support import ACCOUNT, ACCOUNT_KEY

from emulator.apim.storage import BlobMissingError, BlobStore, StorageUnavailableError
from emulator.azurite import Azurite
from emulator.certs import TlsFiles


def _container() -> str:
    return f"rest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(blob_endpoint: str, emu_tls: TlsFiles) -> BlobStore:
    return BlobStore(blob_endpoint, emu_tls.ca_bundle)


@pytest.mark.parametrize("name", ["plain.apimbackup", "svc/2026/12/01/svc-20261201T000000Z.apimbackup",
                                  "spaces and + % # ? ü.json"])
def test_write_creates_the_container_and_reads_back(store: BlobStore, blobs: BlobServiceClient, name: str) -> None:
    container = _container()
    store.write(ACCOUNT, ACCOUNT_KEY, container, name, b'{"a": 1}')
    blob = blobs.get_blob_client(container, name)
    assert blob.download_blob().readall() == b'{"a": 1}'
    assert blob.get_blob_properties().metadata == {"writer": "apim-dr-emulator"}
    store.write(ACCOUNT, ACCOUNT_KEY, container, name, b"second")  # overwrite, container exists
    assert store.read(ACCOUNT, ACCOUNT_KEY, container, name) == b"second"


def test_a_container_deleted_since_is_created_again(store: BlobStore, blobs: BlobServiceClient) -> None:
    container = _container()
    store.write(ACCOUNT, ACCOUNT_KEY, container, "first", b"1")
    blobs.delete_container(container)
    store.write(ACCOUNT, ACCOUNT_KEY, container, "second", b"2")
    assert blobs.get_blob_client(container, "second").download_blob().readall() == b"2"


def test_missing_blob_and_container(store: BlobStore) -> None:
    with pytest.raises(BlobMissingError, match="404 ContainerNotFound"):
        store.read(ACCOUNT, ACCOUNT_KEY, _container(), "nothing")
    container = _container()
    store.write(ACCOUNT, ACCOUNT_KEY, container, "x", b"x")
    with pytest.raises(BlobMissingError, match="404 BlobNotFound"):
        store.read(ACCOUNT, ACCOUNT_KEY, container, "nothing")


def test_wrong_key_is_refused(store: BlobStore) -> None:
    wrong = "A" * 86 + "=="
    with pytest.raises(StorageUnavailableError, match=r"^40[03] "):  # Azurite: 400 InvalidAuthenticationInfo
        store.write(ACCOUNT, wrong, _container(), "x", b"x")


def test_cors_rule_is_read(store: BlobStore, blobs: BlobServiceClient) -> None:
    assert store.cors_allowed_methods(ACCOUNT, ACCOUNT_KEY) is None
    blobs.set_service_properties(cors=[CorsRule(["https://portal.contoso.com"], ["GET", "PUT"])])
    try:
        assert store.cors_allowed_methods(ACCOUNT, ACCOUNT_KEY) == "GET,PUT"
    finally:
        blobs.set_service_properties(cors=[])
    assert store.cors_allowed_methods(ACCOUNT, ACCOUNT_KEY) is None


def test_unreachable_storage(emu_azurite: Azurite, emu_tls: TlsFiles) -> None:
    store = BlobStore("https://127.0.0.1:9", emu_tls.ca_bundle)  # nothing listens on the discard port
    with pytest.raises(StorageUnavailableError, match="ConnectionError"):
        store.read(ACCOUNT, ACCOUNT_KEY, "c", "x")
    assert store.cors_allowed_methods(ACCOUNT, ACCOUNT_KEY) is None
