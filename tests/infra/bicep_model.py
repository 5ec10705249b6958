"""Offline model of ``infra/`` and the structural checks run on it.

There is no Bicep compiler here, so the templates are parsed with pycep-parser (0.7.1, syntax
only: identifiers and string literals both come back as plain strings, and operator precedence
is not Bicep's). The checks therefore look at shapes that do not depend on evaluation: literal
property values, object keys, which identifier a property refers to.

Every check is a function ``check_*(infra) -> list[str]`` returning one line per problem. The
tests run each check on the templates as they are (expecting no problem) and on mutated copies
(expecting the mutation to be caught), so no check can silently pass everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

from dr_core.drills import drills
from dr_core.drills.drills import LOG_PREFIX as DRILL_LOG_PREFIX
from dr_core.kernel.settings import JOBS_TABLE, POLL_QUEUE, SETTINGS, WORK_QUEUE
from dr_core.posture.rpo import LOG_PREFIX as RPO_LOG_PREFIX
from dr_core.standby import sync as standby

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

# The connection string is how the code reaches Azurite locally; in Azure the identity-based
# AzureWebJobsStorage__* settings replace it, and no key exists to build one from.
LOCAL_ONLY_SETTINGS = frozenset({"AzureWebJobsStorage"})
# Read by the Functions host rather than by the app's code.
PLATFORM_SETTINGS = frozenset({"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"})
# Deprecated or moved on Flex Consumption (learn: functions-app-settings, Flex deprecations).
FLEX_REJECTED_SETTINGS = frozenset({
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_TIME_ZONE", "TZ",
})
APIM_DR_OPERATOR_ACTIONS = frozenset({
    "Microsoft.ApiManagement/service/read",
    "Microsoft.ApiManagement/service/operationresults/read",
    "Microsoft.ApiManagement/service/backup/action",
    "Microsoft.ApiManagement/service/restore/action",
    # Names of the configuration: backup manifests and restore drills.
    "Microsoft.ApiManagement/service/apis/read",
    "Microsoft.ApiManagement/service/products/read",
    "Microsoft.ApiManagement/service/namedValues/read",
    # Configuration snapshots: every child resource they read (never namedValues/listValue/action).
    "Microsoft.ApiManagement/service/certificates/read",
    "Microsoft.ApiManagement/service/backends/read",
    "Microsoft.ApiManagement/service/loggers/read",
    "Microsoft.ApiManagement/service/tags/read",
    "Microsoft.ApiManagement/service/groups/read",
    "Microsoft.ApiManagement/service/apiVersionSets/read",
    "Microsoft.ApiManagement/service/schemas/read",
    "Microsoft.ApiManagement/service/policyFragments/read",
    "Microsoft.ApiManagement/service/diagnostics/read",
    "Microsoft.ApiManagement/service/policies/read",
    "Microsoft.ApiManagement/service/apis/operations/read",
    "Microsoft.ApiManagement/service/apis/schemas/read",
    "Microsoft.ApiManagement/service/apis/tags/read",
    "Microsoft.ApiManagement/service/apis/operations/tags/read",
    "Microsoft.ApiManagement/service/apis/diagnostics/read",
    "Microsoft.ApiManagement/service/apis/revisions/read",
    "Microsoft.ApiManagement/service/apis/policies/read",
    "Microsoft.ApiManagement/service/apis/operations/policies/read",
    "Microsoft.ApiManagement/service/products/apis/read",
    "Microsoft.ApiManagement/service/products/groups/read",
    "Microsoft.ApiManagement/service/products/tags/read",
    "Microsoft.ApiManagement/service/products/policies/read",
})
# Configuration snapshot restore: write and delete of every item kind (dr_core/azure/config.py), nothing else.
CONFIG_RESTORE_ACTIONS = frozenset({
    "Microsoft.ApiManagement/service/apiVersionSets/delete",
    "Microsoft.ApiManagement/service/apiVersionSets/write",
    "Microsoft.ApiManagement/service/apis/delete",
    "Microsoft.ApiManagement/service/apis/diagnostics/delete",
    "Microsoft.ApiManagement/service/apis/diagnostics/write",
    "Microsoft.ApiManagement/service/apis/operations/delete",
    "Microsoft.ApiManagement/service/apis/operations/policies/delete",
    "Microsoft.ApiManagement/service/apis/operations/policies/write",
    "Microsoft.ApiManagement/service/apis/operations/tags/delete",
    "Microsoft.ApiManagement/service/apis/operations/tags/write",
    "Microsoft.ApiManagement/service/apis/operations/write",
    "Microsoft.ApiManagement/service/apis/policies/delete",
    "Microsoft.ApiManagement/service/apis/policies/write",
    "Microsoft.ApiManagement/service/apis/schemas/delete",
    "Microsoft.ApiManagement/service/apis/schemas/write",
    "Microsoft.ApiManagement/service/apis/tags/delete",
    "Microsoft.ApiManagement/service/apis/tags/write",
    "Microsoft.ApiManagement/service/apis/write",
    "Microsoft.ApiManagement/service/backends/delete",
    "Microsoft.ApiManagement/service/backends/write",
    "Microsoft.ApiManagement/service/certificates/delete",
    "Microsoft.ApiManagement/service/certificates/write",
    "Microsoft.ApiManagement/service/diagnostics/delete",
    "Microsoft.ApiManagement/service/diagnostics/write",
    "Microsoft.ApiManagement/service/groups/delete",
    "Microsoft.ApiManagement/service/groups/write",
    "Microsoft.ApiManagement/service/loggers/delete",
    "Microsoft.ApiManagement/service/loggers/write",
    "Microsoft.ApiManagement/service/namedValues/delete",
    "Microsoft.ApiManagement/service/namedValues/write",
    "Microsoft.ApiManagement/service/policies/delete",
    "Microsoft.ApiManagement/service/policies/write",
    "Microsoft.ApiManagement/service/policyFragments/delete",
    "Microsoft.ApiManagement/service/policyFragments/write",
    "Microsoft.ApiManagement/service/products/apis/delete",
    "Microsoft.ApiManagement/service/products/apis/write",
    "Microsoft.ApiManagement/service/products/delete",
    "Microsoft.ApiManagement/service/products/groups/delete",
    "Microsoft.ApiManagement/service/products/groups/write",
    "Microsoft.ApiManagement/service/products/policies/delete",
    "Microsoft.ApiManagement/service/products/policies/write",
    "Microsoft.ApiManagement/service/products/tags/delete",
    "Microsoft.ApiManagement/service/products/tags/write",
    "Microsoft.ApiManagement/service/products/write",
    "Microsoft.ApiManagement/service/schemas/delete",
    "Microsoft.ApiManagement/service/schemas/write",
    "Microsoft.ApiManagement/service/tags/delete",
    "Microsoft.ApiManagement/service/tags/write",
})
BACKUP_DATA_DATA_ACTIONS = frozenset({
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
})
BACKUP_CATALOG_ACTIONS = frozenset({"Microsoft.Storage/storageAccounts/blobServices/read"})
# The one permission retention needs (Delete Blob on a backup or its sidecar), in a role of its own.
BACKUP_RETENTION_DATA_ACTIONS = frozenset({"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"})
INDEX_TAG_DATA_ACTIONS = frozenset({
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action",
})
GEO_REDUNDANT_SKUS = frozenset({"Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS"})
JOB_STATES_ALERTED = frozenset({"Failed", "TimedOut"})
JOB_LOG_PREFIX = "APIMDR_JOB "
# The fields each structured log line carries, as the workbook may read them (dotted paths into
# the JSON after the prefix). APIMDR_JOB is notify.log_transition and APIMDR_RPO rpo._log_change
# (test_status_workbook.py and test_rpo.py check them against the lines logged); the standby and
# drill lines take their top-level fields from the code's LOG_FIELDS, their nested ones from the
# record contract (docs/architecture.md).
_ERROR_FIELDS = frozenset({"error.code", "error.message", "error.remediation"})
LOG_LINE_FIELDS: dict[str, frozenset[str]] = {
    "APIMDR_JOB": frozenset({"jobId", "kind", "instance", "state", "durationSeconds", "elapsedSeconds", "errorCode",
                             "errorMessage", "remediation", "waitingFor"}),
    "APIMDR_RPO": frozenset({"instance", "serviceName", "state", "previous", "since", "targetHours", "ageHours",
                             "newestRestorable", "newestRestorable.blobName", "newestRestorable.createdAt",
                             "reason"}),
    "APIMDR_STANDBY": frozenset(standby.LOG_FIELDS) | _ERROR_FIELDS | {
        "lastSucceeded.backup", "lastSucceeded.backupCreatedAt", "lastSucceeded.finishedAt"},
    "APIMDR_DRILL": frozenset(drills.LOG_FIELDS) | _ERROR_FIELDS,  # the verification as counts: missing, unexpected
}

GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
AZD_VAR_RE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)(=[^}]*)?\}$")

# File names inside infra/ (posix, relative).
MAIN = "main.bicep"
FUNCTION_APP = "app/function-app.bicep"
RUNTIME_STORAGE = "storage/runtime-storage.bicep"
BACKUP_STORAGE = "storage/backup-storage.bicep"
MONITORING = "monitor/monitoring.bicep"
JOB_ALERTS = "monitor/job-alerts.bicep"
RPO_ALERTS = "monitor/rpo-alerts.bicep"
STATUS_WORKBOOK = "monitor/status-workbook.bicep"
STATUS_WORKBOOK_JSON = "monitor/status-workbook.json"
DRILL_ALERTS = "monitor/drill-alerts.bicep"
CUSTOM_ROLES = "rbac/custom-roles.bicep"
APIM_BACKUP_ACCESS = "rbac/apim-backup-access.bicep"
STORAGE_ACCESS = "rbac/storage-access.bicep"
IDENTITY = "app/identity.bicep"
ROLES_JSON = "roles.json"
PARAMETERS_JSON = "main.parameters.json"
AZURE_YAML = "../azure.yaml"


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> str:
    # Cached on the text itself, so a mutated copy is parsed anew; JSON keeps the cache immutable.
    return json.dumps(BicepParser().parse(text=text))


def parse_bicep(text: str) -> dict[str, Any]:
    """Parse Bicep source with pycep-parser; raises on a syntax error."""
    return json.loads(_parse_cached(text))


@dataclass(frozen=True)
class Infra:
    """The text of every file under infra/ (plus azure.yaml), keyed by posix path relative to infra/."""

    texts: dict[str, str]
    _trees: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_disk(cls) -> Infra:
        texts = {p.relative_to(INFRA).as_posix(): p.read_text() for p in sorted(INFRA.rglob("*"))
                 if p.is_file() and p.suffix in {".bicep", ".json"}}
        texts[AZURE_YAML] = (ROOT / "azure.yaml").read_text()
        return cls(texts)

    def mutated(self, path: str, old: str, new: str) -> Infra:
        """A copy with ``old`` replaced by ``new`` in one file (``old`` must occur there)."""
        text = self.texts[path]
        if old not in text:
            raise AssertionError(f"mutation target not found in {path}: {old!r}")
        return Infra({**self.texts, path: text.replace(old, new)})

    @property
    def bicep_files(self) -> list[str]:
        return [p for p in self.texts if p.endswith(".bicep")]

    def tree(self, path: str) -> dict[str, Any]:
        if path not in self._trees:
            self._trees[path] = parse_bicep(self.texts[path])
        return self._trees[path]

    def json(self, path: str) -> Any:
        return json.loads(self.texts[path])


# ---------------------------------------------------------------------------------------------
# Helpers over pycep trees
# ---------------------------------------------------------------------------------------------

def body(node: dict[str, Any]) -> dict[str, Any]:
    """The properties of a resource/module, under any ``if()`` condition or loop."""
    cfg = node["config"]
    while isinstance(cfg, dict) and ("condition" in cfg or "loop_type" in cfg) and "config" in cfg:
        cfg = cfg["config"]
    return cfg


def resources(tree: dict[str, Any], rtype: str | None = None, *, existing: bool = False) -> dict[str, dict]:
    return {name: r for name, r in tree.get("resources", {}).items()
            if (rtype is None or r["type"].lower() == rtype.lower()) and r.get("existing", False) == existing}


def one_resource(tree: dict[str, Any], rtype: str) -> tuple[str, dict[str, Any]]:
    found = resources(tree, rtype)
    if len(found) != 1:
        raise AssertionError(f"expected one {rtype}, found {sorted(found)}")
    name, res = next(iter(found.items()))
    return name, body(res)


def get(obj: Any, *keys: str, default: Any = None) -> Any:
    """Nested lookup; keys match case-insensitively (ARM property names are case-insensitive)."""
    for key in keys:
        if not isinstance(obj, dict):
            return default
        match = next((k for k in obj if k.lower() == key.lower()), None)
        if match is None:
            return default
        obj = obj[match]
    return obj


def accessor(node: Any) -> list[str]:
    """``a.b.c`` as ``['a', 'b', 'c']``; anything else as ``[]``."""
    if isinstance(node, str):
        return [node]
    op = get(node, "operator")
    if isinstance(op, dict) and op.get("type") == "property_accessor":
        left, right = op["operands"]["operand_1"], op["operands"]["operand_2"]
        head = accessor(left)
        tail = accessor(right)
        return head + tail if head and tail else []
    return []


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def object_keys(node: Any) -> set[str]:
    """Keys of every object literal in an expression (through union(), ternaries, etc.)."""
    keys: set[str] = set()
    if isinstance(node, list):
        for item in node:
            keys |= object_keys(item)
    elif isinstance(node, dict):
        if set(node) == {"function"}:
            keys |= object_keys(list(node["function"].get("parameters", {}).values()))
        elif set(node) == {"operator"}:
            keys |= object_keys(list(node["operator"].get("operands", {}).values()))
        else:
            for key, value in node.items():
                keys.add(key.strip("'"))
                keys |= object_keys(value)
    return keys


def strings(node: Any) -> set[str]:
    return {n for n in walk(node) if isinstance(n, str)}


def app_settings(infra: Infra) -> set[str]:
    """Names of the app settings the Function App module sets."""
    tree = infra.tree(FUNCTION_APP)
    return object_keys(tree["variables"]["appSettings"]["value"])


# ---------------------------------------------------------------------------------------------
# Checks. Each returns a list of problems; empty means the check passed.
# ---------------------------------------------------------------------------------------------

Check = Callable[[Infra], list[str]]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__] = fn
    return fn


@check
def check_every_parameter_has_a_description(infra: Infra) -> list[str]:
    problems = []
    for path in infra.bicep_files:
        for name, param in infra.tree(path).get("parameters", {}).items():
            if not any(d.get("type") == "description" and d.get("argument") for d in param.get("decorators", [])):
                problems.append(f"{path}: parameter {name} has no @description")
    return problems


@check
def check_no_registry_modules(infra: Infra) -> list[str]:
    problems = []
    for path in infra.bicep_files:
        for name, module in infra.tree(path).get("modules", {}).items():
            source = module["detail"]["full"]
            if module["type"] != "local" or source.startswith(("br:", "br/", "ts:", "ts/")):
                problems.append(f"{path}: module {name} comes from a registry ({source}); use a local file")
        if re.search(r"""['"](br|ts)[:/]""", infra.texts[path]):
            problems.append(f"{path}: mentions a registry module reference (br:/br/ or ts:)")
    return problems


@check
def check_no_key_listing(infra: Infra) -> list[str]:
    pattern = re.compile(r"\blist(Keys|AccountSas|ServiceSas|ConnectionStrings|Secrets)\s*\(", re.I)
    return [f"{path}: calls {m.group(0)} (no template may read keys)"
            for path in infra.bicep_files for m in pattern.finditer(infra.texts[path])]


@check
def check_no_guid_outside_role_table(infra: Infra) -> list[str]:
    return [f"{path}: literal GUID {m.group(0)} (role GUIDs belong in infra/{ROLES_JSON})"
            for path, text in infra.texts.items() if path != ROLES_JSON for m in GUID_RE.finditer(text)]


@check
def check_role_table(infra: Infra) -> list[str]:
    roles = infra.json(ROLES_JSON)
    problems = [f"{ROLES_JSON}: {key} = {guid!r} is not a GUID"
                for key, guid in roles.items() if not GUID_RE.fullmatch(str(guid))]
    if len(set(roles.values())) != len(roles):
        problems.append(f"{ROLES_JSON}: a GUID appears twice")
    main = infra.tree(MAIN)
    if "loadJsonContent" not in infra.texts[MAIN] or "roles.json" not in infra.texts[MAIN]:
        problems.append(f"{MAIN}: does not load {ROLES_JSON}")
    used = {path[1] for path in map(accessor, walk(main)) if len(path) == 2 and path[0] == "roles"}
    problems += [f"{MAIN}: roles.{key} is not in {ROLES_JSON}" for key in sorted(used - set(roles))]
    problems += [f"{ROLES_JSON}: {key} is never used" for key in sorted(set(roles) - used)]
    return problems


@check
def check_role_assignments_use_role_table(infra: Infra) -> list[str]:
    """Every role assignment names its role through a parameter, and every caller passes either an
    entry of roles.json or a custom role created by rbac/custom-roles.bicep."""
    problems = []
    custom = {"customRoles"}
    for path in infra.bicep_files:
        tree = infra.tree(path)
        params = set(tree.get("parameters", {}))
        loop_vars = {get(r["config"], "loop_type", "detail", "item_name") for r in tree.get("resources", {}).values()}
        for name, res in resources(tree, "Microsoft.Authorization/roleAssignments").items():
            role = get(body(res), "properties", "roleDefinitionId")
            fn = get(role, "function") or {}
            args = [v for v in fn.get("parameters", {}).values() if v is not None]
            if fn.get("type") != "subscription_resource_id" or len(args) != 2 \
                    or args[0] != "Microsoft.Authorization/roleDefinitions" or args[1] not in params | loop_vars:
                problems.append(f"{path}: role assignment {name} does not take its role from a parameter")
        for name, module in tree.get("modules", {}).items():
            for key, value in body(module).get("params", {}).items():
                if not key.lower().startswith("roledefinitionid"):
                    continue
                for item in value if isinstance(value, list) else [value]:
                    ref = accessor(item)
                    if not ((len(ref) == 2 and ref[0] == "roles") or (ref and ref[0] in custom)):
                        problems.append(f"{path}: module {name} passes {key} that is neither roles.<name> "
                                        "nor a custom role output")
    return problems


@check
def check_custom_roles(infra: Infra) -> list[str]:
    tree = infra.tree(CUSTOM_ROLES)
    problems = []
    defs = resources(tree, "Microsoft.Authorization/roleDefinitions")
    expected = {"operatorRole": (APIM_DR_OPERATOR_ACTIONS, frozenset()),
                "configRestoreRole": (CONFIG_RESTORE_ACTIONS, frozenset()),
                "backupDataRole": (frozenset(), BACKUP_DATA_DATA_ACTIONS),
                "backupCatalogRole": (BACKUP_CATALOG_ACTIONS, INDEX_TAG_DATA_ACTIONS),
                "backupRetentionRole": (frozenset(), BACKUP_RETENTION_DATA_ACTIONS)}
    if set(defs) != set(expected):
        problems.append(f"{CUSTOM_ROLES}: role definitions {sorted(defs)}, expected {sorted(expected)}")
    for name, (actions, data_actions) in expected.items():
        if name not in defs:
            continue
        perms = get(body(defs[name]), "properties", "permissions") or []
        if len(perms) != 1:
            problems.append(f"{CUSTOM_ROLES}: {name} must have exactly one permission block")
            continue
        perm = perms[0]
        if set(perm.get("actions", [])) != actions or len(perm.get("actions", [])) != len(actions):
            problems.append(f"{CUSTOM_ROLES}: {name} actions are {perm.get('actions')}, expected {sorted(actions)}")
        if set(perm.get("dataActions", [])) != data_actions or len(perm.get("dataActions", [])) != len(data_actions):
            problems.append(f"{CUSTOM_ROLES}: {name} dataActions are {perm.get('dataActions')}, "
                            f"expected {sorted(data_actions)}")
        if perm.get("notActions") or perm.get("notDataActions"):
            problems.append(f"{CUSTOM_ROLES}: {name} has notActions/notDataActions")
        if any("*" in a for a in perm.get("actions", []) + perm.get("dataActions", [])):
            problems.append(f"{CUSTOM_ROLES}: {name} uses a wildcard")
    operator = defs.get("operatorRole")
    if operator and get(body(operator), "properties", "assignableScopes") != "operatorAssignableScopes":
        problems.append(f"{CUSTOM_ROLES}: operatorRole must be assignable only at operatorAssignableScopes")
    # Where exactly it is assignable, in each layout (same subscription, instances elsewhere): layouts.py.
    main = infra.tree(MAIN)
    grants = json.dumps(main["variables"].get("operatorGrantScopes", {}))
    if "targetResourceGroupScopes" not in grants or "discoveryScopes" not in grants:
        problems.append(f"{MAIN}: operatorGrantScopes must be the instances' resource groups and the "
                        "discovery subscriptions")
    return problems


@check
def check_role_assignments_name_their_principal_type(infra: Infra) -> list[str]:
    """ARM looks a principal up in Entra ID unless the assignment says what it is; for an identity created
    in the same deployment that lookup can fail with PrincipalNotFound (replication delay). Every
    assignment therefore sets principalType (troubleshooting.md, "Assigning a role to a new principal
    sometimes fails"; bicep scenarios-rbac.md, "Principal")."""
    problems = []
    for path in infra.bicep_files:
        for name, res in resources(infra.tree(path), "Microsoft.Authorization/roleAssignments").items():
            if not get(body(res), "properties", "principalType"):
                problems.append(f"{path}: role assignment {name} does not set principalType")
    return problems


def _module(infra: Infra, name: str) -> dict[str, Any]:
    module = infra.tree(MAIN).get("modules", {}).get(name)
    if module is None:
        raise AssertionError(f"{MAIN}: module {name} is missing")
    return module


def _role_keys(value: Any) -> set[str]:
    items = value if isinstance(value, list) else [value]
    return {".".join(accessor(i)) for i in items}


@check
def check_function_identity_roles(infra: Infra) -> list[str]:
    """The Function App's identity: data roles on its storage, on the backup account, and on App Insights."""
    expected = {
        "runtimeStorageAccess": ("runtimeStorage.outputs.name", {
            "roles.storageBlobDataOwner", "roles.storageQueueDataContributor", "roles.storageTableDataContributor"}),
        # No built-in blob role: each has blobs/delete, which only the retention role below grants.
        "backupStorageAccess": ("backupStorage.outputs.name", {
            "customRoles.outputs.backupDataRoleId", "customRoles.outputs.backupCatalogRoleId"}),
        # Deleting backups (retention), alone in its own assignment.
        "backupRetentionAccess": ("backupStorage.outputs.name", {"customRoles.outputs.backupRetentionRoleId"}),
    }
    problems = []
    for name, (account, roles) in expected.items():
        params = body(_module(infra, name))["params"]
        if ".".join(accessor(params.get("storageAccountName"))) != account:
            problems.append(f"{MAIN}: {name} is not on {account}")
        if ".".join(accessor(params.get("principalId"))) != "identity.outputs.principalId":
            problems.append(f"{MAIN}: {name} is not for the Function App's identity")
        if _role_keys(params.get("roleDefinitionIds")) != roles:
            problems.append(f"{MAIN}: {name} grants {sorted(_role_keys(params.get('roleDefinitionIds')))}, "
                            f"expected {sorted(roles)}")
    insights = body(_module(infra, "appInsightsAccess"))["params"]
    if _role_keys(insights.get("roleDefinitionId")) != {"roles.monitoringMetricsPublisher"}:
        problems.append(f"{MAIN}: appInsightsAccess must grant Monitoring Metrics Publisher")
    operator = _module(infra, "apimOperatorAccess")
    if get(operator["config"], "loop_type", "detail", "array_name") != "accessTargets":
        problems.append(f"{MAIN}: apimOperatorAccess must loop over accessTargets (instances, standbys, drills)")
    for name in ("apimOperatorAccess", "discoveryOperatorAccess"):
        params = body(_module(infra, name))["params"]
        if _role_keys(params.get("roleDefinitionId")) != {"customRoles.outputs.operatorRoleId"}:
            problems.append(f"{MAIN}: {name} must grant the APIM DR Operator custom role")
        granted = {".".join(accessor(node["principalId"])) for node in walk(params.get("principals"))
                   if isinstance(node, dict) and "principalId" in node}
        if "identity.outputs.principalId" not in granted:
            problems.append(f"{MAIN}: {name} must grant the Function App's identity")
    return problems


@check
def check_operator_roles(infra: Infra) -> list[str]:
    """People running the operator CLI: the APIM custom role where the app has it, the app's storage data roles
    without delete on the backups, the jobs table and work queues on the runtime account."""
    problems = []
    for name in ("apimOperatorAccess", "discoveryOperatorAccess"):
        if "operatorPrincipals" not in json.dumps(body(_module(infra, name))["params"].get("principals")):
            problems.append(f"{MAIN}: {name} must also grant the operators")
    # Backups: the app's data roles without delete. Runtime: the CLI writes job rows and the restore lock,
    # and queues the jobs it starts; no blob role (host leases, deployment package).
    for name, account, expected, what in (
            ("operatorBackupAccess", "backupStorage", {"customRoles.outputs.backupDataRoleId",
                                                       "customRoles.outputs.backupCatalogRoleId"},
             "the Function App's data roles without delete (APIM DR Backup Data, APIM DR Backup Catalog)"),
            ("operatorRuntimeAccess", "runtimeStorage", {"roles.storageQueueDataContributor",
                                                         "roles.storageTableDataContributor"},
             "Storage Queue Data Contributor and Storage Table Data Contributor (no blob role)")):
        module = _module(infra, name)
        if get(module["config"], "loop_type", "detail", "array_name") != "operatorPrincipalIds":
            problems.append(f"{MAIN}: {name} must loop over operatorPrincipalIds")
        params = body(module)["params"]
        if ".".join(accessor(params.get("storageAccountName"))) != f"{account}.outputs.name":
            problems.append(f"{MAIN}: {name} must be on the {account} account")
        granted = _role_keys(params.get("roleDefinitionIds"))
        if granted != expected:
            problems.append(f"{MAIN}: operators get {sorted(granted)} from {name}; expected {what}")
    return problems


@check
def check_apim_identities_on_backup_account(infra: Infra) -> list[str]:
    """Each protected and standby instance's identity gets Storage Blob Data Contributor on its own backup
    container (created by the template), not on the whole account."""
    problems = []
    module = _module(infra, "apimBackupAccess")
    if module["detail"]["path"] != APIM_BACKUP_ACCESS:
        problems.append(f"{MAIN}: apimBackupAccess must use {APIM_BACKUP_ACCESS}")
    if get(module["config"], "loop_type", "detail", "array_name") != "accessTargets":
        problems.append(f"{MAIN}: apimBackupAccess must loop over accessTargets")
    targets = json.dumps(infra.tree(MAIN)["variables"].get("accessTargets", {}))
    if any(part not in targets for part in ("primaryTargets", "standbyTargets", "drillTargets")):
        problems.append(f"{MAIN}: accessTargets must hold the protected instances, their standbys and drill "
                        "instances")
    params = body(module)["params"]
    if ".".join(accessor(params.get("storageAccountName"))) != "backupStorage.outputs.name":
        problems.append(f"{MAIN}: apimBackupAccess must grant on the backup account")
    if _role_keys(params.get("roleDefinitionId")) != {"roles.storageBlobDataContributor"}:
        problems.append(f"{MAIN}: apimBackupAccess must grant Storage Blob Data Contributor")
    if ".".join(accessor(params.get("containerName"))) != "t.container":
        problems.append(f"{MAIN}: apimBackupAccess must name each target's own container (t.container)")
    variables = infra.tree(MAIN)["variables"]
    container_default = json.dumps(get(variables.get("instances", {}), "value", "config", "container"))
    if '"backupContainerName"' not in container_default or '"container"' not in container_default:
        problems.append(f"{MAIN}: an instance's container must default to backupContainerName")
    containers = json.dumps(variables.get("backupContainerNames", {}))
    if "backupContainerName" not in containers or "instanceContainers" not in containers:
        problems.append(f"{MAIN}: backupContainerNames must hold the default and every instance's container")
    if body(_module(infra, "backupStorage"))["params"].get("containerNames") != "backupContainerNames":
        problems.append(f"{MAIN}: the backup account must create every container in backupContainerNames")
    created = resources(infra.tree(BACKUP_STORAGE), "Microsoft.Storage/storageAccounts/blobServices/containers")
    if [get(r["config"], "loop_type", "detail", "array_name") for r in created.values()] != ["containerNames"]:
        problems.append(f"{BACKUP_STORAGE}: must create one container per entry of containerNames")
    tree = infra.tree(APIM_BACKUP_ACCESS)
    _, assignment = one_resource(tree, "Microsoft.Authorization/roleAssignments")
    scope = assignment.get("scope")
    scoped = tree.get("resources", {}).get(scope) if isinstance(scope, str) else None
    if scoped is None or scoped["type"] != "Microsoft.Storage/storageAccounts/blobServices/containers" \
            or body(scoped).get("name") != "containerName":
        problems.append(f"{APIM_BACKUP_ACCESS}: the assignment must be scoped to the instance's container "
                        "(storageAccounts/blobServices/containers named by containerName)")
    principal = json.dumps(get(assignment, "properties", "principalId"))
    for needed in ('"apim"', '"identity"', '"principalId"', '"userIdentity"'):
        if needed not in principal:
            problems.append(f"{APIM_BACKUP_ACCESS}: principalId must come from the APIM system identity or the "
                            f"user-assigned identity ({needed} missing)")
    return problems


@check
def check_storage_accounts_refuse_shared_keys(infra: Infra) -> list[str]:
    problems = []
    for path in infra.bicep_files:
        tree = infra.tree(path)
        for name, res in resources(tree, "Microsoft.Storage/storageAccounts").items():
            value = get(body(res), "properties", "allowSharedKeyAccess")
            if value is False:
                continue
            param = tree.get("parameters", {}).get(value) if isinstance(value, str) else None
            if path == BACKUP_STORAGE and param is not None and param.get("default") is False:
                continue  # off unless main.bicep turns it on for AccessKey (checked below)
            problems.append(f"{path}: {name} allowSharedKeyAccess is {value!r}, expected false")
    _, runtime = one_resource(infra.tree(RUNTIME_STORAGE), "Microsoft.Storage/storageAccounts")
    if get(runtime, "properties", "allowSharedKeyAccess") is not False:
        problems.append(f"{RUNTIME_STORAGE}: allowSharedKeyAccess must be the literal false")
    passed = body(_module(infra, "backupStorage"))["params"].get("allowSharedKeyAccess")
    uses = json.dumps(infra.tree(MAIN)["variables"].get("usesAccessKey", {}).get("value"))
    if passed is not False and (passed != "usesAccessKey" or '"AccessKey"' not in uses):
        problems.append(f"{MAIN}: the backup account may allow shared keys only when an instance uses AccessKey")
    return problems


@check
def check_flex_function_app(infra: Infra) -> list[str]:
    tree = infra.tree(FUNCTION_APP)
    problems = []
    _, plan = one_resource(tree, "Microsoft.Web/serverfarms")
    flex_sku = {"name": "FC1", "tier": "FlexConsumption"}
    if get(plan, "sku") != flex_sku or get(plan, "properties", "reserved") is not True:
        problems.append(f"{FUNCTION_APP}: the plan must be FC1/FlexConsumption on Linux (reserved: true)")
    _, site = one_resource(tree, "Microsoft.Web/sites")
    props = get(site, "properties") or {}
    if "linux" not in str(get(site, "kind")):
        problems.append(f"{FUNCTION_APP}: the site must be kind functionapp,linux")
    if get(props, "functionAppConfig", "runtime") != {"name": "python", "version": "3.11"}:
        problems.append(f"{FUNCTION_APP}: functionAppConfig.runtime must be python 3.11")
    if get(props, "httpsOnly") is not True:
        problems.append(f"{FUNCTION_APP}: httpsOnly must be true")
    site_config = get(props, "siteConfig") or {}
    if get(site_config, "minTlsVersion") != "1.2":
        problems.append(f"{FUNCTION_APP}: siteConfig.minTlsVersion must be 1.2")
    if get(site_config, "ftpsState") is not None:
        problems.append(f"{FUNCTION_APP}: siteConfig.ftpsState is rejected by Flex Consumption (the "
                        "basicPublishingCredentialsPolicies turn FTP off)")
    if get(site_config, "linuxFxVersion") is not None:
        problems.append(f"{FUNCTION_APP}: linuxFxVersion is not used on Flex Consumption")
    loop = get(site_config, "appSettings", "loop_type", "detail", "array_name")
    if get(loop, "function", "parameters", "arg_1") != "appSettings":
        problems.append(f"{FUNCTION_APP}: siteConfig.appSettings must be built from the appSettings variable")
    if get(site, "identity", "type") != "UserAssigned":
        problems.append(f"{FUNCTION_APP}: the site must use its user-assigned identity")
    storage = get(props, "functionAppConfig", "deployment", "storage", "authentication", "type")
    if storage != "UserAssignedIdentity":
        problems.append(f"{FUNCTION_APP}: the deployment container must be reached with the identity")
    if "'azd-service-name'" not in json.dumps(get(site, "tags")) or '"api"' not in json.dumps(get(site, "tags")):
        problems.append(f"{FUNCTION_APP}: the site must be tagged azd-service-name: api")
    policies = {body(r).get("name"): get(body(r), "properties", "allow")
                for r in resources(tree, "Microsoft.Web/sites/basicPublishingCredentialsPolicies").values()}
    if policies != {"ftp": False, "scm": False}:
        problems.append(f"{FUNCTION_APP}: basic-auth publishing (ftp, scm) must be off")
    for name, res in resources(tree, "Microsoft.Web/sites/basicPublishingCredentialsPolicies").items():
        if get(body(res), "location") != get(site, "location"):
            problems.append(f"{FUNCTION_APP}: {name} needs the site's location (Flex Consumption requires it)")
    return problems


@check
def check_no_flex_rejected_settings(infra: Infra) -> list[str]:
    problems = []
    for path in infra.bicep_files:
        tree = infra.tree(path)
        found = (object_keys(tree) | strings(tree)) & FLEX_REJECTED_SETTINGS
        problems += [f"{path}: sets {name}, which Flex Consumption rejects" for name in sorted(found)]
    return problems


@check
def check_app_settings_match_the_code(infra: Infra) -> list[str]:
    code = {s.name for s in SETTINGS}
    deployed = app_settings(infra)
    problems = [f"{FUNCTION_APP}: the code reads {name} but the Function App does not set it"
                for name in sorted(code - LOCAL_ONLY_SETTINGS - deployed)]
    problems += [f"{FUNCTION_APP}: sets {name}, which neither the code nor the host reads"
                 for name in sorted(deployed - code - PLATFORM_SETTINGS)]
    problems += [f"{FUNCTION_APP}: sets {name}, which is for local runs only"
                 for name in sorted(deployed & LOCAL_ONLY_SETTINGS)]
    text = json.dumps(infra.tree(FUNCTION_APP)["variables"]["appSettings"])
    if "@Microsoft.KeyVault(SecretUri=" not in text:
        problems.append(f"{FUNCTION_APP}: APIM_DR_BACKUP_STORAGE_KEY must be a Key Vault reference")
    return problems


# Settings the Function App gets from an expression rather than a main.bicep parameter of the same default.
COMPUTED_SETTINGS = {
    "APIM_DR_INSTANCES": "built from the protectedInstances parameter (only the keys the app reads)",
    "APIM_DR_DISCOVERY_SUBSCRIPTIONS": "discoverySubscriptionIds with spaces removed",
    "APIM_DR_ARM_ENDPOINT": "the Resource Manager endpoint of the cloud deployed to (environment())",
}


def deployed_defaults(infra: Infra) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """Per app setting the Function App sets: the main.bicep parameter that feeds it, and that parameter's
    declaration (None when the value is an expression, not a parameter passed through)."""
    settings = infra.tree(FUNCTION_APP)["variables"]["appSettings"]["value"]["function"]["parameters"]["arg_1"]
    main = infra.tree(MAIN)
    module = next(body(m).get("params", {}) for m in main["modules"].values()
                  if m["detail"]["path"] == FUNCTION_APP)
    out: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for name, value in settings.items():
        source = get(value, "function", "parameters", "value_to_convert") if isinstance(value, dict) else value
        passed = module.get(source) if isinstance(source, str) else None  # a dict: string(intParam)
        declared = main["parameters"].get(passed) if isinstance(passed, str) else None
        out[name] = (str(passed), declared)
    return out


@check
def check_setting_defaults_match_the_code(infra: Infra) -> list[str]:
    """main.bicep's parameter defaults (and ranges) are the code's, by value: a default is declared once, in
    dr_core.kernel.settings.SETTINGS, and a deployment that sets nothing gets exactly it."""
    deployed = deployed_defaults(infra)
    problems: list[str] = []
    for spec in SETTINGS:
        if spec.default is None or spec.name not in deployed:
            continue
        parameter, declared = deployed[spec.name]
        if declared is None:
            if spec.name not in COMPUTED_SETTINGS:
                problems.append(f"{MAIN}: {spec.name} does not come from a parameter with a default; name why in "
                                "COMPUTED_SETTINGS or pass a parameter through")
            continue
        default = declared.get("default")
        expected: object = int(spec.default) if declared.get("type") == "int" else spec.default
        if default != expected:
            problems.append(f"{MAIN}: param {parameter} defaults to {default!r}; the code's default of {spec.name} "
                            f"is {expected!r}")
        bounds = {d["type"]: d["argument"] for d in declared.get("decorators", [])}
        for decorator, bound in (("min_value", spec.minimum), ("max_value", spec.maximum)):
            if decorator in bounds and bounds[decorator] != bound:
                problems.append(f"{MAIN}: param {parameter} has @{decorator} {bounds[decorator]}; the code allows "
                                f"{spec.name} {spec.minimum}-{spec.maximum}")
    return problems


@check
def check_runtime_storage_queues_and_tables(infra: Infra) -> list[str]:
    tree = infra.tree(RUNTIME_STORAGE)
    queue_type = "Microsoft.Storage/storageAccounts/queueServices/queues"
    table_type = "Microsoft.Storage/storageAccounts/tableServices/tables"
    queues = {body(r)["name"] for r in resources(tree, queue_type).values()}
    tables = {body(r)["name"] for r in resources(tree, table_type).values()}
    problems = []
    expected = {WORK_QUEUE, f"{WORK_QUEUE}-poison", POLL_QUEUE, f"{POLL_QUEUE}-poison"}
    if queues != expected:
        problems.append(f"{RUNTIME_STORAGE}: queues {sorted(queues)}, the code uses {sorted(expected)}")
    if tables != {JOBS_TABLE}:
        problems.append(f"{RUNTIME_STORAGE}: tables {sorted(tables)}, the code uses {JOBS_TABLE}")
    return problems


@check
def check_backup_storage(infra: Infra) -> list[str]:
    tree = infra.tree(BACKUP_STORAGE)
    problems = []
    _, account = one_resource(tree, "Microsoft.Storage/storageAccounts")
    props = get(account, "properties") or {}
    sku = get(account, "sku", "name")
    sku_param = tree["parameters"].get(sku) if isinstance(sku, str) else None
    allowed = next((d["argument"] for d in (sku_param or {}).get("decorators", []) if d["type"] == "allowed"), None)
    if sku_param is None or not allowed or not set(allowed) <= GEO_REDUNDANT_SKUS \
            or sku_param.get("default") not in GEO_REDUNDANT_SKUS:
        problems.append(f"{BACKUP_STORAGE}: the SKU must be limited to geo-redundant options")
    main_sku = infra.tree(MAIN)["parameters"].get("backupStorageSku", {})
    main_allowed: list[Any] = next(
        (d["argument"] for d in main_sku.get("decorators", []) if d["type"] == "allowed"), [])
    if not main_allowed or not set(main_allowed) <= GEO_REDUNDANT_SKUS \
            or main_sku.get("default") not in GEO_REDUNDANT_SKUS:
        problems.append(f"{MAIN}: backupStorageSku must be limited to geo-redundant options")
    expectations = {
        ("allowBlobPublicAccess",): False,
        ("minimumTlsVersion",): "TLS1_2",
        ("supportsHttpsTrafficOnly",): True,
    }
    for keys, value in expectations.items():
        if get(props, *keys) != value:
            problems.append(f"{BACKUP_STORAGE}: {'.'.join(keys)} must be {value!r}")
    if "AzureServices" not in str(get(props, "networkAcls", "bypass")):
        problems.append(f"{BACKUP_STORAGE}: networkAcls.bypass must include AzureServices (APIM trusted access)")
    _, blob = one_resource(tree, "Microsoft.Storage/storageAccounts/blobServices")
    blob_props = get(blob, "properties") or {}
    if get(blob_props, "isVersioningEnabled") is not True:
        problems.append(f"{BACKUP_STORAGE}: blob versioning must be on")
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        if get(blob_props, policy, "enabled") is not True:
            problems.append(f"{BACKUP_STORAGE}: {policy} must be enabled")
    if get(blob_props, "cors", "corsRules", default=[]) != []:
        problems.append(f"{BACKUP_STORAGE}: the blob service must have no CORS rules (APIM backup fails with them)")
    if not resources(tree, "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"):
        problems.append(f"{BACKUP_STORAGE}: the optional immutability policy is missing")
    return problems


@check
def check_backup_lifecycle_backstop(infra: Infra) -> list[str]:
    """The lifecycle rule behind the app's retention deletes apim-dr's backups only (selected by the catalog's
    index tag), only by age since creation, and only after the longest retention any instance has plus a delay."""
    from dr_core.catalog.tags import TAG_STATE

    tree = infra.tree(BACKUP_STORAGE)
    problems: list[str] = []
    policies = resources(tree, "Microsoft.Storage/storageAccounts/managementPolicies")
    rules = [r for p in policies.values() for r in get(body(p), "properties", "policy", "rules", default=[])]
    base = [r for r in rules if get(r, "definition", "actions", "baseBlob") is not None]
    if len(base) != 1:
        return [f"{BACKUP_STORAGE}: expected one lifecycle rule on current blobs (the retention backstop), "
                f"found {len(base)}"]
    filters = get(base[0], "definition", "filters", default={})
    if filters.get("blobIndexMatch") != [{"name": TAG_STATE, "op": "==", "value": "succeeded"}]:
        problems.append(f"{BACKUP_STORAGE}: the backstop must select blobs by the catalog's tag {TAG_STATE} == "
                        "'succeeded' only (nothing else in the account is the app's)")
    if get(base[0], "definition", "actions", "baseBlob") != {"delete": {"daysAfterCreationGreaterThan":
                                                                        "backstopDeleteDays"}}:
        problems.append(f"{BACKUP_STORAGE}: the backstop must only delete, backstopDeleteDays after creation")
    param = tree["parameters"].get("backstopDeleteDays", {})
    low = next((d["argument"] for d in param.get("decorators", []) if d["type"] == "min_value"), 0)
    if not isinstance(low, int) or low <= 30:
        problems.append(f"{BACKUP_STORAGE}: backstopDeleteDays must be above 30 (APIM's expiry) at least")
    main = infra.tree(MAIN)
    passed = body(main["modules"].get("backupStorage", {})).get("params", {}).get("backstopDeleteDays")
    if passed != "backupBackstopDays":
        problems.append(f"{MAIN}: backupStorage must get backstopDeleteDays: backupBackstopDays")
    copies = body(main["modules"].get("copyStorage", {})).get("params", {}).get("backstopDeleteDays")
    if copies != "backupBackstopDays":
        problems.append(f"{MAIN}: copyStorage must get backstopDeleteDays: backupBackstopDays (the copies age alike)")
    gfs = json.dumps(main["variables"].get("gfsDays", {}))
    per_instance_gfs = json.dumps(main["variables"].get("instanceGfsDays", {}))
    for part in ('"retentionKeepDaily"', '"retentionKeepWeekly"', '"retentionKeepMonthly"', '"instanceGfsDays"'):
        if part not in gfs:
            problems.append(f"{MAIN}: gfsDays must cover keepDaily, 7 x (keepWeekly + 1) and 31 x (keepMonthly + 1), "
                            f"globally and per instance (missing {part})")
    for part in ('"keepDaily"', '"keepWeekly"', '"keepMonthly"', '"protectedInstances"'):
        if part not in per_instance_gfs:
            problems.append(f"{MAIN}: instanceGfsDays must read every instance's keepDaily, keepWeekly and "
                            f"keepMonthly (missing {part})")
    derived = json.dumps(main["variables"].get("backupBackstopDays", {}))
    for part in ('"type": "max"', "37", '"retentionMaxAgeDays"', '"instanceMaxAgeDays"', '"retentionBackstopDays"',
                 '"gfsDays"'):
        if part not in derived:
            problems.append(f"{MAIN}: backupBackstopDays must be max(37, retentionMaxAgeDays, every instance's "
                            f"maxAgeDays) + retentionBackstopDays (missing {part})")
    per_instance = main["variables"].get("instanceMaxAgeDays", {}).get("value", {})
    if get(per_instance, "loop_type", "detail", "array_name") != "protectedInstances" \
            or "maxAgeDays" not in json.dumps(per_instance):
        problems.append(f"{MAIN}: instanceMaxAgeDays must read each protected instance's maxAgeDays")
    return problems


@check
def check_monitoring(infra: Infra) -> list[str]:
    problems = []
    _, insights = one_resource(infra.tree(MONITORING), "Microsoft.Insights/components")
    if get(insights, "properties", "DisableLocalAuth") is not True:
        problems.append(f"{MONITORING}: Application Insights must have DisableLocalAuth: true")
    _, workspace = one_resource(infra.tree(MONITORING), "Microsoft.OperationalInsights/workspaces")
    if get(workspace, "properties", "features", "disableLocalAuth") is not True:
        problems.append(f"{MONITORING}: the Log Analytics workspace must have features.disableLocalAuth: true")
    if not get(insights, "properties", "WorkspaceResourceId"):
        problems.append(f"{MONITORING}: Application Insights must be workspace-based")
    tree = infra.tree(JOB_ALERTS)
    rules = resources(tree, "Microsoft.Insights/scheduledQueryRules")
    if not rules:
        problems.append(f"{JOB_ALERTS}: no scheduled query rules")
    query = tree["variables"].get("jobLogQuery", {}).get("value", "")
    parses_prefix = f"substring(message, {len(JOB_LOG_PREFIX)})" in query
    if f'message startswith "{JOB_LOG_PREFIX}"' not in query or not parses_prefix:
        problems.append(f"{JOB_ALERTS}: the query must parse traces that start with {JOB_LOG_PREFIX!r}")
    states = {r.get("state") for r in tree["variables"].get("jobAlertRules", {}).get("value", [])}
    if states != JOB_STATES_ALERTED:
        problems.append(f"{JOB_ALERTS}: rules for states {sorted(states)}, expected {sorted(JOB_STATES_ALERTED)}")
    for name, rule in rules.items():
        if get(rule["config"], "loop_type", "detail", "array_name") != "jobAlertRules":
            problems.append(f"{JOB_ALERTS}: {name} must loop over jobAlertRules")
        criteria = json.dumps(get(body(rule), "properties", "criteria"))
        if "${jobLogQuery}" not in criteria or "${rule.state}" not in criteria:
            problems.append(f"{JOB_ALERTS}: {name} must query the job log for its state")
        if get(body(rule), "properties", "scopes") != ["appInsightsId"]:
            problems.append(f"{JOB_ALERTS}: {name} must be scoped to Application Insights")
    return problems


_PARSE_LINE = re.compile(
    r'extend (?P<var>\w+) = parse_json\(substring\(message, strlen\("(?P<prefix>APIMDR_[A-Z]+) "\)\)\)')


def workbook_queries(infra: Infra) -> list[tuple[str, dict[str, Any]]]:
    """(item name, KqlItem content) of every query in the status workbook, parameter items excluded."""
    items = infra.json(STATUS_WORKBOOK_JSON).get("items", [])
    return [(str(i.get("name")), i["content"]) for i in items if i.get("type") == 3]


def workbook_fields(query: str) -> dict[str, set[str]]:
    """Log prefix -> the dotted fields a query reads from that line's JSON."""
    found: dict[str, set[str]] = {}
    for match in _PARSE_LINE.finditer(query):
        var, prefix = match["var"], match["prefix"]
        fields = found.setdefault(prefix, set())
        fields.update(m.group(1) for m in re.finditer(rf"\b{var}\.(\w+(?:\.\w+)*)", query))
    return found


@check
def check_status_workbook(infra: Infra) -> list[str]:
    """The workbook: deployed beside App Insights, and every query reads a known log line with its real fields."""
    problems = []
    params = get(_module(infra, "statusWorkbook"), "config", "params")
    if accessor(get(params, "appInsightsId")) != ["monitoring", "outputs", "appInsightsId"]:
        problems.append(f"{MAIN}: statusWorkbook must get appInsightsId from the monitoring module")
    _, workbook = one_resource(infra.tree(STATUS_WORKBOOK), "Microsoft.Insights/workbooks")
    if get(workbook, "kind") != "shared" or get(workbook, "properties", "category") != "workbook":
        problems.append(f"{STATUS_WORKBOOK}: a shared workbook of category 'workbook' is expected")
    if "appInsightsId" not in strings(get(workbook, "properties", "sourceId")):
        problems.append(f"{STATUS_WORKBOOK}: sourceId must be the Application Insights component")
    definition = get(infra.tree(STATUS_WORKBOOK), "variables", "definition", "value", "function", "parameters",
                     "file_path")
    if definition != STATUS_WORKBOOK_JSON.rsplit("/", 1)[-1] or "definition" not in strings(workbook):
        problems.append(f"{STATUS_WORKBOOK}: serializedData must be built from {STATUS_WORKBOOK_JSON}")
    data = infra.json(STATUS_WORKBOOK_JSON)
    if data.get("version") != "Notebook/1.0":
        problems.append(f"{STATUS_WORKBOOK_JSON}: version must be Notebook/1.0")
    queries = workbook_queries(infra)
    if len(queries) < 5:
        problems.append(f"{STATUS_WORKBOOK_JSON}: expected queries for RPO, backups, failures, standby and drills")
    for name, content in queries:
        query = str(content.get("query", ""))
        where = f"{STATUS_WORKBOOK_JSON} {name}"
        if content.get("queryType") != 0 or content.get("resourceType") != "microsoft.insights/components":
            problems.append(f"{where}: must be a logs query on the Application Insights component")
        if "{TimeRange}" not in query or content.get("timeContextFromParameter") != "TimeRange":
            problems.append(f"{where}: must follow the TimeRange parameter")
        prefixes = set(re.findall(r"APIMDR_[A-Z]+", query))
        parsed = workbook_fields(query)
        if not prefixes:
            problems.append(f"{where}: reads no APIMDR_ log line")
        for prefix in sorted(prefixes):
            if prefix not in LOG_LINE_FIELDS:
                problems.append(f"{where}: {prefix} is not a log line the app writes")
            elif f'message startswith "{prefix} "' not in query or prefix not in parsed:
                problems.append(f"{where}: must select and parse `{prefix} ` lines the same way")
        for prefix, fields in parsed.items():
            unknown = sorted(fields - LOG_LINE_FIELDS.get(prefix, frozenset()))
            if unknown:
                problems.append(f"{where}: {prefix} lines have no field(s) {unknown}")
    return problems


def _log_alert_problems(infra: Infra, path: str, *, query_var: str, prefix: str, row: str, state: str,
                        severity: int | None = None) -> list[str]:
    """A scheduled query rule over one structured log line: it parses the line, fires on ``state``, is wired
    in main.bicep to the app's Application Insights and notifies the job alerts' action group."""
    problems = []
    tree = infra.tree(path)
    rules = resources(tree, "Microsoft.Insights/scheduledQueryRules")
    if len(rules) != 1:
        problems.append(f"{path}: expected one scheduled query rule, found {sorted(rules)}")
    query = tree["variables"].get(query_var, {}).get("value", "")
    if f'message startswith "{prefix}"' not in query or f"substring(message, {len(prefix)})" not in query:
        problems.append(f"{path}: the query must parse traces that start with {prefix!r}")
    for name, rule in rules.items():
        props = get(body(rule), "properties") or {}
        criteria = json.dumps(get(props, "criteria"))
        if "${" + query_var + "}" not in criteria or f'tostring({row}.state) == \\"{state}\\"' not in criteria:
            problems.append(f"{path}: {name} must query {query_var} for state {state}")
        if get(props, "scopes") != ["appInsightsId"]:
            problems.append(f"{path}: {name} must be scoped to Application Insights")
        if get(props, "enabled") is not True or (severity is not None and get(props, "severity") != severity):
            problems.append(f"{path}: {name} must be enabled" + (f" with severity {severity}" if severity else ""))
        groups = get(props, "actions", "actionGroups")
        if not any(isinstance(n, list) and "actionGroupId" in n for n in walk(groups)):
            problems.append(f"{path}: {name} must notify the action group (actionGroupId)")
    modules = [m for m in infra.tree(MAIN).get("modules", {}).values() if m["detail"]["full"] == path]
    if len(modules) != 1:
        problems.append(f"{MAIN}: must deploy {path} once")
    else:
        params = get(body(modules[0]), "params") or {}
        if accessor(params.get("appInsightsId")) != ["monitoring", "outputs", "appInsightsId"]:
            problems.append(f"{MAIN}: {path} must watch the app's Application Insights")
        if accessor(params.get("actionGroupId")) != ["jobAlerts", "outputs", "actionGroupId"]:
            problems.append(f"{MAIN}: {path} must notify the job alerts' action group")
    if "actionGroupId" not in infra.tree(JOB_ALERTS).get("outputs", {}):
        problems.append(f"{JOB_ALERTS}: must output actionGroupId for {path}")
    return problems


@check
def check_rpo_alerts(infra: Infra) -> list[str]:
    """The RPO breach rule (severity 1: a DR promise is broken) reads the monitor's log lines."""
    return _log_alert_problems(infra, RPO_ALERTS, query_var="rpoLogQuery", prefix=RPO_LOG_PREFIX, row="rpo",
                               state="breached", severity=1)


@check
def check_drill_alerts(infra: Infra) -> list[str]:
    """The failed-drill rule reads the drills' log lines."""
    return _log_alert_problems(infra, DRILL_ALERTS, query_var="drillLogQuery", prefix=DRILL_LOG_PREFIX,
                               row="drill", state="failed")


@check
def check_main_template(infra: Infra) -> list[str]:
    tree = infra.tree(MAIN)
    problems = []
    if get(tree, "globals", "scope", "value") != "subscription":
        problems.append(f"{MAIN}: targetScope must be subscription")
    if "resourceToken" not in tree["variables"] or "'azd-env-name'" not in json.dumps(tree["variables"].get("tags")):
        problems.append(f"{MAIN}: names come from resourceToken and every resource is tagged azd-env-name")
    for name in ("SERVICE_API_NAME", "AZURE_FUNCTION_NAME", "AZURE_RESOURCE_GROUP"):
        if name not in tree.get("outputs", {}):
            problems.append(f"{MAIN}: output {name} (read by azd) is missing")
    return problems


@check
def check_parameters_file(infra: Infra) -> list[str]:
    params = infra.json(PARAMETERS_JSON).get("parameters", {})
    declared = infra.tree(MAIN)["parameters"]
    problems = []
    for name, param in declared.items():
        if "default" not in param and name not in params:
            problems.append(f"{PARAMETERS_JSON}: required parameter {name} is not mapped to an azd variable")
    for name, entry in params.items():
        if name not in declared:
            problems.append(f"{PARAMETERS_JSON}: {name} is not a parameter of {MAIN}")
        value = entry.get("value")
        if not isinstance(value, str) or not AZD_VAR_RE.match(value):
            problems.append(f"{PARAMETERS_JSON}: {name} must map an azd variable (${{NAME}}), not a literal")
    mapped = {match.group(1) for e in params.values()
              if isinstance(e.get("value"), str) and (match := AZD_VAR_RE.match(e["value"]))}
    for required in ("AZURE_ENV_NAME", "AZURE_LOCATION"):
        if required not in mapped:
            problems.append(f"{PARAMETERS_JSON}: {required} is not mapped")
    return problems


def _simple_yaml(text: str) -> dict[str, Any]:
    """Nested mappings of ``key: value`` lines (enough for azure.yaml; no lists, no flow style)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        if value.strip():
            stack[-1][1][key] = value.strip()
        else:
            child: dict[str, Any] = {}
            stack[-1][1][key] = child
            stack.append((indent, child))
    return root


@check
def check_azure_yaml(infra: Infra) -> list[str]:
    doc = _simple_yaml(infra.texts[AZURE_YAML])
    api = get(doc, "services", "api") or {}
    problems = []
    if {k: api.get(k) for k in ("project", "language", "host")} != {"project": ".", "language": "python",
                                                                      "host": "function"}:
        problems.append(f"azure.yaml: service api must be project '.', language python, host function ({api})")
    if get(doc, "infra", "path", default="infra") != "infra":
        problems.append("azure.yaml: infra.path must be infra")
    return problems
