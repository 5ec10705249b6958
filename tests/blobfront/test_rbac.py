"""RBAC for bearer tokens: each operation is allowed with the permission Azure requires and refused
(403 AuthorizationPermissionMismatch) without it; Shared Key and SAS are not subject to RBAC."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, generate_blob_sas
from front_support import (
    ACCOUNT,
    FakeCredential,
    assert_azure_error,
    key_client,
    mint_token,
    storage_error,
    token_client,
    unique_container,
)

from emulator.azurite import DEV_KEY
from emulator.blobfront import BlobFront, BlobFrontAdminError

MISMATCH = ("AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.")
BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"

READER, CONTRIBUTOR, OWNER, ACCOUNT_CONTRIBUTOR, ARM_OWNER, TAGS, ADD_ONLY = (
    str(uuid.uuid4()) for _ in range(7))
TABLE = {
    READER: [{"role": "Storage Blob Data Reader", "scope": ACCOUNT}],
    CONTRIBUTOR: [{"role": "Storage Blob Data Contributor", "scope": ACCOUNT}],
    OWNER: [{"role": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "scope": ACCOUNT}],  # by GUID
    ACCOUNT_CONTRIBUTOR: [{"role": "Storage Account Contributor", "scope": ACCOUNT}],
    ARM_OWNER: [{"role": "Owner", "scope": "/subscriptions/00000000-0000-0000-0000-000000000000"}],
    # infra/rbac/custom-roles.bicep's "APIM DR Backup Index Tags"
    TAGS: [{"dataActions": [f"{BLOBS}/tags/read", f"{BLOBS}/tags/write", f"{BLOBS}/filter/action"],
            "scope": ACCOUNT}],
    ADD_ONLY: [{"dataActions": [f"{BLOBS}/add/action", f"{BLOBS}/read"], "scope": ACCOUNT}],
}


@dataclass
class World:
    front: BlobFront
    container: str
    blob: str  # an existing blob, with tags {"kind": "backup"}

    def client(self, oid: str) -> BlobServiceClient:
        return token_client(self.front, ACCOUNT, oid)

    def blob_client(self, oid: str, name: str | None = None) -> BlobClient:
        return self.client(oid).get_blob_client(self.container, name or self.blob)


@pytest.fixture
def world(front: BlobFront) -> World:
    service = key_client(front, ACCOUNT)
    container = service.create_container(unique_container())
    container.upload_blob("existing.bin", b"data", tags={"kind": "backup"})
    front.admin.set_roles(TABLE)
    return World(front, container.container_name, "existing.bin")


def _new_name() -> str:
    return f"new-{uuid.uuid4().hex[:8]}.bin"


# operation name → (call, a principal Azure allows, a principal Azure refuses)
CASES: dict[str, tuple[Callable[[World, str], Any], str, str]] = {
    "GetBlob": (lambda w, p: w.blob_client(p).download_blob().readall(), READER, ARM_OWNER),
    "GetBlobProperties": (lambda w, p: w.blob_client(p).get_blob_properties(), READER, ACCOUNT_CONTRIBUTOR),
    "ListBlobs": (lambda w, p: list(w.client(p).get_container_client(w.container).list_blobs()), READER, TAGS),
    "PutBlob (new)": (lambda w, p: w.blob_client(p, _new_name()).upload_blob(b"x"), CONTRIBUTOR, READER),
    "PutBlob (overwrite)": (lambda w, p: w.blob_client(p).upload_blob(b"y", overwrite=True), CONTRIBUTOR, READER),
    "PutBlock": (lambda w, p: w.blob_client(p, _new_name()).stage_block("YQ==", b"a"), CONTRIBUTOR, READER),
    "PutBlockList": (lambda w, p: w.blob_client(p).commit_block_list([]), CONTRIBUTOR, READER),
    "SetBlobMetadata": (lambda w, p: w.blob_client(p).set_blob_metadata({"a": "b"}), CONTRIBUTOR, READER),
    "SetBlobTier": (lambda w, p: w.blob_client(p).set_standard_blob_tier("Cool"), CONTRIBUTOR, READER),
    "DeleteBlob": (lambda w, p: w.blob_client(p).delete_blob(), CONTRIBUTOR, READER),
    "CopyBlob": (lambda w, p: w.blob_client(p, _new_name()).start_copy_from_url(w.blob_client(p).url),
                 CONTRIBUTOR, READER),
    "GetBlobTags": (lambda w, p: w.blob_client(p).get_blob_tags(), OWNER, CONTRIBUTOR),
    "SetBlobTags": (lambda w, p: w.blob_client(p).set_blob_tags({"kind": "other"}), TAGS, CONTRIBUTOR),
    "FindBlobsByTags (account)": (lambda w, p: list(w.client(p).find_blobs_by_tags("\"kind\" = 'backup'")),
                                  TAGS, CONTRIBUTOR),
    "FindBlobsByTags (container)": (
        lambda w, p: list(w.client(p).get_container_client(w.container).find_blobs_by_tags("\"kind\" = 'backup'")),
        OWNER, CONTRIBUTOR),
    "ListContainers": (lambda w, p: list(w.client(p).list_containers()), READER, TAGS),
    "GetContainerProperties": (lambda w, p: w.client(p).get_container_client(w.container).get_container_properties(),
                               READER, TAGS),
    "SetContainerMetadata": (lambda w, p: w.client(p).get_container_client(w.container).set_container_metadata(
        {"a": "b"}), CONTRIBUTOR, READER),
    "CreateContainer": (lambda w, p: w.client(p).create_container(unique_container()), CONTRIBUTOR, READER),
    "DeleteContainer": (lambda w, p: w.client(p).delete_container(w.container), CONTRIBUTOR, READER),
    "GetBlobServiceProperties": (lambda w, p: w.client(p).get_service_properties(), ACCOUNT_CONTRIBUTOR, OWNER),
    "SetBlobServiceProperties": (lambda w, p: w.client(p).set_service_properties(cors=[]), ACCOUNT_CONTRIBUTOR,
                                 OWNER),
}


@pytest.mark.parametrize("operation", list(CASES))
def test_operation_is_refused_without_the_permission(world: World, operation: str) -> None:
    call, _, refused = CASES[operation]
    err = storage_error(call, world, refused)
    assert_azure_error(err, 403, *MISMATCH)
    # The answer names nothing: no principal, no action, no role.
    text = (err.response.text() or "") + repr(dict(err.response.headers))
    assert refused not in text and "Microsoft.Storage" not in text and "Storage Blob" not in text
    entry = world.front.admin.requests(decision="refused-rbac")[-1]
    assert entry["principal"] == refused and entry["status"] == 403


@pytest.mark.parametrize("operation", list(CASES))
def test_operation_is_allowed_with_the_permission(world: World, operation: str) -> None:
    call, allowed, _ = CASES[operation]
    call(world, allowed)
    assert world.front.admin.requests(decision="refused-rbac") == []


def test_add_action_creates_but_does_not_overwrite(world: World) -> None:
    fresh = world.blob_client(ADD_ONLY, _new_name())
    fresh.upload_blob(b"first")
    err = storage_error(fresh.upload_blob, b"second", overwrite=True)
    assert_azure_error(err, 403, "UnauthorizedBlobOverwrite",
                       "This request is not authorized to perform blob overwrites.")
    assert fresh.download_blob().readall() == b"first"


def test_container_scope_covers_that_container_only(world: World, front: BlobFront) -> None:
    other = key_client(front, ACCOUNT).create_container(unique_container()).container_name
    scoped = str(uuid.uuid4())
    arm_id = (f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg-dr/providers/Microsoft.Storage/storageAccounts/"
              f"{ACCOUNT}/blobServices/default/containers/{world.container}")
    front.admin.set_roles({**TABLE, scoped: [{"role": "Storage Blob Data Contributor", "scope": arm_id}]})
    world.blob_client(scoped, "mine.bin").upload_blob(b"ok")
    assert world.blob_client(scoped, "mine.bin").download_blob().readall() == b"ok"
    client = token_client(front, ACCOUNT, scoped)
    assert_azure_error(storage_error(client.get_blob_client(other, "theirs.bin").upload_blob, b"no"), 403, *MISMATCH)
    assert_azure_error(storage_error(lambda: list(client.list_containers())), 403, *MISMATCH)  # account-level


def test_shared_key_and_sas_are_not_subject_to_rbac(world: World, front: BlobFront) -> None:
    front.admin.set_roles({})  # RBAC on, nobody holds anything
    assert_azure_error(storage_error(world.blob_client(OWNER).download_blob), 403, *MISMATCH)
    by_key = key_client(front, ACCOUNT).get_blob_client(world.container, world.blob)
    assert by_key.download_blob().readall() == b"data"
    by_key.set_blob_tags({"kind": "backup"})
    sas = generate_blob_sas(ACCOUNT, world.container, world.blob, account_key=DEV_KEY,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.now(UTC) + timedelta(hours=1))
    by_sas = BlobClient.from_blob_url(f"{by_key.url}?{sas}", connection_verify=str(front.tls.ca_bundle))
    assert by_sas.download_blob().readall() == b"data"
    assert {e["auth"] for e in front.admin.requests(decision="forwarded")} >= {"sharedkey", "sas"}


def test_authentication_comes_before_authorization(world: World, front: BlobFront) -> None:
    expired = mint_token(ARM_OWNER, lifetime=-3600)  # no data permission either
    service = BlobServiceClient(front.endpoint(ACCOUNT), credential=FakeCredential(token=expired),
                                connection_verify=str(front.tls.ca_bundle), retry_total=0)
    with pytest.raises(ClientAuthenticationError) as info:
        service.get_blob_client(world.container, world.blob).download_blob()
    assert getattr(info.value, "error_code", None) == "AuthenticationFailed"  # Azurite's answer, not a 403 mismatch
    assert front.admin.requests()[-1]["decision"] == "refused-authentication"


def test_a_token_without_oid_holds_no_role(world: World) -> None:
    import jwt

    claims = jwt.decode(mint_token(READER), options={"verify_signature": False})
    del claims["oid"]
    anonymous = jwt.encode(claims, "blobfront-test-signing-key-long-enough-for-hs256", algorithm="HS256")
    client = token_client(world.front, ACCOUNT, token=anonymous).get_blob_client(world.container, world.blob)
    assert_azure_error(storage_error(client.download_blob), 403, *MISMATCH)


def test_rbac_is_checked_before_immutability(world: World, front: BlobFront) -> None:
    front.admin.set_container_policy(ACCOUNT, world.container, 1)
    assert_azure_error(storage_error(world.blob_client(READER).delete_blob), 403, *MISMATCH)
    err = storage_error(world.blob_client(CONTRIBUTOR).delete_blob)
    assert_azure_error(err, 409, "BlobImmutableDueToPolicy")


def test_no_role_table_allows_every_token(world: World, front: BlobFront) -> None:
    front.admin.clear_roles()
    assert front.admin.roles() is None
    world.blob_client(str(uuid.uuid4())).set_blob_tags({"kind": "any"})


def test_unknown_roles_and_scopes_are_rejected(front: BlobFront) -> None:
    for table in ({"x": [{"role": "Storage Blob Data Superuser", "scope": ACCOUNT}]},
                  {"x": [{"role": "Storage Blob Data Reader", "scope": "Not An Account"}]},
                  {"x": [{"role": "Storage Blob Data Reader"}]},
                  {"x": [{"role": "Reader", "dataActions": ["*"], "scope": "/"}]},
                  {"x": [{"scope": "/"}]},
                  {"x": "Storage Blob Data Reader"},
                  ["not", "an", "object"]):
        with pytest.raises(BlobFrontAdminError) as info:
            front.admin.set_roles(table)
        assert info.value.status == 400 and info.value.code == "InvalidRoleTable"
    assert front.admin.roles() is None


def test_seed_role_assignments_become_a_table() -> None:
    from emulator.apim.seed import load_seed
    from emulator.blobfront import roles_from_seed
    from emulator.stack import EXAMPLE_SEED

    seed = load_seed(EXAMPLE_SEED)
    table = roles_from_seed(seed)
    account = seed["storageAccounts"][0]
    first = account["roleAssignments"][0]
    assert {"role": first["role"], "scope": account["name"]} in table[first["principalId"].lower()]


def test_http_errors_are_storage_errors(world: World) -> None:
    # HEAD answers carry the code in x-ms-error-code only; the SDK still reports it.
    err = storage_error(world.blob_client(TAGS).get_blob_properties)
    assert isinstance(err, HttpResponseError) and getattr(err, "error_code", None) == MISMATCH[0]
