"""Azure RBAC for blob data requests made with a bearer token: roles, role assignments, decisions.

A role assignment gives a principal (the token's ``oid``) a role at a scope. A request is allowed when
some assignment whose scope covers the request's scope grants the required permission: control-plane
``Actions`` for container and service operations (``…/containers/read``, ``…/blobServices/read``),
``DataActions`` for blob data (``…/containers/blobs/read`` …). ``*`` in a role's permission matches any
run of characters, case-insensitively; ``notActions``/``notDataActions`` subtract (as Azure computes
effective permissions). Built-in roles come from ``roles.json`` (sources there).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROLES_FILE = Path(__file__).resolve().parent / "roles.json"

ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER_RE = re.compile(r"^(?:\$root|\$logs|\$web|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ARM_SCOPE_RE = re.compile(
    r"^/subscriptions/[^/]+"
    r"(?:/resourceGroups/[^/]+"
    r"(?:/providers/Microsoft\.Storage/storageAccounts/(?P<account>[^/]+)"
    r"(?:/blobServices/default(?:/containers/(?P<container>[^/]+))?)?)?)?/?$",
    re.IGNORECASE,
)
MAX_PRINCIPALS = 1000
MAX_ASSIGNMENTS = 100
MAX_PERMISSIONS = 200


class RoleTableError(ValueError):
    """The role table is malformed (the admin API answers 400 with the message)."""


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    not_data_actions: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """Everything (``account is None``), one account, or one container of an account."""

    account: str | None = None
    container: str | None = None

    def covers(self, account: str, container: str | None) -> bool:
        if self.account is None:
            return True
        if self.account != account:
            return False
        return self.container is None or self.container == container

    def __str__(self) -> str:
        if self.account is None:
            return "/"
        return self.account if self.container is None else f"{self.account}/{self.container}"


@dataclass(frozen=True)
class Assignment:
    scope: Scope
    role: Role
    source: dict[str, Any] = field(compare=False, hash=False, default_factory=dict)


@cache
def builtin_roles() -> tuple[Role, ...]:
    document = json.loads(ROLES_FILE.read_text(encoding="utf-8"))
    return tuple(
        Role(
            id=r["id"],
            name=r["roleName"],
            actions=tuple(r["actions"]),
            not_actions=tuple(r["notActions"]),
            data_actions=tuple(r["dataActions"]),
            not_data_actions=tuple(r["notDataActions"]),
        )
        for r in document["roles"]
    )


def find_role(name_or_id: str) -> Role | None:
    """A built-in role by display name (case-insensitive), GUID or full role-definition id."""
    wanted = name_or_id.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    for role in builtin_roles():
        if wanted in (role.name.lower(), role.id.lower()):
            return role
    return None


def parse_scope(text: Any) -> Scope:
    """``/`` (everything), ``account``, ``account/container`` or an ARM resource id of either."""
    if not isinstance(text, str) or not text or len(text) > 1024:
        raise RoleTableError("scope must be a non-empty string")
    if text in ("/", "*"):
        return Scope()
    if text.startswith("/"):
        match = ARM_SCOPE_RE.match(text)
        if not match:
            raise RoleTableError(f"scope {text[:200]!r} is not a subscription, resource group, storage account "
                                 "or container resource id")
        account, container = match.group("account"), match.group("container")
        if account is None:
            return Scope()
        return _checked_scope(account, container, text)
    account, _, container = text.partition("/")
    return _checked_scope(account, container or None, text)


def _checked_scope(account: str, container: str | None, text: str) -> Scope:
    if not ACCOUNT_RE.match(account):
        raise RoleTableError(f"scope {text[:200]!r}: {account[:64]!r} is not a storage account name")
    if container is not None and not CONTAINER_RE.match(container):
        raise RoleTableError(f"scope {text[:200]!r}: {container[:80]!r} is not a container name")
    return Scope(account, container)


def _permission_list(entry: dict[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_PERMISSIONS:
        raise RoleTableError(f"{key} must be a list of at most {MAX_PERMISSIONS} strings")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > 300:
            raise RoleTableError(f"{key} must hold non-empty strings of at most 300 characters")
    return tuple(value)


def parse_role_table(table: Any) -> dict[str, tuple[Assignment, ...]] | None:
    """Validate ``{oid: [{"role" | "actions"/"dataActions"/…, "scope"}]}``; None means "no RBAC"."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise RoleTableError("the role table must be an object {principalObjectId: [assignment, ...]} or null")
    if len(table) > MAX_PRINCIPALS:
        raise RoleTableError(f"at most {MAX_PRINCIPALS} principals")
    parsed: dict[str, tuple[Assignment, ...]] = {}
    for oid, entries in table.items():
        if not isinstance(oid, str) or not oid.strip() or len(oid) > 128:
            raise RoleTableError("principal ids must be non-empty strings of at most 128 characters")
        if not isinstance(entries, list) or len(entries) > MAX_ASSIGNMENTS:
            raise RoleTableError(f"the assignments of {oid[:64]!r} must be a list of at most {MAX_ASSIGNMENTS}")
        assignments: list[Assignment] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise RoleTableError(f"each assignment of {oid[:64]!r} must be an object")
            unknown = set(entry) - {"role", "scope", "actions", "notActions", "dataActions", "notDataActions"}
            if unknown:
                raise RoleTableError(f"unknown assignment keys: {sorted(unknown)[:5]}")
            scope = parse_scope(entry.get("scope"))
            if "role" in entry:
                if set(entry) & {"actions", "notActions", "dataActions", "notDataActions"}:
                    raise RoleTableError("an assignment names a role or lists permissions, not both")
                name = entry["role"]
                role = find_role(name) if isinstance(name, str) and len(name) <= 300 else None
                if role is None:
                    known = ", ".join(r.name for r in builtin_roles())
                    raise RoleTableError(f"unknown role {str(name)[:100]!r}; built-in roles known here: {known}")
            else:
                role = Role(
                    id="custom",
                    name="custom",
                    actions=_permission_list(entry, "actions"),
                    not_actions=_permission_list(entry, "notActions"),
                    data_actions=_permission_list(entry, "dataActions"),
                    not_data_actions=_permission_list(entry, "notDataActions"),
                )
                if not role.actions and not role.data_actions:
                    raise RoleTableError("an assignment needs a role, or actions/dataActions")
            assignments.append(Assignment(scope, role, dict(entry)))
        parsed[oid.strip().lower()] = tuple(assignments)
    return parsed


def _matches(patterns: tuple[str, ...], action: str) -> bool:
    lowered = action.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def role_grants(role: Role, action: str, *, data: bool) -> bool:
    if data:
        return _matches(role.data_actions, action) and not _matches(role.not_data_actions, action)
    return _matches(role.actions, action) and not _matches(role.not_actions, action)


def granted(
    table: dict[str, tuple[Assignment, ...]],
    principal: str | None,
    action: str,
    *,
    data: bool,
    account: str,
    container: str | None,
) -> bool:
    """Whether ``principal`` holds ``action`` at the scope ``account[/container]``."""
    if principal is None:
        return False
    return any(
        a.scope.covers(account, container) and role_grants(a.role, action, data=data)
        for a in table.get(principal.lower(), ())
    )


def roles_from_seed(seed: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The front's role table from an APIM-emulator seed's ``storageAccounts[].roleAssignments``.

    Each ``{"principalId", "role"}`` becomes an assignment of that role at the account's scope.
    """
    table: dict[str, list[dict[str, Any]]] = {}
    for account in seed.get("storageAccounts") or []:
        for assignment in account.get("roleAssignments") or []:
            principal = str(assignment["principalId"]).lower()
            table.setdefault(principal, []).append({"role": assignment["role"], "scope": account["name"]})
    return table
