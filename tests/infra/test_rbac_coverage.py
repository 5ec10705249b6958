"""The roles infra/ grants cover every Azure call the code makes (Azurite cannot enforce RBAC).

Both sides are derived (see rbac_model.py): the calls from an AST scan of dr_core/, their actions from
Microsoft's permission tables and from the request the APIM SDK builds; the grants from main.bicep,
the built-in role definitions in builtin_roles.json and the custom roles in custom-roles.bicep.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.bicep_model import CUSTOM_ROLES, MAIN, ROLES_JSON, Infra
from tests.infra.rbac_model import (
    APIM_INSTANCE,
    BACKUP_STORAGE,
    BLOBS,
    BUILTIN_ROLES,
    RUNTIME_STORAGE,
    SUBSCRIPTION,
    A,
    D,
    builtin_roles,
    grants,
    iter_problems,
    needs,
    scan_dr_core,
    scan_source,
)


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


def test_the_function_app_identity_may_make_every_call_the_code_makes(infra):
    assert list(iter_problems(infra)) == []


def test_the_scan_finds_the_calls_the_app_is_known_to_make():
    # Guards the scan itself: one that found nothing would pass the coverage test vacuously.
    calls, problems = scan_dr_core()
    assert problems == []
    found = {c.method for c in calls}
    assert {
        "get_service_properties", "find_blobs_by_tags", "get_blob_tags", "set_blob_tags", "set_blob_metadata",
        "get_blob_properties", "exists", "send_message", "create_queue", "create_table", "create_entity",
        "submit_transaction", "get_entity", "query_entities", "update_entity", "delete_entity",
        "api_management_service.get", "api_management_service.list", "api_management_service.begin_backup",
        "api_management_service.begin_restore", "_send_request",
    } <= found
    required, unmapped = needs(calls)
    assert unmapped == []
    by_method = {(n.call.method, n.scope, n.alternatives) for n in required}
    # The two actions issue 8 is about, derived rather than listed.
    assert ("_send_request", APIM_INSTANCE,
            (frozenset({A("Microsoft.ApiManagement/service/operationresults/read")}),)) in by_method
    assert ("get_service_properties", BACKUP_STORAGE,
            (frozenset({A("Microsoft.Storage/storageAccounts/blobServices/read")}),)) in by_method
    assert ("api_management_service.list", SUBSCRIPTION,
            (frozenset({A("Microsoft.ApiManagement/service/read")}),)) in by_method
    assert {n.scope for n in required if n.call.method == "send_message"} == {RUNTIME_STORAGE}
    # Over-approximation on purpose: a project method that shares an SDK name (BackupStore.exists) counts
    # as the SDK call; that can only ask for more, never less.


def test_an_sdk_call_missing_from_the_table_fails():
    calls, _ = scan_source("def purge(blob):\n    blob.undelete_blob()\n", "dr_core/new.py")
    _, unmapped = needs(calls)
    assert len(unmapped) == 1 and "dr_core/new.py:2" in unmapped[0] and "undelete_blob" in unmapped[0]


def test_an_ambiguous_storage_call_needs_its_service_shown():
    calls, _ = scan_source("def f(client):\n    client.get_service_properties()\n", "dr_core/new.py")
    _, unmapped = needs(calls)
    assert len(unmapped) == 1 and "several storage clients" in unmapped[0]
    # Shown by the module's only storage SDK import (as in backup_store.py) ...
    typed = "from azure.storage.blob import BlobServiceClient\ndef f(client):\n    client.get_service_properties()\n"
    (need,), unmapped = needs(scan_source(typed, "dr_core/new.py")[0])
    assert unmapped == [] and need.scope == BACKUP_STORAGE
    # ... but not when the module imports several.
    mixed = "import azure.storage.queue\n" + typed
    assert needs(scan_source(mixed, "dr_core/new.py")[0])[1]


def test_dynamic_arm_calls_are_resolved_or_reported():
    resolved = (
        "class Ops:\n"
        "    def backup(self, c):\n        return self._go('backup', c)\n"
        "    def _go(self, action, c):\n        return getattr(c.api_management_service, f'begin_{action}')()\n"
    )
    calls, problems = scan_source(resolved, "dr_core/x.py")
    assert problems == [] and [c.method for c in calls] == ["api_management_service.begin_backup"]
    opaque = resolved.replace("self._go('backup', c)", "self._go(c.kind, c)")
    calls, problems = scan_source(opaque, "dr_core/x.py")
    assert calls == [] and problems and "non-literal action" in problems[0]


def test_a_delete_call_would_not_be_covered_on_the_backup_account(infra):
    # The app never deletes backups; a delete_blob added to dr_core would need a grant of its own.
    calls, _ = scan_source("def f(blob):\n    blob.delete_blob()\n", "dr_core/new.py")
    (need,), _ = needs(calls)
    assert need.scope == BACKUP_STORAGE
    from tests.infra.rbac_model import uncovered

    assert uncovered(need, grants(infra))


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # Issue 8 part 1: without operationresults/read, every job fails at its first poll.
        (CUSTOM_ROLES, "          'Microsoft.ApiManagement/service/operationresults/read'\n", "",
         "_send_request() needs Microsoft.ApiManagement/service/operationresults/read"),
        # Issue 8 part 2: the CORS preflight's Get Blob Service Properties.
        (CUSTOM_ROLES, "          'Microsoft.Storage/storageAccounts/blobServices/read'\n", "",
         "get_service_properties() needs Microsoft.Storage/storageAccounts/blobServices/read"),
        (MAIN, "      roles.storageQueueDataContributor\n", "", "send_message() needs"),
        (MAIN, "      customRoles.outputs.backupDataRoleId\n", "", "set_blob_metadata() needs"),
    ],
)
def test_a_missing_grant_is_named(infra, path, old, new, expected):
    problems = list(iter_problems(infra.mutated(path, old, new)))
    assert any(expected in p for p in problems), problems


def test_no_delete_on_the_backup_account(infra):
    """Least privilege: the app never deletes a backup (retention, when it comes, is granted apart)."""
    roles = [g.role for g in grants(infra) if g.scope == BACKUP_STORAGE]
    assert roles and all(r is not None for r in roles)
    for perm in (D(f"{BLOBS}/delete"), A("Microsoft.Storage/storageAccounts/blobServices/containers/delete")):
        assert not any(r.allows(perm) for r in roles if r is not None), perm


def test_no_delete_when_storage_blob_data_contributor_is_back(infra):
    mutated = infra.mutated(MAIN, "      customRoles.outputs.backupDataRoleId\n",
                            "      roles.storageBlobDataContributor\n")
    roles = [g.role for g in grants(mutated) if g.scope == BACKUP_STORAGE and g.role is not None]
    assert any(r.allows(D(f"{BLOBS}/delete")) for r in roles)


def test_apim_identities_may_write_and_read_their_backups(infra):
    granted = [g for g in grants(infra, principal=None) if g.module == "apimBackupAccess"]
    assert [g.scope for g in granted] == ["backup container"]
    (role,) = [g.role for g in granted]
    assert role is not None
    assert role.allows(D(f"{BLOBS}/write")) and role.allows(D(f"{BLOBS}/read"))


def test_builtin_role_definitions_match_the_role_table(infra):
    recorded = builtin_roles()
    table = infra.json(ROLES_JSON)
    for key, guid in table.items():
        if key == "keyVaultSecretsUser":
            assert "Key Vault Secrets User" in json.loads(BUILTIN_ROLES.read_text())["_source"]
            continue
        assert guid in recorded, f"{key} ({guid}) has no recorded definition"
        name = re.sub(r"(?<!^)(?=[A-Z])", " ", key).title()
        assert recorded[guid].name == name, (key, recorded[guid].name)
