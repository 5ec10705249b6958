"""Immutability as Azure documents it: what is refused (409) while a blob is immutable, what is not."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContainerClient, ContentSettings
from front_support import ACCOUNT, assert_azure_error, key_client, storage_error, unique_container

from emulator.blobfront import BlobFront, BlobFrontAdminError

DAY = 86400
POLICY = ("BlobImmutableDueToPolicy", "This operation is not permitted as the blob is immutable due to a policy.")
HOLD = ("BlobImmutableDueToLegalHold",
        "This operation is not permitted as the blob is immutable due to one or more legal holds.")


@pytest.fixture
def service(front: BlobFront) -> BlobServiceClient:
    return key_client(front, ACCOUNT)


@pytest.fixture
def container(service: BlobServiceClient) -> ContainerClient:
    return service.create_container(unique_container())


@pytest.fixture
def blob(container: ContainerClient) -> BlobClient:
    return container.upload_blob("backups/one.apimbackup", b"original", metadata={"m": "1"})


def _overwrite(blob: BlobClient, container: ContainerClient) -> None:
    blob.upload_blob(b"new", overwrite=True)


def _overwrite_with_blocks(blob: BlobClient, container: ContainerClient) -> None:
    blob.stage_block("YmxvY2sx", b"new")  # staging alone is allowed (no overwrite yet)
    blob.commit_block_list([BlobBlock("YmxvY2sx")])


def _copy_onto(blob: BlobClient, container: ContainerClient) -> None:
    source = container.upload_blob(f"source-{uuid.uuid4().hex}", b"source")  # a new blob: allowed
    blob.start_copy_from_url(source.url)


REFUSED_WRITES: dict[str, Callable[[BlobClient, ContainerClient], Any]] = {
    "PutBlob (overwrite)": _overwrite,
    "PutBlockList (overwrite)": _overwrite_with_blocks,
    "SetBlobMetadata": lambda b, c: b.set_blob_metadata({"m": "2"}),
    "SetBlobProperties": lambda b, c: b.set_http_headers(ContentSettings(content_type="text/plain")),
    "SnapshotBlob": lambda b, c: b.create_snapshot(),
    "CopyBlob (onto it)": _copy_onto,
}


def _allowed_operations(blob: BlobClient, container: ContainerClient) -> None:
    """Reads, tags, tier, lease and new blobs stay allowed on an immutable blob / container."""
    assert blob.download_blob().readall() == b"original"
    assert blob.get_blob_properties().metadata == {"m": "1"}
    blob.set_blob_tags({"project": "dr"})
    assert blob.get_blob_tags() == {"project": "dr"}
    assert [f.name for f in container.find_blobs_by_tags("\"project\" = 'dr'")] == [blob.blob_name]
    blob.set_standard_blob_tier("Cool")
    lease = blob.acquire_lease(15)
    lease.release()
    fresh = container.upload_blob(f"new-{datetime.now(UTC).timestamp()}", b"new blob")  # creating is allowed
    assert fresh.download_blob().readall() == b"new blob"
    blob.stage_block("c3RhZ2Vk", b"staged")  # Put Block does not change the blob
    assert [b.name for b in container.list_blobs(name_starts_with="backups/")] == [blob.blob_name]


def test_container_retention_refuses_delete_and_writes_until_expiry(front: BlobFront, container: ContainerClient,
                                                                    blob: BlobClient) -> None:
    front.admin.set_container_policy(ACCOUNT, container.container_name, 7)
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    for name, write in REFUSED_WRITES.items():
        err = storage_error(write, blob, container)
        assert_azure_error(err, 409, *POLICY)
        assert err.response.reason == POLICY[1], name  # Azure puts the message in the reason phrase
    _allowed_operations(blob, container)
    assert blob.download_blob().readall() == b"original"

    front.admin.advance_clock(7 * DAY - 3600)  # an hour before expiry: still protected
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    front.admin.advance_clock(2 * 3600)
    # Expired: "objects can be deleted but not overwritten".
    assert_azure_error(storage_error(_overwrite, blob, container), 409, *POLICY)
    assert_azure_error(storage_error(blob.set_blob_metadata, {"m": "3"}), 409, *POLICY)
    blob.delete_blob()
    assert not blob.exists()
    # The same name may be created again (a new blob), and is then protected in its turn.
    container.upload_blob(blob.blob_name, b"second")
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)


def test_retention_runs_from_the_blob_creation_time(front: BlobFront, container: ContainerClient,
                                                  blob: BlobClient) -> None:
    front.admin.advance_clock(3 * DAY)  # the blob is 3 days old when the policy arrives
    front.admin.set_container_policy(ACCOUNT, container.container_name, 5)
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    front.admin.advance_clock(2 * DAY + 60)  # 5 days after creation
    blob.delete_blob()


def test_container_legal_hold_refuses_until_cleared(front: BlobFront, container: ContainerClient,
                                                   blob: BlobClient) -> None:
    front.admin.set_container_legal_hold(ACCOUNT, container.container_name, ["case2024", "audit"])
    assert container.get_container_properties().has_legal_hold is True
    assert_azure_error(storage_error(blob.delete_blob), 409, *HOLD)
    for write in REFUSED_WRITES.values():
        assert_azure_error(storage_error(write, blob, container), 409, *HOLD)
    _allowed_operations(blob, container)
    front.admin.advance_clock(3650 * DAY)  # a legal hold has no expiry
    assert_azure_error(storage_error(blob.delete_blob), 409, *HOLD)
    front.admin.clear_container_legal_hold(ACCOUNT, container.container_name)
    assert container.get_container_properties().has_legal_hold is False
    blob.set_blob_metadata({"m": "after"})
    blob.delete_blob()


def test_legal_hold_is_reported_before_the_policy(front: BlobFront, container: ContainerClient,
                                                 blob: BlobClient) -> None:
    front.admin.set_container_policy(ACCOUNT, container.container_name, 1)
    front.admin.set_container_legal_hold(ACCOUNT, container.container_name, ["case1"])
    assert_azure_error(storage_error(blob.delete_blob), 409, *HOLD)
    front.admin.clear_container_legal_hold(ACCOUNT, container.container_name)
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)


def test_container_properties_report_policy_and_hold(front: BlobFront, container: ContainerClient,
                                                    blob: BlobClient) -> None:
    props = container.get_container_properties()
    assert (props.has_immutability_policy, props.has_legal_hold) == (False, False)
    front.admin.set_container_policy(ACCOUNT, container.container_name, 30)
    assert container.get_container_properties().has_immutability_policy is True
    front.admin.clear_container_policy(ACCOUNT, container.container_name)
    blob.delete_blob()


def test_delete_container_refused_with_legal_hold_or_locked_policy(front: BlobFront,
                                                                 container: ContainerClient) -> None:
    name = container.container_name
    front.admin.set_container_legal_hold(ACCOUNT, name, ["hold1"])
    assert_azure_error(storage_error(container.delete_container), 409, "ContainerHasLegalHold")
    front.admin.clear_container_legal_hold(ACCOUNT, name)
    front.admin.set_container_policy(ACCOUNT, name, 1, locked=True)
    assert_azure_error(storage_error(container.delete_container), 409, "ContainerImmutabilityPolicyLocked")
    front.admin.clear_container_policy(ACCOUNT, name)
    container.delete_container()
    assert front.admin.state()["containers"] == []


def test_blob_level_policy_and_legal_hold(front: BlobFront, container: ContainerClient, blob: BlobClient) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    front.admin.set_blob_policy(ACCOUNT, container.container_name, blob.blob_name, until)
    props = blob.get_blob_properties()
    assert props.immutability_policy.expiry_time == until
    assert str(props.immutability_policy.policy_mode).lower() == "unlocked"
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    assert_azure_error(storage_error(blob.set_blob_metadata, {"x": "y"}), 409, *POLICY)
    other = container.upload_blob("backups/two.apimbackup", b"2")
    other.set_blob_metadata({"free": "yes"})  # only the one blob is protected

    front.admin.set_blob_legal_hold(ACCOUNT, container.container_name, blob.blob_name)
    assert blob.get_blob_properties().has_legal_hold is True
    assert_azure_error(storage_error(blob.delete_blob), 409, *HOLD)
    listed = {b.name: b for b in container.list_blobs(include=["immutabilitypolicy", "legalhold"])}
    assert listed[blob.blob_name].immutability_policy.expiry_time == until
    assert listed[blob.blob_name].has_legal_hold is True
    assert listed[other.blob_name].has_legal_hold is not True

    front.admin.clear_blob_legal_hold(ACCOUNT, container.container_name, blob.blob_name)
    assert blob.get_blob_properties().has_legal_hold is False
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    front.admin.advance_clock(2 * DAY + 60)  # past the policy's expiry
    blob.set_blob_metadata({"m": "changed"})
    blob.delete_blob()
    assert front.admin.state()["blobs"] == []  # the blob's settings went with it


def test_account_default_policy_protects_every_new_blob(front: BlobFront, service: BlobServiceClient,
                                                       container: ContainerClient, blob: BlobClient) -> None:
    front.admin.set_account_policy(ACCOUNT, 30)
    created = blob.get_blob_properties().creation_time
    props = blob.get_blob_properties()
    assert props.immutability_policy.expiry_time == created + timedelta(days=30)
    assert container.get_container_properties().immutable_storage_with_versioning_enabled is True
    assert_azure_error(storage_error(blob.delete_blob), 409, *POLICY)
    assert_azure_error(storage_error(_overwrite, blob, container), 409, *POLICY)
    front.admin.advance_clock(30 * DAY + 60)
    blob.delete_blob()
    front.admin.clear_account_policy(ACCOUNT)


def test_append_blob_appends_only_with_allow_protected_append_writes(front: BlobFront,
                                                                    container: ContainerClient) -> None:
    log = container.get_blob_client("audit.log")
    log.create_append_blob()
    log.append_block(b"one\n")
    front.admin.set_container_policy(ACCOUNT, container.container_name, 1)
    assert_azure_error(storage_error(log.append_block, b"two\n"), 409, *POLICY)
    front.admin.set_container_policy(ACCOUNT, container.container_name, 1, allow_protected_append_writes=True)
    log.append_block(b"two\n")
    assert log.download_blob().readall() == b"one\ntwo\n"
    assert_azure_error(storage_error(log.delete_blob), 409, *POLICY)


def test_immutability_applies_to_bearer_tokens_too(front: BlobFront, container: ContainerClient,
                                                  blob: BlobClient) -> None:
    from front_support import token_client

    front.admin.set_container_policy(ACCOUNT, container.container_name, 1)
    as_token = token_client(front, ACCOUNT).get_blob_client(container.container_name, blob.blob_name)
    assert_azure_error(storage_error(as_token.delete_blob), 409, *POLICY)
    assert as_token.download_blob().readall() == b"original"


def test_refusals_are_in_the_request_log(front: BlobFront, container: ContainerClient, blob: BlobClient) -> None:
    front.admin.set_container_policy(ACCOUNT, container.container_name, 1)
    storage_error(blob.delete_blob)
    refused = front.admin.requests(decision="refused-immutability")
    assert [(e["operation"], e["status"], e["errorCode"]) for e in refused] == [
        ("DeleteBlob", 409, "BlobImmutableDueToPolicy")]


def test_policies_need_an_existing_container_or_blob(front: BlobFront, container: ContainerClient) -> None:
    with pytest.raises(BlobFrontAdminError) as info:
        front.admin.set_container_policy(ACCOUNT, unique_container("missing"), 1)
    assert info.value.status == 404
    with pytest.raises(BlobFrontAdminError) as info:
        front.admin.set_blob_policy(ACCOUNT, container.container_name, "no-such-blob",
                                    datetime.now(UTC) + timedelta(days=1))
    assert info.value.status == 404


def test_a_refused_large_upload_gets_its_answer(front: BlobFront, service: BlobServiceClient,
                                                container: ContainerClient, blob: BlobClient) -> None:
    """The front reads and drops the refused body, so the client reads the 409 and can go on."""
    big = BlobServiceClient.from_connection_string(front.connection_string(ACCOUNT),
                                                   connection_verify=str(front.tls.ca_bundle),
                                                   max_single_put_size=16 * 1024 * 1024)
    target = big.get_blob_client(container.container_name, blob.blob_name)
    front.admin.set_container_policy(ACCOUNT, container.container_name, 1)
    err = storage_error(target.upload_blob, b"z" * (10 * 1024 * 1024), overwrite=True)
    assert_azure_error(err, 409, *POLICY)
    assert target.download_blob().readall() == b"original"
