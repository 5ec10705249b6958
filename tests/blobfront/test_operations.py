"""Request → operation → permission mapping for requests the SDK tests above do not send (no servers)."""

from __future__ import annotations

import pytest

from emulator.blobfront.ops import (
    BLOB_DELETE_VERSION,
    BLOB_PERMANENT_DELETE,
    BLOB_READ,
    DELEGATION_KEY,
    IMMUTABLE_SUPER,
    Imm,
    classify,
)
from emulator.blobfront.rbac import Scope, parse_scope

A = "/acct1/cont1"


@pytest.mark.parametrize(("request_line", "name", "actions"), [
    (("DELETE", f"{A}/b", "versionid=2024-01-01T00:00:00.0000000Z"), "DeleteBlob", [BLOB_DELETE_VERSION]),
    (("DELETE", f"{A}/b", "deletetype=permanent"), "DeleteBlob", [BLOB_PERMANENT_DELETE]),
    (("GET", "/acct1/", "restype=account&comp=properties"), "GetAccountInformation", [BLOB_READ]),
    (("POST", "/acct1/", "restype=service&comp=userdelegationkey"), "GetUserDelegationKey", [DELEGATION_KEY]),
    (("PUT", f"{A}/b", "comp=immutabilityPolicies"), "SetBlobImmutabilityPolicy", [IMMUTABLE_SUPER]),
    (("DELETE", f"{A}/b", "comp=immutabilityPolicies"), "DeleteBlobImmutabilityPolicy", [IMMUTABLE_SUPER]),
    (("PUT", f"{A}/b", "comp=legalhold"), "SetBlobLegalHold", [IMMUTABLE_SUPER]),
    (("POST", f"{A}/b", "comp=query"), "QueryBlobContents", [BLOB_READ]),
])
def test_mapped_operations(request_line: tuple[str, str, str], name: str, actions: list[str]) -> None:
    op = classify(*request_line, {})
    assert (op.name, op.mapped, [a for n in op.needs for a in n.actions]) == (name, True, actions)


@pytest.mark.parametrize(("method", "path", "query", "name"), [
    ("GET", A, "restype=container&comp=acl", "ContainerACL"),
    ("PUT", A, "restype=container&comp=lease", "LeaseContainer"),
    ("POST", "/acct1/", "comp=batch", "SubmitBatch"),
    ("OPTIONS", f"{A}/b", "", "Preflight"),
])
def test_operations_without_a_documented_permission_are_not_rbac_checked(method: str, path: str, query: str,
                                                                          name: str) -> None:
    op = classify(method, path, query, {})
    assert (op.name, op.mapped) == (name, False)


def test_copy_needs_read_on_a_same_account_source_without_sas() -> None:
    op = classify("PUT", f"{A}/dest", "", {"x-ms-copy-source": "https://127.0.0.1:1/acct1/other/src%20x"})
    assert [(n.actions, n.container) for n in op.needs][1] == ((BLOB_READ,), "other")
    with_sas = classify("PUT", f"{A}/dest", "", {"x-ms-copy-source": "https://h/acct1/other/src?sv=1&sig=abc"})
    assert len(with_sas.needs) == 1 and with_sas.imm is Imm.CREATE


def test_blob_names_are_decoded() -> None:
    op = classify("GET", "/acct1/cont1/dir/a%20b%2Fc.txt", "", {})
    assert (op.account, op.container, op.blob) == ("acct1", "cont1", "dir/a b/c.txt")


@pytest.mark.parametrize(("text", "scope"), [
    ("/", Scope()),
    ("/subscriptions/s1", Scope()),
    ("/subscriptions/s1/resourceGroups/rg", Scope()),
    ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1", Scope("acct1")),
    ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1/blobServices/default",
     Scope("acct1")),
    ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1/blobServices/default/"
     "containers/cont1", Scope("acct1", "cont1")),
    ("acct1", Scope("acct1")),
    ("acct1/cont1", Scope("acct1", "cont1")),
])
def test_scopes(text: str, scope: Scope) -> None:
    assert parse_scope(text) == scope
