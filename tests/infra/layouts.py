"""Where infra/main.bicep defines and grants its roles, evaluated for concrete deployment layouts.

pycep-parser gives syntax trees only (and its operator precedence is not Bicep's), so the structural
checks in bicep_model.py look at shapes. Whether the APIM DR Operator role can be assigned where the
template assigns it depends on values: the subscriptions and resource groups of the instances, the
deployment's own subscription. This module evaluates the expressions that decide it (main.bicep's
variables, module loops, conditions and scopes, the custom roles' ``assignableScopes``) with a small
interpreter of the Bicep functions they use, for the layouts in :data:`LAYOUTS`. An expression it does
not know raises :class:`Unevaluable`, so a template change it cannot follow fails instead of passing.

ARM's rules checked (MicrosoftDocs/azure-docs, articles/role-based-access-control):
- a role can be assigned only at or below one of its ``assignableScopes`` (role-definitions.md,
  "AssignableScopes");
- a custom role is created at its first assignable scope: "replace {scope} with the first
  assignableScopes of the custom role" (custom-roles-rest.md, "Create a custom role"); the template
  creates every custom role in the deployment's subscription, so the first assignable scope must lie
  in that subscription, whatever subscriptions the instances live in;
- no wildcard and not the root scope in ``assignableScopes``, at most 2,000 of them (custom-roles.md,
  "Custom role limits", "Custom role properties").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.infra.bicep_model import CUSTOM_ROLES, MAIN, Infra, accessor, body, get, parse_bicep

MAX_ASSIGNABLE_SCOPES = 2000


class Unevaluable(Exception):
    """The template uses an expression this evaluator does not know: teach it, do not skip it."""


@dataclass(frozen=True)
class Scope:
    """A deployment or assignment scope: a subscription, or a resource group in one."""

    subscription: str
    resource_group: str | None = None

    @property
    def path(self) -> str:
        base = f"/subscriptions/{self.subscription}"
        return (base if self.resource_group is None else f"{base}/resourceGroups/{self.resource_group}").lower()

    def within(self, assignable: str) -> bool:
        """At or below ``assignable`` (ARM compares scopes without regard to case)."""
        scope = assignable.lower().rstrip("/")
        return self.path == scope or self.path.startswith(scope + "/")


@dataclass(frozen=True)
class Layout:
    """One way to deploy: the deployment's subscription and the parameters that place the instances."""

    name: str
    subscription: str
    parameters: dict[str, Any]


def _instance(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


DEPLOYMENT_SUB = "11111111-1111-1111-1111-111111111111"
OTHER_SUB_A = "22222222-2222-2222-2222-222222222222"
OTHER_SUB_B = "33333333-3333-3333-3333-333333333333"
DISCOVERY_SUB = "44444444-4444-4444-4444-444444444444"
_BASE = {"environmentName": "prod", "location": "westeurope"}

LAYOUTS = [
    Layout("same subscription", DEPLOYMENT_SUB, {**_BASE, "protectedInstances": [
        {"resourceId": _instance(DEPLOYMENT_SUB, "rg-api", "apim-prod"),
         "standby": _instance(DEPLOYMENT_SUB, "rg-api-dr", "apim-prod-dr")}]}),
    # Every instance elsewhere: none of the operator role's grants lies in the deployment's subscription.
    Layout("instances in other subscriptions", DEPLOYMENT_SUB, {**_BASE, "protectedInstances": [
        {"resourceId": _instance(OTHER_SUB_A, "rg-api", "apim-prod"),
         "standby": _instance(OTHER_SUB_B, "rg-api-dr", "apim-prod-dr"),
         "drillTarget": _instance(OTHER_SUB_A, "rg-drill", "apim-drill")}],
        "discoverySubscriptionIds": f"{DISCOVERY_SUB}, {OTHER_SUB_B}"}),
    # Discovery only, in another subscription; an existing resource group named in another case.
    Layout("discovery only, existing resource group", DEPLOYMENT_SUB, {
        **_BASE, "discoverySubscriptionIds": DISCOVERY_SUB, "resourceGroupName": "RG-Shared"}),
    Layout("nothing to protect yet", DEPLOYMENT_SUB, dict(_BASE)),
]


def _positional(params: dict[str, Any]) -> list[Any]:
    return [value for value in params.values() if value is not None]


def _unique_string(*parts: Any) -> str:
    # Bicep's uniqueString is a 13-character base-32 hash; any deterministic stand-in keeps names stable.
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return digest[:13]


@dataclass
class Template:
    """One .bicep file evaluated with given parameter values at a given deployment scope."""

    infra: Infra
    path: str
    parameters: dict[str, Any]
    scope: Scope
    _values: dict[str, Any] = field(default_factory=dict)
    _evaluating: set[str] = field(default_factory=set)

    @property
    def tree(self) -> dict[str, Any]:
        return self.infra.tree(self.path)

    # -- names ---------------------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        """A parameter (given, or its default) or a variable of this template."""
        if name in self._values:
            return self._values[name]
        if name in self._evaluating:
            raise Unevaluable(f"{self.path}: {name} refers to itself")
        self._evaluating.add(name)
        try:
            declared = self.tree.get("parameters", {})
            if name in declared:
                if name in self.parameters:
                    result = self.parameters[name]
                elif "default" in declared[name]:
                    result = self.eval(declared[name]["default"], {})
                else:
                    raise Unevaluable(f"{self.path}: parameter {name} has no value and no default")
            elif name in self.tree.get("variables", {}):
                result = self.eval(self.tree["variables"][name]["value"], {})
            else:
                raise KeyError(name)
        finally:
            self._evaluating.discard(name)
        self._values[name] = result
        return result

    def _names(self) -> set[str]:
        tree = self.tree
        return set(tree.get("parameters", {})) | set(tree.get("variables", {}))

    def _identifier(self, name: str, local: dict[str, Any]) -> Any:
        if name in local:
            return local[name]
        if name in self._names():
            return self.value(name)
        if name in self.tree.get("modules", {}) or name in self.tree.get("resources", {}):
            raise Unevaluable(f"{self.path}: {name} is a module or resource (its outputs exist only in Azure)")
        return None

    # -- expressions ---------------------------------------------------------------------------------
    def eval(self, node: Any, local: dict[str, Any]) -> Any:
        if isinstance(node, bool | int | float) or node is None:
            return node
        if isinstance(node, str):
            found = self._identifier(node, local)
            if found is not None or node in local or node in self._names():
                return found
            return self._interpolate(node, local) if "${" in node else node
        if isinstance(node, list):
            return [self.eval(item, local) for item in node]
        if isinstance(node, dict):
            if "loop_type" in node:
                return [self.eval(node["config"], scope) for scope in self.loop(node, local)]
            if set(node) == {"function"}:
                return self._function(node["function"], local)
            if set(node) == {"operator"}:
                return self._operator(node["operator"], local)
            return {key.strip("'"): self.eval(value, local) for key, value in node.items()}
        raise Unevaluable(f"{self.path}: cannot evaluate {node!r}")

    def loop(self, node: dict[str, Any], local: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The local names of each iteration of a ``for`` (filtered by its ``if``, if any)."""
        detail = node["loop_type"]["detail"]
        items = self.eval(detail["array_name"], local)
        if not isinstance(items, list):
            raise Unevaluable(f"{self.path}: a loop over {detail['array_name']!r}, which is not an array")
        for index, item in enumerate(items):
            scope = {**local, detail["item_name"]: item}
            if detail.get("index_name"):
                scope[detail["index_name"]] = index
            if node.get("condition") is None or self._truth(node["condition"], scope):
                yield scope

    def _truth(self, node: Any, local: dict[str, Any]) -> bool:
        value = self.eval(node, local)
        if not isinstance(value, bool):
            raise Unevaluable(f"{self.path}: condition {node!r} is {value!r}, not a bool")
        return value

    def _interpolate(self, text: str, local: dict[str, Any]) -> str:
        out, pos = [], 0
        for match in re.finditer(r"\$\{", text):
            if match.start() < pos:
                continue
            depth, end = 1, match.end()
            while depth:
                if end >= len(text):
                    raise Unevaluable(f"{self.path}: unterminated interpolation in {text!r}")
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            out.append(text[pos:match.start()])
            expression = parse_bicep(f"var e = {text[match.end():end - 1]}\n")["variables"]["e"]["value"]
            out.append(str(self.eval(expression, local)))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _operator(self, op: dict[str, Any], local: dict[str, Any]) -> Any:
        kind, operands = op["type"], op["operands"]
        if kind == "property_accessor":
            base = self.eval(operands["operand_1"], local)
            path = accessor(operands["operand_2"])
            if not path:
                raise Unevaluable(f"{self.path}: property access {op!r} (pycep's precedence: write it plainer)")
            for key in path:
                if not isinstance(base, dict) or key not in base:
                    raise Unevaluable(f"{self.path}: no property {key!r} in {base!r}")
                base = base[key]
            return base
        if kind == "index_accessor":
            base, index = self.eval(operands["operand_1"], local), self.eval(operands["operand_2"], local)
            try:
                return base[index]
            except (IndexError, KeyError, TypeError) as exc:
                raise Unevaluable(f"{self.path}: {index!r} of {base!r}: {exc}") from exc
        if kind == "conditional":
            chosen = "true_value" if self._truth(operands["condition"], local) else "false_value"
            return self.eval(operands[chosen], local)
        if kind == "not":
            return not self._truth(operands["bool_value"], local)
        raise Unevaluable(f"{self.path}: operator {kind}")

    def _function(self, fn: dict[str, Any], local: dict[str, Any]) -> Any:
        kind, params = fn["type"], fn.get("parameters") or {}
        if kind == "subscription":
            sub = params.get("subscription_id")
            if sub is None:
                return {"id": f"/subscriptions/{self.scope.subscription}", "subscriptionId": self.scope.subscription}
            return Scope(str(self.eval(sub, local)))
        if kind == "resource_group":
            sub = params.get("subscription_id")
            return Scope(str(self.eval(sub, local)) if sub is not None else self.scope.subscription,
                         str(self.eval(params["resource_group_name"], local)))
        if kind == "load_json_content":
            folder = self.path.rpartition("/")[0]
            return self.infra.json(f"{folder}/{params['file_path']}" if folder else params["file_path"])
        args = [self.eval(arg, local) for arg in _positional(params)]
        return self._call(kind, args)

    def _call(self, kind: str, args: list[Any]) -> Any:
        match kind, args:
            case "empty", [value]:
                return not value
            case "contains", [container, item]:
                return item in container
            case "trim", [text]:
                return str(text).strip()
            case "split", [text, delimiter]:
                return str(text).split(delimiter)
            case "replace", [text, old, new]:
                return str(text).replace(old, new)
            case "to_lower", [text]:
                return str(text).lower()
            case "last", [items]:
                return items[-1]
            case "join", [items, delimiter]:
                return delimiter.join(items)
            case "concat", [*parts] if all(isinstance(p, list) for p in parts):
                return [item for part in parts for item in part]
            case "union", [*parts] if all(isinstance(p, list) for p in parts):
                merged: list[Any] = []
                for item in (item for part in parts for item in part):
                    if item not in merged:
                        merged.append(item)
                return merged
            case "unique_string", [*parts]:
                return _unique_string(*parts)
            case "guid", [*parts]:
                return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, parts))))
        raise Unevaluable(f"{self.path}: function {kind}({args!r})")

    # -- modules and resources -----------------------------------------------------------------------
    def instances(self, kind: str, name: str) -> list[tuple[Scope, dict[str, Any], dict[str, Any]]]:
        """(deployment scope, loop locals, properties) of each copy of a module or resource that is deployed."""
        node = self.tree[kind][name]["config"]
        copies: list[dict[str, Any]] = [{}]
        if "loop_type" in node:
            copies = list(self.loop(node, {}))
        elif node.get("condition") is not None:
            copies = [{}] if self._truth(node["condition"], {}) else []
        props = body(self.tree[kind][name])
        found = []
        for local in copies:
            scope = props.get("scope")
            where = self.scope if scope is None or kind == "resources" else self.eval(scope, local)
            if not isinstance(where, Scope):
                raise Unevaluable(f"{self.path}: {name} is deployed at {where!r}")
            found.append((where, local, props))
        return found

    def module_parameters(self, name: str, local: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
        params = body(self.tree["modules"][name]).get("params", {})
        return {key: self.eval(params[key], local) for key in wanted if key in params}


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    created_at: Scope
    assignable_scopes: list[str]


@dataclass(frozen=True)
class Deployed:
    """What one layout deploys, as far as roles are concerned."""

    layout: Layout
    resource_group: Scope
    roles: dict[str, RoleDefinition]
    # Scopes of the APIM DR Operator assignments: each instance's resource group, each discovery subscription.
    operator_grants: list[tuple[str, Scope]]


def deploy(infra: Infra, layout: Layout) -> Deployed:
    main = Template(infra, MAIN, layout.parameters, Scope(layout.subscription))
    rg_name = str(main.value("rgName"))
    [(roles_scope, roles_local, _)] = main.instances("modules", "customRoles")
    wanted = {"environmentName", "resourceToken", "operatorAssignableScopes", "backupResourceGroupId"}
    custom = Template(infra, CUSTOM_ROLES, main.module_parameters("customRoles", roles_local, wanted), roles_scope)
    roles = {}
    for name in custom.tree.get("resources", {}):
        for where, local, props in custom.instances("resources", name):
            scopes = custom.eval(get(props, "properties", "assignableScopes"), local)
            roles[name] = RoleDefinition(name, where, scopes)
    grants = [(f"apimOperatorAccess ({local['t']['resourceId']})", where)
              for where, local, _ in main.instances("modules", "apimOperatorAccess")]
    grants += [(f"discoveryOperatorAccess ({local['sub']})", where)
               for where, local, _ in main.instances("modules", "discoveryOperatorAccess")]
    return Deployed(layout, Scope(layout.subscription, rg_name), roles, grants)


def layout_problems(infra: Infra, layout: Layout) -> list[str]:
    """ARM's rules for the operator role and the backup roles, in one layout (empty: it would deploy)."""
    found = deploy(infra, layout)
    problems: list[str] = []
    where = f"layout {layout.name!r}"
    for role in found.roles.values():
        scopes = role.assignable_scopes
        if not scopes or not all(isinstance(s, str) for s in scopes):
            problems.append(f"{where}: {role.name} has no assignable scope ({scopes!r})")
            continue
        if any("*" in s or s.strip() == "/" for s in scopes) or len(scopes) > MAX_ASSIGNABLE_SCOPES:
            problems.append(f"{where}: {role.name}'s assignable scopes break ARM's limits: {scopes}")
        if len({s.lower() for s in scopes}) != len(scopes):
            problems.append(f"{where}: {role.name} names an assignable scope twice: {scopes}")
        if role.created_at.resource_group is not None or not Scope(*_parts(scopes[0])).within(role.created_at.path):
            problems.append(f"{where}: {role.name} is created at {role.created_at.path}, but its first assignable "
                            f"scope {scopes[0]} lies elsewhere (ARM creates a role at its first assignable scope)")
    operator = found.roles.get("operatorRole")
    if found.operator_grants and operator is None:
        problems.append(f"{where}: the operator role is granted but not created")
    if operator is not None and not found.operator_grants:
        problems.append(f"{where}: the operator role is created with nothing to grant")
    for what, scope in found.operator_grants:
        if operator is not None and not any(scope.within(s) for s in operator.assignable_scopes):
            problems.append(f"{where}: {what} assigns APIM DR Operator at {scope.path}, outside its assignable "
                            f"scopes {operator.assignable_scopes}")
    if operator is not None:
        needed = {found.resource_group.path} | {scope.path for _, scope in found.operator_grants}
        broader = [s for s in operator.assignable_scopes if s.lower() not in needed]
        if broader:
            problems.append(f"{where}: APIM DR Operator is assignable at {broader}, where nothing needs it")
    for name in ("backupDataRole", "backupCatalogRole", "backupRetentionRole"):
        backup_role = found.roles.get(name)
        backup_scopes = backup_role.assignable_scopes if backup_role is not None else None
        if backup_scopes is None or [s.lower() for s in backup_scopes] != [found.resource_group.path]:
            problems.append(f"{where}: {name} must be assignable at the deployment's resource group only "
                            f"({found.resource_group.path}), not {backup_scopes}")
    return problems


def _parts(scope: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?", scope, re.I)
    if match is None:
        raise Unevaluable(f"not a subscription or resource group scope: {scope!r}")
    return match.group(1), match.group(2)
