"""The front forwards what no rule refuses and answers exactly as Azurite does."""

from __future__ import annotations

import hashlib
import os
from typing import TypedDict, Unpack

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings
from front_support import ACCOUNT, FakeCredential, key_client, mint_token, token_client, unique_container

from emulator.azurite import Azurite
from emulator.blobfront import BlobFront


def test_shared_key_operations_work_through_the_front(front: BlobFront) -> None:
    service = key_client(front, ACCOUNT)
    container = service.create_container(unique_container())
    blob = container.upload_blob("dir/a name with spaces & ümlauts.txt", b"hello",
                                 metadata={"k": "v"}, tags={"source": "test"},
                                 content_settings=ContentSettings(content_type="text/plain"))
    props = blob.get_blob_properties()
    assert props.metadata == {"k": "v"} and props.content_settings.content_type == "text/plain"
    assert blob.download_blob().readall() == b"hello"
    assert [b.name for b in container.list_blobs()] == ["dir/a name with spaces & ümlauts.txt"]
    assert blob.get_blob_tags() == {"source": "test"}
    found = list(container.find_blobs_by_tags("\"source\" = 'test'"))
    assert [f.name for f in found] == ["dir/a name with spaces & ümlauts.txt"]
    blob.set_blob_metadata({"k2": "v2"})
    assert blob.get_blob_properties().metadata == {"k2": "v2"}
    copy = container.get_blob_client("copy.txt")
    copy.start_copy_from_url(blob.url)
    assert copy.download_blob().readall() == b"hello"
    blob.delete_blob()
    container.delete_container()
    # Every request went through the front, signed as the SDK signed it.
    log = front.admin.requests(path_contains=container.container_name)
    assert {e["auth"] for e in log} == {"sharedkey"}
    assert all(e["decision"] == "forwarded" and e["status"] < 400 for e in log)


def test_azurite_errors_come_back_unchanged(front: BlobFront, azurite: Azurite) -> None:
    service = key_client(front, ACCOUNT)
    container = service.create_container(unique_container())
    via_front = requests.get(f"{front.endpoint(ACCOUNT)}/{container.container_name}/missing",
                             verify=str(front.tls.ca_bundle), timeout=10)
    direct = requests.get(f"{azurite.endpoint('blob')}/{container.container_name}/missing",
                          verify=str(front.tls.ca_bundle), timeout=10)
    assert via_front.status_code == direct.status_code
    assert via_front.headers["x-ms-error-code"] == direct.headers["x-ms-error-code"]
    assert via_front.headers["Server"] == direct.headers["Server"]  # Azurite's, not the front's
    with pytest.raises(ResourceNotFoundError):
        container.get_blob_client("missing").download_blob()


class _Sizes(TypedDict, total=False):
    """The SDK's transfer sizes a test sets."""

    max_single_put_size: int
    max_block_size: int
    max_single_get_size: int
    max_chunk_get_size: int


def _client(front: BlobFront, **sizes: Unpack[_Sizes]) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(front.connection_string(ACCOUNT),
                                                    connection_verify=str(front.tls.ca_bundle), **sizes)


def test_multi_megabyte_upload_and_download_stream_through(front: BlobFront) -> None:
    mib = 1024 * 1024
    whole = _client(front, max_single_put_size=32 * mib, max_single_get_size=32 * mib)
    pieces = _client(front, max_single_put_size=2 * mib, max_block_size=2 * mib,
                     max_single_get_size=2 * mib, max_chunk_get_size=2 * mib)
    name = unique_container()
    whole.create_container(name)
    data = os.urandom(12 * mib + 123)
    single = whole.get_blob_client(name, "single.bin")
    single.upload_blob(data)  # one Put Blob of 12 MiB
    assert single.download_blob().readall() == data  # one Get Blob of 12 MiB
    blocks = pieces.get_blob_client(name, "blocks.bin")
    blocks.upload_blob(data, max_concurrency=2)  # Put Block ×7 + Put Block List
    downloaded = blocks.download_blob(max_concurrency=3).readall()  # ranged Get Blobs
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(data).digest()
    ops = [e["operation"] for e in front.admin.requests(path_contains=name)]
    assert ops.count("PutBlock") == 7 and {"PutBlob", "PutBlockList", "GetBlob"} <= set(ops)


def test_bearer_tokens_are_forwarded_when_no_role_table_is_set(front: BlobFront) -> None:
    service = token_client(front, ACCOUNT)
    container = service.create_container(unique_container())
    container.upload_blob("b", b"x")
    assert container.download_blob("b").readall() == b"x"
    entries = front.admin.requests(path_contains=container.container_name)
    assert {e["auth"] for e in entries} == {"bearer"}
    assert len({e["principal"] for e in entries}) == 1


def test_azurite_still_authenticates_tokens(front: BlobFront) -> None:
    expired = mint_token("00000000-0000-0000-0000-000000000001", lifetime=-3600)
    service = BlobServiceClient(front.endpoint(ACCOUNT), credential=FakeCredential(token=expired),
                                connection_verify=str(front.tls.ca_bundle), retry_total=0)
    with pytest.raises(ClientAuthenticationError) as info:
        service.get_container_client(unique_container()).create_container()
    assert getattr(info.value, "error_code", None) == "AuthenticationFailed"


def test_keep_alive_connection_serves_many_requests(front: BlobFront) -> None:
    service = key_client(front, ACCOUNT)
    container = service.create_container(unique_container())
    with requests.Session() as session:
        session.verify = str(front.tls.ca_bundle)
        for _ in range(20):
            assert session.get(f"{front.url}/_front/health", timeout=10).status_code == 200
    blob = container.get_blob_client("nothing")
    assert not any(blob.exists() for _ in range(20))  # the SDK's pooled session: 20 HEADs
    assert len(front.admin.requests(path_contains=f"{container.container_name}/nothing")) == 20
