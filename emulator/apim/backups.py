"""APIM's data-plane work for a finishing operation: storage access checks, snapshot write and read.

The checks are the ones Azure Storage would make on APIM's requests (key, identity, data role); the
blob I/O itself uses the account key (``storage.BlobStore``). Every refusal is an
``OperationFailedError``: the operation fails asynchronously and the poll answers it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

from .resources import service_id
from .state import iso, parse_iso
from .storage import BlobMissingError, BlobStore, StorageUnavailableError

SNAPSHOT_FORMAT = "apim-dr-emulator/backup"
BACKUP_LIFETIME_SECONDS = 30 * 24 * 3600  # "Each backup expires after 30 days" (DOC)

# Data roles that let an identity write (backup) or read (restore) blobs; names and built-in GUIDs.
WRITE_ROLES = frozenset(
    {
        "storage blob data contributor",
        "storage blob data owner",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    }
)
READ_ROLES = WRITE_ROLES | {"storage blob data reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"}


class OperationFailedError(Exception):
    """Ends an operation as Failed; the poll answers ``status`` with an APIM-shaped ``code``/``message``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def user_identity(svc: dict[str, Any], client_id: str | None) -> dict[str, Any] | None:
    """The service's user-assigned identity with this client id (``{principalId, clientId}``), if any."""
    for uai in ((svc.get("identity") or {}).get("userAssignedIdentities") or {}).values():
        if client_id is not None and uai.get("clientId", "").lower() == client_id.lower():
            return dict(uai)
    return None


def storage_account_for(op: dict[str, Any], svc: dict[str, Any], accounts: dict[str, Any]) -> dict[str, Any]:
    """The account, after the access-type checks Azure Storage would make for APIM."""
    params = op["parameters"]
    failed = "BackupFailed" if op["kind"] == "backup" else "RestoreFailed"
    verb = "Backup" if op["kind"] == "backup" else "Restore"
    account = accounts.get(params["storageAccount"])
    if account is None:
        raise OperationFailedError(
            failed,
            f"{verb} failed: storage account '{params['storageAccount']}' could not be reached "
            f"(https://{params['storageAccount']}.blob.core.windows.net does not resolve).",
        )
    if params["accessType"] == "AccessKey":
        if not hmac.compare_digest(params["accessKeySha256"] or "", sha256(account["key"])):
            raise OperationFailedError(
                failed,
                f"{verb} failed: storage account '{account['name']}' rejected the access key "
                "(403 AuthenticationFailed: Server failed to authenticate the request).",
            )
        return account
    if params["accessType"] == "SystemAssignedManagedIdentity":
        principal = (svc.get("identity") or {}).get("principalId")
        which = "system-assigned managed identity"
    else:
        principal = (user_identity(svc, params["clientId"]) or {}).get("principalId")
        which = f"user-assigned managed identity (client id '{params['clientId']}')"
    if not principal:  # the identity was removed from the service while the operation ran
        raise OperationFailedError(
            failed, f"{verb} failed: the {which} of API Management service '{svc['name']}' is not configured."
        )
    needed = WRITE_ROLES if op["kind"] == "backup" else READ_ROLES
    roles = {ra["role"].lower() for ra in account["roleAssignments"] if ra["principalId"].lower() == principal.lower()}
    if not roles & needed:
        role = "Storage Blob Data Contributor"
        raise OperationFailedError(
            failed,
            f"{verb} failed: the {which} of API Management service '{svc['name']}' (principal id '{principal}') "
            f"is not authorized to access storage account '{account['name']}' "
            f"(403 AuthorizationPermissionMismatch). Assign it the '{role}' role on the storage account.",
        )
    return account


def write_backup(
    blobs: BlobStore,
    op: dict[str, Any],
    svc: dict[str, Any],
    account: dict[str, Any],
    *,
    now: float,
    document: dict[str, Any],
) -> None:
    """Write the snapshot blob: the whole configuration document (every child resource, secrets included,
    as APIM's own backup carries them) plus where it came from."""
    params = op["parameters"]
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "formatVersion": 2,
        "serviceId": service_id(svc["subscriptionId"], svc["resourceGroup"], svc["name"]),
        "serviceName": svc["name"],
        "sku": dict(svc["sku"]),
        "location": svc["location"],
        "createdAt": iso(now),
        "operationId": op["id"],
        "apiVersion": op["apiVersion"],
        "configuration": copy.deepcopy(document),
    }
    data = json.dumps(snapshot, indent=2).encode()
    try:
        blobs.write(account["name"], account["key"], params["containerName"], params["backupName"], data)
    except StorageUnavailableError as exc:
        raise OperationFailedError(
            "BackupFailed", f"Backup failed: storage account '{account['name']}' could not be written ({exc})."
        ) from exc


def read_snapshot(blobs: BlobStore, op: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    """The restore's storage half: read and parse the snapshot blob (no service state involved)."""
    params = op["parameters"]
    where = f"'{params['backupName']}' in container '{params['containerName']}' of storage account '{account['name']}'"
    try:
        data = blobs.read(account["name"], account["key"], params["containerName"], params["backupName"])
    except BlobMissingError:
        raise OperationFailedError("RestoreFailed", f"Cannot restore: backup {where} was not found.") from None
    except StorageUnavailableError as exc:
        raise OperationFailedError(
            "RestoreFailed", f"Cannot restore: storage account '{account['name']}' could not be read ({exc})."
        ) from exc
    return parse_snapshot(data, where)


def apply_snapshot(
    svc: dict[str, Any], snapshot: dict[str, Any], op: dict[str, Any], account: dict[str, Any], now: float
) -> None:
    """The restore's service half: SKU and expiry checks, then record where ``svc``'s configuration came from
    (the caller replaces the configuration entities in the same transaction)."""
    params = op["parameters"]
    current, backup = svc["sku"]["name"], snapshot["sku"]["name"]
    if current != backup:
        raise OperationFailedError(
            "RestoreFailed", f"Cannot restore: current SKU is '{current}', backup SKU is '{backup}'"
        )
    if now - snapshot["createdAtEpoch"] > BACKUP_LIFETIME_SECONDS:
        raise OperationFailedError("RestoreFailed", "Cannot restore: backup expired")
    # Restore replaces the configuration only: hostnames, identity, SKU, location and tags stay (DOC).
    svc["restoredFrom"] = {
        "serviceId": snapshot["serviceId"],
        "backupCreatedAt": snapshot["createdAt"],
        "restoredAt": iso(now),
        "blob": f"{account['name']}/{params['containerName']}/{params['backupName']}",
    }


def parse_snapshot(data: bytes, where: str) -> dict[str, Any]:
    def corrupt(reason: str) -> OperationFailedError:
        return OperationFailedError(
            "RestoreFailed", f"Cannot restore: backup {where} is not a valid API Management backup ({reason})."
        )

    try:
        snapshot = json.loads(data)
    except (ValueError, RecursionError):
        raise corrupt("unreadable content") from None
    if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
        raise corrupt("unknown format")
    sku = snapshot.get("sku")
    configuration = snapshot.get("configuration")
    if not isinstance(sku, dict) or not isinstance(sku.get("name"), str):
        raise corrupt("missing SKU")
    if not isinstance(configuration, dict):
        raise corrupt("missing configuration")
    try:
        snapshot["createdAtEpoch"] = parse_iso(str(snapshot.get("createdAt")))
    except ValueError:
        raise corrupt("missing creation time") from None
    snapshot.setdefault("serviceId", None)
    return snapshot


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
