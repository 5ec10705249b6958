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
    CONFIG_RESTORE_PRINCIPALS,
    COPY_STORAGE,
    OPERATOR_PRINCIPAL,
    RUNTIME_BLOB_MODULES,
    RUNTIME_STORAGE,
    SUBSCRIPTION,
    A,
    D,
    Need,
    builtin_roles,
    describe,
    grants,
    iter_problems,
    needs,
    scan_dr_core,
    scan_source,
    uncovered,
)


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


def test_the_function_app_identity_may_make_every_call_the_code_makes(infra):
    assert list(iter_problems(infra)) == []


def operator_problems(infra: Infra) -> list[str]:
    """Calls the operator CLI may make (the same use cases as the Function App) its operators could not.

    Every call in dr_core but the retention delete (operators prune with --dry-run only) and the staging
    container's (a configuration snapshot is read by the Function App's worker; the CLI starts one and
    waits for it, it never reads for it itself)."""
    calls, _ = scan_dr_core()
    required, _ = needs(calls)
    granted = grants(infra, principal=OPERATOR_PRINCIPAL)
    return [f"{n.call.where}: {n.call.method}() needs {describe(n.alternatives)} on the {n.scope}"
            for n in required if n.call.method != "delete_blob" and n.call.file not in RUNTIME_BLOB_MODULES
            and not _config_write(n) and uncovered(n, granted)]


def _config_write(need: Need) -> bool:
    """A snapshot restore's write of a configuration item: APIM DR Configuration Restore's, given apart."""
    return need.call.file == "dr_core/azure/config.py" and all(
        p.name.endswith(("/write", "/delete")) for alt in need.alternatives for p in alt)


def test_config_restorers_may_make_every_write_of_a_snapshot_restore_and_nothing_more(infra):
    """configRestorePrincipalIds get exactly the writes of a snapshot restore: no backup, restore or service write."""
    calls, _ = scan_dr_core()
    required, _ = needs(calls)
    granted = grants(infra, principal=CONFIG_RESTORE_PRINCIPALS)
    writes = [n for n in required if _config_write(n)]
    assert writes and [n.call.where for n in writes if uncovered(n, granted)] == []
    assert {g.role_ref for g in granted} == {"customRoles.outputs.configRestoreRoleId"}  # and nothing else


def test_operators_may_make_every_call_the_cli_makes_but_delete(infra):
    assert operator_problems(infra) == []
    granted = grants(infra, principal=OPERATOR_PRINCIPAL)
    assert {g.scope for g in granted} == {APIM_INSTANCE, SUBSCRIPTION, BACKUP_STORAGE, RUNTIME_STORAGE, COPY_STORAGE}
    assert not any(g.role.allows(D(f"{BLOBS}/delete")) for g in granted if g.role is not None)
    assert not [g for g in granted if g.scope == RUNTIME_STORAGE and g.role is not None
                and g.role.allows(D("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"))]


@pytest.mark.parametrize(("old", "new", "expected"), [
    # Before: no runtime roles at all; the CLI failed on its first job row.
    ("      roles.storageQueueDataContributor\n      roles.storageTableDataContributor\n    ]\n  }\n}]\n",
     "      roles.storageQueueDataContributor\n    ]\n  }\n}]\n", "create_entity() needs"),
    ("      roles.storageQueueDataContributor\n      roles.storageTableDataContributor\n    ]\n  }\n}]\n",
     "      roles.storageTableDataContributor\n    ]\n  }\n}]\n", "send_message() needs"),
    # Before: read-only on the backups; `--wait` could tag a backup but not write its metadata.
    ("    principalType: operatorPrincipalType\n    roleDefinitionIds: [\n      customRoles.outputs.backupDataRoleId\n",
     "    principalType: operatorPrincipalType\n    roleDefinitionIds: [\n", "set_blob_metadata() needs"),
])
def test_a_missing_operator_grant_is_named(infra, old, new, expected):
    problems = operator_problems(infra.mutated(MAIN, old, new))
    assert any(expected in p for p in problems), problems


def test_the_scan_finds_the_calls_the_app_is_known_to_make():
    # Guards the scan itself: one that found nothing would pass the coverage test vacuously.
    calls, problems = scan_dr_core()
    assert problems == []
    found = {c.method for c in calls}
    assert {
        "get_service_properties", "find_blobs_by_tags", "get_blob_tags", "set_blob_tags", "set_blob_metadata",
        "get_blob_properties", "send_message", "create_queue", "create_table", "create_entity",
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
    # Over-approximation on purpose: a project method that shares an SDK name would count as the SDK call;
    # that can only ask for more, never less.


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


def test_delete_is_covered_only_by_the_retention_role(infra):
    """Retention (issue 11) deletes backups: delete_blob is covered by the APIM DR Backup Retention role, and
    by nothing else the Function App holds there, so taking that one assignment away takes the delete away."""
    calls, _ = scan_source("def f(blob):\n    blob.delete_blob()\n", "dr_core/new.py")
    (need,), _ = needs(calls)
    assert need.scope == BACKUP_STORAGE
    assert not uncovered(need, grants(infra))
    without = infra.mutated(MAIN, "      customRoles.outputs.backupRetentionRoleId\n",
                            "      customRoles.outputs.backupDataRoleId\n")
    assert uncovered(need, grants(without))
    problems = list(iter_problems(without))
    assert any("delete_blob() needs Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete" in p
               for p in problems), problems


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
        # Issue 11: the manifest and the drill check list the configuration.
        (CUSTOM_ROLES, "          'Microsoft.ApiManagement/service/apis/read'\n", "",
         "api.list_by_service() needs Microsoft.ApiManagement/service/apis/read"),
        (CUSTOM_ROLES, "          'Microsoft.ApiManagement/service/products/read'\n", "",
         "product.list_by_service() needs Microsoft.ApiManagement/service/products/read"),
        (MAIN, "      customRoles.outputs.backupDataRoleId\n", "", "set_blob_metadata() needs"),
        # Issue 11: retention's delete, granted by its own role only.
        (MAIN, "      customRoles.outputs.backupRetentionRoleId\n", "", "delete_blob() needs"),
    ],
)
def test_a_missing_grant_is_named(infra, path, old, new, expected):
    problems = list(iter_problems(infra.mutated(path, old, new)))
    assert any(expected in p for p in problems), problems


def test_delete_on_the_backup_account_only_through_the_retention_role(infra):
    """Least privilege, updated on purpose for retention: the Function App may delete backup blobs (and nothing
    more: no container delete, no version or permanent delete, no write through that role), only through the
    separate APIM DR Backup Retention role, in an assignment of its own; operators never get it."""
    granted = [g for g in grants(infra) if g.scope == BACKUP_STORAGE]
    assert granted and all(g.role is not None for g in granted)
    deleting = [g for g in granted if g.role is not None and g.role.allows(D(f"{BLOBS}/delete"))]
    assert [(g.module, g.role_ref) for g in deleting] == [
        ("backupRetentionAccess", "customRoles.outputs.backupRetentionRoleId")]
    retention = deleting[0].role
    assert retention is not None
    assert retention.data_actions == (f"{BLOBS}/delete",) and retention.actions == ()
    for perm in (D(f"{BLOBS}/write"), D(f"{BLOBS}/read"), D(f"{BLOBS}/deleteBlobVersion/action"),
                 D(f"{BLOBS}/permanentDelete/action"), D(f"{BLOBS}/immutableStorage/runAsSuperUser/action"),
                 A("Microsoft.Storage/storageAccounts/blobServices/containers/delete")):
        assert not retention.allows(perm), perm
    for perm in (A("Microsoft.Storage/storageAccounts/blobServices/containers/delete"),
                 D(f"{BLOBS}/permanentDelete/action"), D(f"{BLOBS}/deleteBlobVersion/action")):
        assert not any(g.role.allows(perm) for g in granted if g.role is not None), perm
    everyone = [g for g in grants(infra, principal=None) if g.role_ref == "customRoles.outputs.backupRetentionRoleId"]
    assert [g.module for g in everyone] == ["backupRetentionAccess", "copyRetentionAccess"], \
        "only the Function App may delete backups (and their copies)"


def test_only_retention_deletes_backups():
    """The permission is granted for retention alone: the one SDK delete sits in BackupStore.delete, and the only
    code that calls that is the retention package."""
    import ast

    from tests.infra.rbac_model import DR_CORE

    calls, _ = scan_dr_core()
    # On the backup account; the staging container (the app's own account) deletes its scratch blobs.
    assert {c.file for c in calls if c.method == "delete_blob"} - RUNTIME_BLOB_MODULES == {"dr_core/azure/blobs.py"}
    callers = set()
    for path in DR_CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "delete" \
                    and "backups" in ast.unparse(node.func.value):
                callers.add(path.relative_to(DR_CORE.parent).as_posix())
    assert callers == {"dr_core/retention/pruner.py"}


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


# -- copies in a second region (issue 21) -----------------------------------------------------------------------

def test_the_copier_writes_the_copy_account_and_reads_the_backup_account_with_its_own_token():
    calls, problems = scan_dr_core()
    assert problems == []
    required, unmapped = needs(calls)
    assert unmapped == []
    copier = {(n.call.method, n.scope, n.alternatives) for n in required if n.call.file == "dr_core/azure/copies.py"}
    write = (frozenset({D(f"{BLOBS}/write")}), frozenset({D(f"{BLOBS}/add/action")}))
    read = (frozenset({D(f"{BLOBS}/read")}),)
    assert ("upload_blob_from_url", COPY_STORAGE, write) in copier
    assert ("upload_blob_from_url", BACKUP_STORAGE, read) in copier  # x-ms-copy-source-authorization
    assert ("stage_block_from_url", BACKUP_STORAGE, read) in copier
    assert ("commit_block_list", COPY_STORAGE, write) in copier
    assert ("get_blob_properties", BACKUP_STORAGE, read) in copier and ("get_blob_properties", COPY_STORAGE, read) \
        in copier
    # The store both accounts use: its catalog query and tag writes need the catalog role on the copy account too.
    store = {(n.call.method, n.scope) for n in required if n.call.file == "dr_core/azure/blobs.py"}
    assert {("find_blobs_by_tags", COPY_STORAGE), ("set_blob_tags", COPY_STORAGE), ("delete_blob", COPY_STORAGE),
            ("get_service_properties", COPY_STORAGE)} <= store


_COPY_DATA = ("    storageAccountName: deployCopies ? copyStorage.outputs.name : ''\n"
              "    principalId: identity.outputs.principalId\n    roleDefinitionIds: [\n")


@pytest.mark.parametrize(("old", "new", "expected"), [
    (_COPY_DATA + "      customRoles.outputs.backupDataRoleId\n      customRoles.outputs.backupCatalogRoleId\n",
     _COPY_DATA + "      customRoles.outputs.backupCatalogRoleId\n", "upload_blob_from_url() needs"),
    (_COPY_DATA + "      customRoles.outputs.backupRetentionRoleId\n", _COPY_DATA,
     "delete_blob() needs Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete (dataAction) on "
     "the copy storage account"),
])
def test_a_missing_copy_account_grant_is_named(infra, old, new, expected):
    problems = list(iter_problems(infra.mutated(MAIN, old, new)))
    assert any(expected in p for p in problems), problems


def test_apim_identities_may_read_the_copies_and_nothing_more(infra):
    granted = [g for g in grants(infra, principal=None) if g.module == "apimCopyAccess"]
    assert [g.scope for g in granted] == ["copy container"]
    (role,) = [g.role for g in granted]
    assert role is not None and role.name == "Storage Blob Data Reader"
    assert role.allows(D(f"{BLOBS}/read")) and not role.allows(D(f"{BLOBS}/write"))
