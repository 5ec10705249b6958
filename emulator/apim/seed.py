"""Seed files: the emulated subscription, its APIM instances, storage accounts and identities.

The format is documented in emulator/README.md ("Seed format"). ``load_seed`` checks it and fills in
defaults so the rest of the emulator can rely on every key being present; mistakes are reported as
``SeedError`` naming the offending entry.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from emulator.standins_seed import check_seed as check_standin_sections

from .resources import (
    ALL_TIERS,
    DEFAULT_CUSTOM_PROPERTIES,
    SERVICE_NAME_MAX,
    SERVICE_NAME_RE,
    default_hostname_configurations,
    display_location,
    normalize_location,
)

IDENTITY_TYPES = ("SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None")
STORAGE_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
DEFAULT_CREATED_AT = "2024-01-15T09:30:00.0000000Z"


class SeedError(ValueError):
    """The seed file is not usable; the message says which entry and why."""


def read_seed(source: dict[str, Any] | Path | str) -> dict[str, Any]:
    """The raw seed (a deep copy when given a dict)."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = Path(source)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read seed {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SeedError(f"seed {path} must hold a JSON object")
    return raw


def storage_accounts(seed: dict[str, Any] | Path | str) -> dict[str, str]:
    """``{account name: base64 key}`` for every storage account in the seed (to start Azurite with)."""
    return {acct["name"]: acct["key"] for acct in load_seed(seed)["storageAccounts"]}


def load_seed(source: dict[str, Any] | Path | str) -> dict[str, Any]:
    """Read and check a seed; the result has every optional key filled in."""
    raw = read_seed(source)
    tenant = _require_str(raw, "tenantId", "seed")
    subscriptions = _list(raw, "subscriptions", "seed")
    if not subscriptions:
        raise SeedError("seed: 'subscriptions' needs at least one entry")
    subs: list[dict[str, Any]] = []
    for i, sub in enumerate(subscriptions):
        where = f"subscriptions[{i}]"
        groups = [
            {"name": _require_str(g, "name", f"{where}.resourceGroups[{j}]"), "location": str(g.get("location", ""))}
            for j, g in enumerate(_list(sub, "resourceGroups", where))
        ]
        subs.append(
            {
                "subscriptionId": _require_str(sub, "subscriptionId", where),
                "displayName": str(sub.get("displayName", "")),
                "resourceGroups": groups,
            }
        )
    services = [_service(s, i, tenant, subs) for i, s in enumerate(_list(raw, "services", "seed"))]
    names = [s["name"].lower() for s in services]
    if len(set(names)) != len(names):
        raise SeedError("seed: service names must be unique (API Management names are global)")
    accounts = [_storage_account(a, i) for i, a in enumerate(_list(raw, "storageAccounts", "seed"))]
    try:
        standins = check_standin_sections(raw)
    except ValueError as exc:
        raise SeedError(str(exc)) from exc
    return {
        "tenantId": tenant,
        "subscriptions": subs,
        "services": services,
        "storageAccounts": accounts,
        "functionApp": _function_app(raw.get("functionApp") or {}),
        "armRoles": check_arm_roles(raw.get("armRoles")),
        # Key Vaults, Front Door / Traffic Manager profiles, DNS zones (emulator/standins.py applies them).
        "standins": standins,
        "settings": _settings(raw.get("settings")),
    }


def _settings(raw: Any) -> dict[str, Any]:
    """Optional emulator settings (as ``PATCH /_emulator/settings`` takes them), e.g. ``readThrottling``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SeedError("seed.settings must be an object (the admin settings, e.g. readThrottling)")
    return copy.deepcopy(raw)


def _require_str(obj: Any, key: str, where: str) -> str:
    if not isinstance(obj, dict):
        raise SeedError(f"{where} must be an object")
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SeedError(f"{where}.{key} must be a non-empty string")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise SeedError(f"{where}.{key} must be a list")
    return value


def _find_subscription(subs: list[dict[str, Any]], sub_id: str, where: str) -> dict[str, Any]:
    for sub in subs:
        if sub["subscriptionId"].lower() == sub_id.lower():
            return sub
    raise SeedError(f"{where}: subscription '{sub_id}' is not declared under 'subscriptions'")


def _fake_public_ip(name: str) -> str:
    # Stable per name, in a public-looking range; nothing routes to it.
    digest = hashlib.sha256(name.lower().encode()).digest()
    return f"20.{digest[0]}.{digest[1]}.{max(1, digest[2])}"


def _service(raw: Any, index: int, tenant: str, subs: list[dict[str, Any]]) -> dict[str, Any]:
    where = f"services[{index}]"
    name = _require_str(raw, "name", where)
    if not SERVICE_NAME_RE.match(name) or len(name) > SERVICE_NAME_MAX:
        raise SeedError(f"{where}: '{name}' is not a valid API Management service name")
    sub_id = str(raw.get("subscriptionId") or subs[0]["subscriptionId"])
    sub = _find_subscription(subs, sub_id, where)
    rg = _require_str(raw, "resourceGroup", where)
    location = display_location(_require_str(raw, "location", where))
    if not any(g["name"].lower() == rg.lower() for g in sub["resourceGroups"]):
        # A service implies its resource group; declaring it separately is optional.
        sub["resourceGroups"].append({"name": rg, "location": normalize_location(location)})
    sku = raw.get("sku")
    if not isinstance(sku, dict) or sku.get("name") not in ALL_TIERS:
        raise SeedError(f"{where}.sku.name must be one of {', '.join(ALL_TIERS)}")
    tier = sku["name"]
    capacity = int(sku.get("capacity", 0 if tier == "Consumption" else 1))
    created = str(raw.get("createdAtUtc", DEFAULT_CREATED_AT))
    creator = str(raw.get("createdBy", "admin@contoso.com"))
    configuration = raw.get("configuration") or {}
    if not isinstance(configuration, dict):
        raise SeedError(f"{where}.configuration must be an object")
    return {
        "name": name,
        "subscriptionId": sub["subscriptionId"],
        "resourceGroup": rg,
        "location": location,
        "sku": {"name": tier, "capacity": capacity},
        "tags": {str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
        "identity": _service_identity(raw.get("identity"), tenant, where),
        "publisherEmail": str(raw.get("publisherEmail", "apim-admin@contoso.com")),
        "publisherName": str(raw.get("publisherName", "Contoso")),
        "hostnameConfigurations": copy.deepcopy(
            raw.get("hostnameConfigurations") or default_hostname_configurations(name)
        ),
        "publicIPAddresses": None if tier == "Consumption" else raw.get("publicIPAddresses", [_fake_public_ip(name)]),
        "additionalLocations": raw.get("additionalLocations"),
        "customProperties": raw.get("customProperties", None if tier == "Consumption" else DEFAULT_CUSTOM_PROPERTIES),
        "zones": raw.get("zones"),
        "platformVersion": str(raw.get("platformVersion", "mtv1" if tier == "Consumption" else "stv2")),
        "createdAtUtc": created,
        "systemData": raw.get("systemData")
        or {
            "createdBy": creator,
            "createdByType": "User",
            "createdAt": created,
            "lastModifiedBy": creator,
            "lastModifiedByType": "User",
            "lastModifiedAt": created,
        },
        "provisioningState": str(raw.get("provisioningState", "Succeeded")),
        "targetProvisioningState": "",
        "etagCounter": int(hashlib.sha256(name.encode()).hexdigest()[:8], 16),
        "activeOperation": None,
        # Checked when the emulator builds it (configuration.py): a mistake names services[i].configuration...
        # (read_seed already made the seed the caller's copy: no second deep copy of 10,000 documents).
        "configuration": configuration,
    }


def _service_identity(raw: Any, tenant: str, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in IDENTITY_TYPES:
        raise SeedError(f"{where}.identity.type must be one of {', '.join(IDENTITY_TYPES)}")
    kind = raw["type"]
    if kind == "None":
        return None
    identity: dict[str, Any] = {"type": kind}
    if "SystemAssigned" in kind:
        identity["principalId"] = _require_str(raw, "principalId", f"{where}.identity")
        identity["tenantId"] = str(raw.get("tenantId", tenant))
    if "UserAssigned" in kind:
        uais = raw.get("userAssignedIdentities")
        if not isinstance(uais, dict) or not uais:
            raise SeedError(f"{where}.identity.userAssignedIdentities must map resource ids to identities")
        identity["userAssignedIdentities"] = {
            rid: {
                "principalId": _require_str(v, "principalId", f"{where}.identity[{rid}]"),
                "clientId": _require_str(v, "clientId", f"{where}.identity[{rid}]"),
            }
            for rid, v in uais.items()
        }
    return identity


def _storage_account(raw: Any, index: int) -> dict[str, Any]:
    where = f"storageAccounts[{index}]"
    name = _require_str(raw, "name", where)
    if not STORAGE_ACCOUNT_RE.match(name):
        raise SeedError(f"{where}: '{name}' is not a valid storage account name (3-24 lowercase letters/digits)")
    key = _require_str(raw, "key", where)
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SeedError(f"{where}.key must be base64 (Azurite needs it to sign requests)") from exc
    assignments = []
    for j, ra in enumerate(_list(raw, "roleAssignments", where)):
        assignments.append(
            {
                "principalId": _require_str(ra, "principalId", f"{where}.roleAssignments[{j}]"),
                "role": _require_str(ra, "role", f"{where}.roleAssignments[{j}]"),
                "description": str(ra.get("description", "")),
            }
        )
    return {
        "name": name,
        "key": key,
        "subscriptionId": raw.get("subscriptionId"),
        "resourceGroup": raw.get("resourceGroup"),
        "location": raw.get("location"),
        "roleAssignments": assignments,
    }


def _function_app(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError("seed.functionApp must be an object")
    system = raw.get("systemAssignedIdentity")
    if system is not None:
        system = {
            "principalId": _require_str(system, "principalId", "functionApp.systemAssignedIdentity"),
            "clientId": _require_str(system, "clientId", "functionApp.systemAssignedIdentity"),
        }
    users = []
    for j, ua in enumerate(_list(raw, "userAssignedIdentities", "functionApp")):
        where = f"functionApp.userAssignedIdentities[{j}]"
        users.append(
            {
                "resourceId": _require_str(ua, "resourceId", where),
                "clientId": _require_str(ua, "clientId", where),
                "principalId": _require_str(ua, "principalId", where),
            }
        )
    return {
        "name": str(raw.get("name", "func-apim-dr")),
        "systemAssignedIdentity": system,
        "userAssignedIdentities": users,
    }


def check_arm_roles(raw: Any) -> dict[str, list[dict[str, Any]]] | None:
    """Validate an RBAC table ``{principal oid: [{actions, scope}]}``; None means everyone is allowed."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SeedError("seed.armRoles must map principal object ids to lists of {actions, scope}")
    table: dict[str, list[dict[str, Any]]] = {}
    for oid, grants in raw.items():
        if not isinstance(grants, list):
            raise SeedError(f"armRoles[{oid}] must be a list of {{actions, scope}}")
        checked = []
        for j, grant in enumerate(grants):
            actions = grant.get("actions") if isinstance(grant, dict) else None
            if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
                raise SeedError(f"armRoles[{oid}][{j}].actions must be a list of strings")
            checked.append({"actions": actions, "scope": _require_str(grant, "scope", f"armRoles[{oid}][{j}]")})
        table[str(oid).lower()] = checked
    return table
