"""Key Vault data-plane RBAC: the data actions each request needs and the built-in roles that grant them.

Only the Azure RBAC permission model is emulated (no access policies). Roles and their data actions
as the built-in role definitions list them (MicrosoftDocs/azure-docs
``articles/role-based-access-control/built-in-roles/security.md``; the Key Vault Certificate User
definition as published: certificates/read, secrets/getSecret/action, secrets/readMetadata/action,
keys/read). Matching is ARM's: case-insensitive, ``*`` for any characters.
"""

from __future__ import annotations

from emulator.apim.auth import action_matches

GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
READ_SECRET_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SET_SECRET = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
READ_CERTIFICATE = "Microsoft.KeyVault/vaults/certificates/read"

BUILT_IN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    # GUID: (name, data actions)
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": ("Key Vault Administrator", ("Microsoft.KeyVault/vaults/*",)),
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": ("Key Vault Secrets Officer", ("Microsoft.KeyVault/vaults/secrets/*",)),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", (GET_SECRET, READ_SECRET_METADATA)),
    "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba": (
        "Key Vault Certificate User",
        (READ_CERTIFICATE, GET_SECRET, READ_SECRET_METADATA, "Microsoft.KeyVault/vaults/keys/read"),
    ),
    "a4417e6f-fecd-4de8-b567-7b0420556985": (
        "Key Vault Certificates Officer",
        (
            "Microsoft.KeyVault/vaults/certificatecas/*",
            "Microsoft.KeyVault/vaults/certificates/*",
            "Microsoft.KeyVault/vaults/certificatecontacts/write",
            GET_SECRET,
            READ_SECRET_METADATA,
            "Microsoft.KeyVault/vaults/keys/read",
        ),
    ),
    "21090545-7ca7-4776-b22c-e363652d74d2": (
        "Key Vault Reader",
        ("Microsoft.KeyVault/vaults/*/read", READ_SECRET_METADATA),
    ),
}
_BY_NAME = {name.lower(): guid for guid, (name, _) in BUILT_IN_ROLES.items()}


def role_actions(role: str) -> tuple[str, ...]:
    """The data actions of a built-in role given by name or GUID; ``ValueError`` for anything else."""
    key = role.strip().lower()
    guid = _BY_NAME.get(key, key)
    if guid not in BUILT_IN_ROLES:
        known = ", ".join(name for name, _ in BUILT_IN_ROLES.values())
        raise ValueError(f"unknown Key Vault role '{role}' (built-in roles: {known}; or give dataActions)")
    return BUILT_IN_ROLES[guid][1]


def role_name(role: str) -> str:
    key = role.strip().lower()
    guid = _BY_NAME.get(key, key)
    return BUILT_IN_ROLES[guid][0] if guid in BUILT_IN_ROLES else role


def grants(data_actions: tuple[str, ...] | list[str], action: str) -> bool:
    return any(action_matches(pattern, action) for pattern in data_actions)
