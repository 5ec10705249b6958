"""Which Azure RBAC actions the app's code needs, and which ones infra/ grants, both derived.

Azurite does not enforce RBAC and the APIM emulator only enforces the role table it is given, so
nothing local shows that the deployed identities can make the calls the code makes. This module
derives both sides instead:

- **Needed**: an AST scan of every module of ``dr_core/`` for calls of Azure SDK client methods
  (Blob, Queue and Table clients: any public method of the installed SDK classes that sends a
  request; ``ApiManagementClient``: ``<client>.<operation group>.<method>(...)``, also through
  ``getattr``; the raw ARM GET of an operation's ``Location``). Storage methods map through
  :data:`STORAGE_CALLS`, Microsoft's documented permission per data operation; ARM methods map to
  the action ARM derives from the request the SDK builds (``emulator.apim.auth.required_permission``
  on the SDK's own request builder). A call the tables do not cover is reported, so a new call cannot
  slip through.
- **Granted**: the role assignments ``infra/main.bicep`` makes, per scope, with built-in roles from
  ``builtin_roles.json`` (Microsoft's documented definitions, source inside) and custom roles parsed
  from ``infra/rbac/custom-roles.bicep``.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from emulator.apim.auth import action_matches, required_permission
from tests.infra.bicep_model import CUSTOM_ROLES, MAIN, ROLES_JSON, ROOT, Infra, accessor, body, get, resources, walk

DR_CORE = ROOT / "dr_core"
BUILTIN_ROLES = Path(__file__).with_name("builtin_roles.json")
FUNCTION_APP_PRINCIPAL = "identity.outputs.principalId"
# An operator: the loop variable over operatorPrincipalIds, directly (`principalId: id`) or through the
# operatorPrincipals variable main.bicep builds from it.
OPERATOR_PRINCIPAL = "id"
_OPERATOR_PRINCIPALS_VAR = "operatorPrincipals"
# The people given APIM DR Configuration Restore alone (main.bicep's configRestorePrincipals).
CONFIG_RESTORE_PRINCIPALS = "configRestorePrincipals"

# Scopes, as the code reaches them. Blob calls in dr_core go to the backup account (the Functions host,
# not dr_core, uses the runtime account's blobs); queue and table calls go to the runtime account.
RUNTIME_STORAGE = "runtime storage account"
BACKUP_STORAGE = "backup storage account"
COPY_STORAGE = "copy storage account"
APIM_INSTANCE = "APIM instance"
SUBSCRIPTION = "subscription"
RESOURCE_GROUP = "resource group"
SERVICE_ACCOUNT = {"blob": BACKUP_STORAGE, "queue": RUNTIME_STORAGE, "table": RUNTIME_STORAGE}
# Modules whose blob calls go to the app's own (runtime) account, not the backup account: the staging
# container of work that spans invocations (dr_core/azure/clients.py app_blobs()).
RUNTIME_BLOB_MODULES = frozenset({"dr_core/azure/staging.py"})

ST = "Microsoft.Storage/storageAccounts"
BLOBS = f"{ST}/blobServices/containers/blobs"
MESSAGES = f"{ST}/queueServices/queues/messages"
ENTITIES = f"{ST}/tableServices/tables/entities"


@dataclass(frozen=True, order=True)
class Perm:
    """One RBAC permission: a control-plane ``action`` or a ``dataAction``."""

    kind: str  # "action" | "dataAction"
    name: str


def A(name: str) -> Perm:  # a control-plane action, as the docs tables list it
    return Perm("action", name)


def D(name: str) -> Perm:  # a data action
    return Perm("dataAction", name)


# SDK method -> (service, alternatives); any one alternative (a set of permissions) is enough.
# Source: "Permissions for calling data operations", learn.microsoft.com/rest/api/storageservices/
# authorize-with-azure-active-directory (ms.date 2025-03-27): the row of the REST operation each SDK
# method sends. ``exists`` is Get Blob Properties; ``submit_transaction`` authorises each
# sub-operation separately, and the app only submits creates (jobs.py: ("create", entity)).
STORAGE_CALLS: dict[str, tuple[str, tuple[frozenset[Perm], ...]]] = {
    # Blob service
    "get_service_properties": ("blob", (frozenset({A(f"{ST}/blobServices/read")}),)),
    "find_blobs_by_tags": ("blob", (frozenset({D(f"{BLOBS}/filter/action")}),)),
    "get_blob_tags": ("blob", (frozenset({D(f"{BLOBS}/tags/read")}),)),
    "set_blob_tags": ("blob", (frozenset({D(f"{BLOBS}/tags/write")}),)),
    "get_blob_properties": ("blob", (frozenset({D(f"{BLOBS}/read")}),)),
    "exists": ("blob", (frozenset({D(f"{BLOBS}/read")}),)),
    "download_blob": ("blob", (frozenset({D(f"{BLOBS}/read")}),)),
    "list_blobs": ("blob", (frozenset({D(f"{BLOBS}/read")}),)),
    "set_blob_metadata": ("blob", (frozenset({D(f"{BLOBS}/write")}),)),
    "upload_blob": ("blob", (frozenset({D(f"{BLOBS}/write")}), frozenset({D(f"{BLOBS}/add/action")}))),
    # Put Blob From URL, Put Block From URL, Put Block List (the copy account's side; the source side below).
    "upload_blob_from_url": ("blob", (frozenset({D(f"{BLOBS}/write")}), frozenset({D(f"{BLOBS}/add/action")}))),
    "stage_block_from_url": ("blob", (frozenset({D(f"{BLOBS}/write")}), frozenset({D(f"{BLOBS}/add/action")}))),
    "commit_block_list": ("blob", (frozenset({D(f"{BLOBS}/write")}), frozenset({D(f"{BLOBS}/add/action")}))),
    "delete_blob": ("blob", (frozenset({D(f"{BLOBS}/delete")}),)),
    "create_container": ("blob", (frozenset({A(f"{ST}/blobServices/containers/write")}),)),
    # Queue service
    "create_queue": ("queue", (frozenset({A(f"{ST}/queueServices/queues/write")}),)),
    "send_message": ("queue", (frozenset({D(f"{MESSAGES}/add/action")}), frozenset({D(f"{MESSAGES}/write")}))),
    "receive_messages": ("queue", (frozenset({D(f"{MESSAGES}/process/action")}),
                                   frozenset({D(f"{MESSAGES}/delete"), D(f"{MESSAGES}/read")}))),
    "delete_message": ("queue", (frozenset({D(f"{MESSAGES}/process/action")}), frozenset({D(f"{MESSAGES}/delete")}))),
    # Table service
    "create_table": ("table", (frozenset({A(f"{ST}/tableServices/tables/write")}),)),
    "create_entity": ("table", (frozenset({D(f"{ENTITIES}/write")}), frozenset({D(f"{ENTITIES}/add/action")}))),
    "submit_transaction": ("table", (frozenset({D(f"{ENTITIES}/write")}), frozenset({D(f"{ENTITIES}/add/action")}))),
    "get_entity": ("table", (frozenset({D(f"{ENTITIES}/read")}),)),
    "query_entities": ("table", (frozenset({D(f"{ENTITIES}/read")}),)),
    "list_entities": ("table", (frozenset({D(f"{ENTITIES}/read")}),)),
    "update_entity": ("table", (frozenset({D(f"{ENTITIES}/write")}), frozenset({D(f"{ENTITIES}/update/action")}))),
    "upsert_entity": ("table", (frozenset({D(f"{ENTITIES}/write")}),
                                frozenset({D(f"{ENTITIES}/add/action"), D(f"{ENTITIES}/update/action")}))),
    "delete_entity": ("table", (frozenset({D(f"{ENTITIES}/delete")}),)),
}

# Server-side copies (dr_core/azure/copies.py): the copy account reads the source as the app's token
# (x-ms-copy-source-authorization), so each such call also needs blobs/read on the backup account.
COPY_FROM_URL_CALLS = frozenset({"upload_blob_from_url", "stage_block_from_url"})
COPIER_MODULE = "dr_core/azure/copies.py"
# dr_core/azure/blobs.py (BlobBackupStore) serves the backup account and, when copies are deployed, the copy account
# (its catalog, tags, CORS rules and retention's deletes): its calls need their permission on both.
BOTH_ACCOUNTS_MODULE = "dr_core/azure/blobs.py"
# In the copier, which client a receiver is: the copy account (target) or the backup account (source).
_COPIER_RECEIVERS = {"target": COPY_STORAGE, "_target": COPY_STORAGE, "source": BACKUP_STORAGE,
                     "_source": BACKUP_STORAGE}

# Raw ARM requests sent through a management client's pipeline: method -> (HTTP method, path template).
# dr_core's only one is poll_once's GET of the Location APIM returns for a backup or restore.
RAW_ARM_REQUESTS = {
    "_send_request": ("GET", "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{n}"
                             "/operationresults/{id}"),
}

# Methods of the storage clients that send no request.
_NO_REQUEST = re.compile(r"^(get_\w+_client|from_\w+|close)$")
# Which client a method name several storage clients share (get_service_properties, ...) belongs to:
# the receiver says so, or the module imports one storage SDK only.
_RECEIVER_SERVICE = {"backup_blobs": "blob", "work_queue": "queue", "jobs_table": "table"}
_SDK_PACKAGES = {"azure.storage.blob": "blob", "azure.storage.queue": "queue", "azure.data.tables": "table"}


@dataclass(frozen=True)
class Call:
    """One SDK call site in dr_core."""

    file: str
    line: int
    method: str  # storage method, "group.method" for ARM, or a RAW_ARM_REQUESTS key
    kind: str  # "storage" | "arm" | "raw-arm"
    receiver: str
    module_services: tuple[str, ...] = ()  # storage SDKs the module imports

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Need:
    """What one call needs: any one alternative, at one scope."""

    call: Call
    scope: str
    alternatives: tuple[frozenset[Perm], ...]


# ---------------------------------------------------------------------------------------------
# The SDKs' surface
# ---------------------------------------------------------------------------------------------

@cache
def storage_methods() -> dict[str, frozenset[str]]:
    """Request-sending public methods of the storage SDK clients, per service."""
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient
    from azure.storage.queue import QueueClient, QueueServiceClient

    def public(*classes: type) -> frozenset[str]:
        return frozenset(name for cls in classes for name, _ in inspect.getmembers(cls, callable)
                         if not name.startswith("_") and not _NO_REQUEST.match(name))

    return {
        "blob": public(BlobServiceClient, ContainerClient, BlobClient),
        "queue": public(QueueServiceClient, QueueClient),
        "table": public(TableServiceClient, TableClient),
    }


@cache
def arm_operation_groups() -> dict[str, type]:
    """``ApiManagementClient``'s operation-group attributes and their classes."""
    from azure.mgmt.apimanagement import ApiManagementClient

    source = inspect.getsource(ApiManagementClient.__init__)
    from azure.mgmt.apimanagement import operations

    return {attr: getattr(operations, cls) for attr, cls in re.findall(r"self\.(\w+) = (\w+Operations)\(", source)}


def arm_request(group: str, method: str) -> tuple[str, str]:
    """The HTTP method and path the SDK sends for ``<client>.<group>.<method>(...)``."""
    cls = arm_operation_groups()[group]
    module = inspect.getmodule(cls)
    builder = getattr(module, f"build_{method.removeprefix('begin_')}_request", None)
    if builder is None:
        raise LookupError(f"{cls.__name__}.{method} has no request builder")
    samples = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group_name": "rg",
               "service_name": "svc"}
    args = {name: samples.get(name, name) for name, p in inspect.signature(builder).parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD
            or (p.kind is p.KEYWORD_ONLY and p.default is inspect.Parameter.empty)}  # e.g. a delete's if_match
    request = builder(**args)
    return request.method, request.url.split("?", 1)[0]


def scope_kind(scope: str) -> str:
    parts = [p.lower() for p in scope.strip("/").split("/")]
    if len(parts) == 2 and parts[0] == "subscriptions":
        return SUBSCRIPTION
    if len(parts) == 4 and parts[2] == "resourcegroups":
        return RESOURCE_GROUP
    if "microsoft.apimanagement" in parts and "service" in parts:
        return APIM_INSTANCE
    raise ValueError(f"no scope kind for {scope}")


# ---------------------------------------------------------------------------------------------
# The scan
# ---------------------------------------------------------------------------------------------

def scan_source(source: str, file: str) -> tuple[list[Call], list[str]]:
    """SDK calls in one module's source, and the call sites that cannot be resolved statically."""
    tree = ast.parse(source)
    imported = {(n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    services = tuple(sorted({svc for pkg, svc in _SDK_PACKAGES.items() if any(m.startswith(pkg) for m in imported)}))
    storage = set().union(*storage_methods().values())
    groups = arm_operation_groups()
    calls: list[Call] = []
    problems: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = ast.unparse(func.value)
            inner = func.value
            if isinstance(inner, ast.Attribute) and inner.attr in groups:
                calls.append(Call(file, node.lineno, f"{inner.attr}.{func.attr}", "arm", receiver))
            elif func.attr in RAW_ARM_REQUESTS:
                calls.append(Call(file, node.lineno, func.attr, "raw-arm", receiver))
            elif func.attr in storage:
                calls.append(Call(file, node.lineno, func.attr, "storage", receiver, services))
        elif isinstance(func, ast.Name) and func.id == "getattr" and node.args:
            target = node.args[0]
            if isinstance(target, ast.Attribute) and target.attr in groups:
                names, problem = _dynamic_names(tree, node)
                if problem:
                    problems.append(f"{file}:{node.lineno}: {problem}")
                calls += [Call(file, node.lineno, f"{target.attr}.{n}", "arm", ast.unparse(target)) for n in names]
    return calls, problems


def _dynamic_names(tree: ast.Module, call: ast.Call) -> tuple[list[str], str | None]:
    """Method names a ``getattr(<group>, name)`` can produce: a literal, or ``f"prefix{param}"`` where
    every caller of the enclosing function passes a literal for ``param``."""
    if len(call.args) < 2:
        return [], "getattr without a name"
    name = call.args[1]
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return [name.value], None
    if not (isinstance(name, ast.JoinedStr) and len(name.values) == 2
            and isinstance(name.values[0], ast.Constant) and isinstance(name.values[1], ast.FormattedValue)
            and isinstance(name.values[1].value, ast.Name)):
        return [], f"cannot tell which SDK method {ast.unparse(name)} names"
    prefix, param = str(name.values[0].value), name.values[1].value.id
    function = next((f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                     and any(a.arg == param for a in f.args.args)
                     and any(n is call for n in ast.walk(f))), None)
    if function is None:
        return [], f"cannot find the function whose parameter {param} names the SDK method"
    position = [a.arg for a in function.args.args].index(param)
    values: list[str] = []
    for site in ast.walk(tree):
        if isinstance(site, ast.Call) and isinstance(site.func, ast.Attribute | ast.Name) \
                and (site.func.attr if isinstance(site.func, ast.Attribute) else site.func.id) == function.name:
            offset = 1 if function.args.args and function.args.args[0].arg == "self" else 0
            args = site.args
            arg = args[position - offset] if len(args) > position - offset else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                return [], f"a call of {function.name} passes a non-literal {param}"
            values.append(prefix + arg.value)
    if not values:
        return [], f"{function.name} is never called, so its SDK method is unknown"
    return sorted(set(values)), None


def scan_dr_core(root: Path = DR_CORE) -> tuple[list[Call], list[str]]:
    calls: list[Call] = []
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        found, trouble = scan_source(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
        calls += found
        problems += trouble
    return calls, problems


def needs(calls: list[Call]) -> tuple[list[Need], list[str]]:
    """What each call needs, and the calls no table covers (each a problem)."""
    out: list[Need] = []
    problems: list[str] = []
    methods = storage_methods()
    for call in calls:
        if call.kind == "storage":
            entry = STORAGE_CALLS.get(call.method)
            if entry is None:
                problems.append(f"{call.where}: {call.receiver}.{call.method}() is an Azure SDK call missing from "
                                "STORAGE_CALLS (add its documented RBAC action)")
                continue
            service, alternatives = entry
            services = [s for s, names in methods.items() if call.method in names]
            if len(services) > 1:
                hinted = [s for hint, s in _RECEIVER_SERVICE.items() if hint in call.receiver]
                if not hinted and len(call.module_services) == 1:
                    hinted = list(call.module_services)
                if hinted != [service]:
                    problems.append(f"{call.where}: {call.method}() exists on several storage clients and neither "
                                    f"the receiver {call.receiver!r} nor the module's imports show it is the "
                                    f"{service} one")
                    continue
            if call.file in RUNTIME_BLOB_MODULES:
                out.append(Need(call, RUNTIME_STORAGE, alternatives))
            else:
                out += _blob_scopes(call, service, alternatives)
        else:
            try:
                if call.kind == "raw-arm":
                    verb, template = RAW_ARM_REQUESTS[call.method]
                    path = template.format(s="00000000-0000-0000-0000-000000000000", rg="rg", n="svc", id="op")
                else:
                    group, method = call.method.split(".", 1)
                    verb, path = arm_request(group, method)
                permission = required_permission(verb, path)
            except (LookupError, ValueError) as e:
                problems.append(f"{call.where}: {call.method}: {e}")
                continue
            out.append(Need(call, scope_kind(permission.scope), (frozenset({A(permission.action)}),)))
    return out, problems


def _blob_scopes(call: Call, service: str, alternatives: tuple[frozenset[Perm], ...]) -> list[Need]:
    """Where a storage call needs its permission: the runtime account (queues, tables), the backup account, and
    for the copier and the store both accounts use, the copy account too."""
    if service != "blob":
        return [Need(call, SERVICE_ACCOUNT[service], alternatives)]
    if call.file == COPIER_MODULE:
        names = [n for n in re.findall(r"[A-Za-z_]\w*", call.receiver) if n in _COPIER_RECEIVERS]
        if not names:
            raise LookupError(f"{call.where}: the copier's receiver {call.receiver!r} names neither account")
        needs = [Need(call, _COPIER_RECEIVERS[names[0]], alternatives)]
        if call.method in COPY_FROM_URL_CALLS:
            needs.append(Need(call, BACKUP_STORAGE, (frozenset({D(f"{BLOBS}/read")}),)))
        return needs
    if call.file == BOTH_ACCOUNTS_MODULE:
        return [Need(call, BACKUP_STORAGE, alternatives), Need(call, COPY_STORAGE, alternatives)]
    return [Need(call, BACKUP_STORAGE, alternatives)]


# ---------------------------------------------------------------------------------------------
# What infra/ grants
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Role:
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    not_data_actions: tuple[str, ...]

    def allows(self, perm: Perm) -> bool:
        granted, denied = ((self.actions, self.not_actions) if perm.kind == "action"
                           else (self.data_actions, self.not_data_actions))
        return any(action_matches(p, perm.name) for p in granted) and \
            not any(action_matches(p, perm.name) for p in denied)


def builtin_roles() -> dict[str, Role]:
    data = json.loads(BUILTIN_ROLES.read_text(encoding="utf-8"))["roles"]
    return {guid: Role(r["roleName"], tuple(r["actions"]), tuple(r["notActions"]), tuple(r["dataActions"]),
                       tuple(r["notDataActions"])) for guid, r in data.items()}


def custom_roles(infra: Infra) -> dict[str, Role]:
    """Custom roles by the name of the custom-roles.bicep output that carries their GUID."""
    tree = infra.tree(CUSTOM_ROLES)
    defs = resources(tree, "Microsoft.Authorization/roleDefinitions")
    out: dict[str, Role] = {}
    for output, spec in tree.get("outputs", {}).items():
        symbol = next((n for n in walk(spec.get("value")) if isinstance(n, str) and n in defs), None)
        if symbol is None:
            continue
        props = get(body(defs[symbol]), "properties") or {}
        perms = (get(props, "permissions") or [{}])
        merged: dict[str, list[str]] = {"actions": [], "notActions": [], "dataActions": [], "notDataActions": []}
        for perm in perms:
            for key in merged:
                merged[key] += list(perm.get(key) or [])
        out[output] = Role(symbol, tuple(merged["actions"]), tuple(merged["notActions"]),
                           tuple(merged["dataActions"]), tuple(merged["notDataActions"]))
    return out


# module path in main.bicep -> scope label (storage-access.bicep: by the account it names)
_MODULE_SCOPES = {
    "rbac/apim-operator-access.bicep": APIM_INSTANCE,
    "rbac/subscription-operator-access.bicep": SUBSCRIPTION,
    "rbac/app-insights-access.bicep": "Application Insights",
    "rbac/key-vault-secret-access.bicep": "Key Vault secret",
    "rbac/apim-backup-access.bicep": "backup container",
}
_ACCOUNTS = {"runtimeStorage.outputs.name": RUNTIME_STORAGE, "backupStorage.outputs.name": BACKUP_STORAGE,
             "copyStorage.outputs.name": COPY_STORAGE}


def _account_of(node: Any) -> str:
    """The account a module's ``storageAccountName`` names: ``x.outputs.name``, also inside a ternary
    (``deployCopies ? copyStorage.outputs.name : ''``)."""
    found = {_ACCOUNTS[".".join(accessor(n))] for n in walk(node) if ".".join(accessor(n)) in _ACCOUNTS}
    return found.pop() if len(found) == 1 else "other storage account"


@dataclass(frozen=True)
class Grant:
    module: str
    scope: str
    role_ref: str  # roles.<key> or customRoles.outputs.<name>
    role: Role | None  # None: unknown (no definition recorded)


def grants(infra: Infra, principal: str | None = FUNCTION_APP_PRINCIPAL) -> list[Grant]:
    """Role assignments main.bicep makes, for one principal expression (None: for every principal)."""
    table = infra.json(ROLES_JSON)
    builtins = builtin_roles()
    customs = custom_roles(infra)
    out: list[Grant] = []
    for name, module in infra.tree(MAIN).get("modules", {}).items():
        path = module["detail"]["path"]
        params = body(module).get("params", {})
        if path == "rbac/storage-access.bicep":
            scope = _account_of(params.get("storageAccountName"))
        elif path == "rbac/apim-backup-access.bicep" and _account_of(params.get("storageAccountName")) == COPY_STORAGE:
            scope = "copy container"
        elif path in _MODULE_SCOPES:
            scope = _MODULE_SCOPES[path]
        else:
            continue
        holders = {".".join(accessor(params.get("principalId")))} | {
            ".".join(accessor(n["principalId"])) for n in walk(params.get("principals"))
            if isinstance(n, dict) and "principalId" in n}
        if any(n == _OPERATOR_PRINCIPALS_VAR for n in walk(params.get("principals"))):
            holders.add(OPERATOR_PRINCIPAL)
        if any(n == CONFIG_RESTORE_PRINCIPALS for n in walk(params.get("principals"))):
            holders.add(CONFIG_RESTORE_PRINCIPALS)
        if principal is not None and principal not in holders:
            continue
        refs = params.get("roleDefinitionIds", params.get("roleDefinitionId"))
        for ref in refs if isinstance(refs, list) else [refs]:
            key = accessor(ref)
            role_ref = ".".join(key)
            if len(key) == 2 and key[0] == "roles":
                role = builtins.get(str(table.get(key[1], "")))
            elif len(key) == 3 and key[0] == "customRoles":
                role = customs.get(key[2])
            else:
                role = None
            out.append(Grant(name, scope, role_ref, role))
    return out


def uncovered(need: Need, granted: list[Grant]) -> bool:
    roles = [g.role for g in granted if g.scope == need.scope and g.role is not None]
    return not any(all(any(r.allows(p) for r in roles) for p in alternative) for alternative in need.alternatives)


def describe(alternatives: tuple[frozenset[Perm], ...]) -> str:
    return " or ".join(" and ".join(f"{p.name} ({p.kind})" for p in sorted(a)) for a in alternatives)


def iter_problems(infra: Infra) -> Iterator[str]:
    """Every reason the Function App's identity could not make a call the code makes."""
    calls, problems = scan_dr_core()
    yield from problems
    required, unmapped = needs(calls)
    yield from unmapped
    granted = grants(infra)
    for grant in granted:
        if grant.role is None and grant.scope in {need.scope for need in required}:
            yield f"{MAIN}: {grant.module} grants {grant.role_ref}, whose definition is not recorded"
    for need in required:
        if uncovered(need, granted):
            yield (f"{need.call.where}: {need.call.method}() needs {describe(need.alternatives)} on the "
                   f"{need.scope}; the Function App's roles there do not grant it")
