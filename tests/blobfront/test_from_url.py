"""Put Blob From URL and Put Block From URL through the front (Azurite 3.35 lacks both): the source read as the
x-ms-copy-source-authorization token allows, the destination's RBAC and immutability as for Put Blob, Azure's
refusals (CannotVerifyCopySource, SourceConditionNotMet, Md5Mismatch), and an account whose endpoint is out."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ServiceResponseError
from azure.storage.blob import BlobBlock, BlobServiceClient
from front_support import ACCOUNT, assert_azure_error, key_client, mint_token, storage_error, unique_container

from emulator.apim.seed import load_seed
from emulator.blobfront import BlobFront
from emulator.stack import EXAMPLE_SEED

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
TARGET = next(a["name"] for a in load_seed(EXAMPLE_SEED)["storageAccounts"] if a["name"] != ACCOUNT
              and a["name"] == "apimdrcopies")
COPIER, NO_SOURCE_READ, READ_ONLY = (str(uuid.uuid4()) for _ in range(3))
DATA = b"apim backup bytes " * 1000


@pytest.fixture
def world(front: BlobFront):
    container = unique_container("src")
    source = key_client(front, ACCOUNT).get_container_client(container)
    source.create_container()
    source.upload_blob("svc/2026/11/30/svc-20261130T020000Z.apimbackup", DATA)
    key_client(front, TARGET).get_container_client(container).create_container()
    front.admin.set_roles({
        # What infra grants the Function App: read on the backup account, data + tags on the copy account.
        COPIER: [{"dataActions": [f"{BLOBS}/read"], "scope": ACCOUNT},
                 {"dataActions": [f"{BLOBS}/read", f"{BLOBS}/write", f"{BLOBS}/tags/write"], "scope": TARGET}],
        NO_SOURCE_READ: [{"dataActions": [f"{BLOBS}/read", f"{BLOBS}/write"], "scope": TARGET}],
        READ_ONLY: [{"role": "Storage Blob Data Reader", "scope": "/"}],
    })
    return front, container, "svc/2026/11/30/svc-20261130T020000Z.apimbackup"


def client(front: BlobFront, oid: str) -> BlobServiceClient:
    from front_support import FakeCredential

    return BlobServiceClient(front.endpoint(TARGET), credential=FakeCredential(oid),
                             connection_verify=str(front.tls.ca_bundle), retry_total=0)


def source_url(front: BlobFront, container: str, blob: str) -> str:
    return f"{front.endpoint(ACCOUNT)}/{container}/{blob}"


def bearer(oid: str) -> str:
    return f"Bearer {mint_token(oid)}"


def md5(data: bytes) -> bytearray:
    return bytearray(hashlib.md5(data, usedforsecurity=False).digest())


def test_put_blob_from_url_copies_server_side_as_the_source_token_allows(world):
    front, container, blob = world
    target = client(front, COPIER).get_blob_client(container, blob)
    answer = target.upload_blob_from_url(source_url(front, container, blob), overwrite=False,
                                         source_authorization=bearer(COPIER), source_content_md5=md5(DATA))
    assert bytes(answer["content_md5"]) == md5(DATA)  # computed by the service over what it wrote
    props = target.get_blob_properties()
    assert props.size == len(DATA) and props.content_settings.content_md5 == md5(DATA)
    assert key_client(front, TARGET).get_blob_client(container, blob).download_blob().readall() == DATA
    (logged,) = front.admin.requests(operation="PutBlobFromURL")
    assert logged["decision"] == "forwarded" and logged["status"] == 201 and logged["principal"] == COPIER
    # Nothing of the copy passed through the client: the front read the source from Azurite itself.
    assert not front.admin.requests(method="GET", path_contains=f"/{ACCOUNT}/{container}/")


def test_the_source_is_authorized_separately_from_the_destination(world):
    front, container, blob = world
    target = client(front, NO_SOURCE_READ).get_blob_client(container, blob)
    err = storage_error(target.upload_blob_from_url, source_url(front, container, blob),
                        source_authorization=bearer(NO_SOURCE_READ))
    assert_azure_error(err, 403, "CannotVerifyCopySource",
                       "This request is not authorized to perform this operation using this permission.")
    # Without a source authorization the private source is read anonymously: not found.
    err = storage_error(target.upload_blob_from_url, source_url(front, container, blob))
    assert_azure_error(err, 404, "CannotVerifyCopySource")
    # Read everywhere but no write on the destination: refused before the source is looked at.
    reader = client(front, READ_ONLY).get_blob_client(container, blob)
    err = storage_error(reader.upload_blob_from_url, source_url(front, container, blob),
                        source_authorization=bearer(READ_ONLY))
    assert_azure_error(err, 403, "AuthorizationPermissionMismatch")
    assert not key_client(front, TARGET).get_blob_client(container, blob).exists()


def test_source_conditions_md5_and_missing_sources_are_refused_as_azure_does(world):
    front, container, blob = world
    target = client(front, COPIER).get_blob_client(container, blob)
    url = source_url(front, container, blob)
    err = storage_error(target.upload_blob_from_url, url, source_authorization=bearer(COPIER),
                        source_content_md5=md5(b"something else"))
    assert_azure_error(err, 400, "Md5Mismatch")
    err = storage_error(target.upload_blob_from_url, url, source_authorization=bearer(COPIER),
                        source_etag='"0x8D000000000DEAD"', source_match_condition=MatchConditions.IfNotModified)
    assert_azure_error(err, 412, "SourceConditionNotMet")
    err = storage_error(target.upload_blob_from_url, url + ".nope", source_authorization=bearer(COPIER))
    assert_azure_error(err, 404, "CannotVerifyCopySource")
    for bad in ("Basic abc", "Bearer"):
        err = storage_error(target.upload_blob_from_url, url, source_authorization=bad)
        assert_azure_error(err, 400, "InvalidHeaderValue")
    assert not key_client(front, TARGET).get_blob_client(container, blob).exists()


def test_no_overwrite_when_asked_and_immutability_on_the_destination(world):
    front, container, blob = world
    target = client(front, COPIER).get_blob_client(container, blob)
    url = source_url(front, container, blob)
    target.upload_blob_from_url(url, source_authorization=bearer(COPIER))
    with pytest.raises(ResourceExistsError):
        target.upload_blob_from_url(url, overwrite=False, source_authorization=bearer(COPIER))
    front.admin.set_container_legal_hold(TARGET, container, ["incident"])
    err = storage_error(target.upload_blob_from_url, url, overwrite=True, source_authorization=bearer(COPIER))
    assert_azure_error(err, 409, "BlobImmutableDueToLegalHold")
    fresh = client(front, COPIER).get_blob_client(container, blob + ".manifest.json")
    key_client(front, ACCOUNT).get_blob_client(container, blob + ".manifest.json").upload_blob(b"{}")
    fresh.upload_blob_from_url(url + ".manifest.json", source_authorization=bearer(COPIER))  # new blobs are fine


def test_put_block_from_url_stages_ranges_of_the_source(world):
    front, container, blob = world
    target = client(front, COPIER).get_blob_client(container, blob)
    url = source_url(front, container, blob)
    half = len(DATA) // 2
    ids = [base64.b64encode(f"{i:08d}".encode()).decode() for i in range(2)]
    target.stage_block_from_url(ids[0], url, source_offset=0, source_length=half, source_authorization=bearer(COPIER))
    target.stage_block_from_url(ids[1], url, source_offset=half, source_length=len(DATA) - half,
                                source_authorization=bearer(COPIER))
    target.commit_block_list([BlobBlock(block_id=i) for i in ids])
    assert key_client(front, TARGET).get_blob_client(container, blob).download_blob().readall() == DATA
    assert [r["status"] for r in front.admin.requests(operation="PutBlockFromURL")] == [201, 201]
    err = storage_error(client(front, NO_SOURCE_READ).get_blob_client(container, "other").stage_block_from_url,
                        ids[0], url, source_offset=0, source_length=10, source_authorization=bearer(NO_SOURCE_READ))
    assert_azure_error(err, 403, "CannotVerifyCopySource")


def test_an_account_in_an_outage_does_not_answer_and_cannot_be_copied_from(world):
    front, container, blob = world
    front.admin.set_account_outage(ACCOUNT)
    source = key_client(front, ACCOUNT).get_blob_client(container, blob)
    with pytest.raises(ServiceResponseError):
        BlobServiceClient.from_connection_string(front.connection_string(ACCOUNT), retry_total=0,
                                                 connection_verify=str(front.tls.ca_bundle)) \
            .get_blob_client(container, blob).get_blob_properties()
    target = client(front, COPIER).get_blob_client(container, blob)
    err = storage_error(target.upload_blob_from_url, source.url, source_authorization=bearer(COPIER))
    assert_azure_error(err, 500, "CannotVerifyCopySource",
                       "Could not verify the copy source within the specified time.")
    assert front.admin.requests(decision="refused-outage")
    assert front.admin.state()["outages"] == [ACCOUNT]
    front.admin.clear_account_outage(ACCOUNT)
    target.upload_blob_from_url(source.url, source_authorization=bearer(COPIER))
    assert front.admin.state()["outages"] == []


def test_the_outage_admin_api_names_what_is_wrong(front):
    from emulator.blobfront import BlobFrontAdminError

    with pytest.raises(BlobFrontAdminError) as info:
        front.admin.set_account_outage("nosuchaccount1")
    assert info.value.status == 404
    with pytest.raises(BlobFrontAdminError) as info:
        front.admin.set_account_outage("Not_An_Account")
    assert info.value.status == 400
    front.admin.set_account_outage(TARGET)
    front.admin.reset()
    assert front.admin.state()["outages"] == []
