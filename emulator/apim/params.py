"""The backup/restore request body (``ApiManagementServiceBackupRestoreParameters``), checked like APIM.

Every problem is a synchronous ``400 InvalidParameters`` in APIM's shape, with the .NET-style
``Parameter name:`` suffix real answers carry; nothing a client sends may produce a 5xx.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import invalid_parameter
from .resources import MANAGED_IDENTITY_SINCE, api_version_date

MAX_BODY_BYTES = 64 * 1024
ACCESS_TYPES = ("AccessKey", "SystemAssignedManagedIdentity", "UserAssignedManagedIdentity")

# Container names: 3-63 chars, lowercase letters, digits and single hyphens between them.
CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
STORAGE_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")
BAD_NAME = "The specifed resource name contains invalid characters."  # sic, APIM's spelling


@dataclass(frozen=True)
class BackupRestoreParameters:
    storage_account: str
    container_name: str
    backup_name: str
    access_type: str
    access_key: str | None
    client_id: str | None


def parse_parameters(body: bytes, api_version: str = "2024-05-01") -> BackupRestoreParameters:
    """Validate a backup/restore body the way APIM does: 400 ``InvalidParameters`` on any problem.

    Before 2021-04-01-preview the contract (``ApiManagementServiceBackupRestoreParameters`` of
    ``stable/2020-12-01/apimdeployment.json``) has only storageAccount, accessKey, containerName and
    backupName, all four required: ``accessType``/``clientId`` are unknown there and ignored as any unknown
    property is, so an identity body lacks its access key and is refused naming ``accessKey``.
    """
    if not body.strip():
        raise invalid_parameter("Value cannot be null.", "parameters")
    if len(body) > MAX_BODY_BYTES:
        raise invalid_parameter(f"The request content is larger than {MAX_BODY_BYTES} bytes.", "parameters")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise invalid_parameter(f"The request content could not be deserialized ({reason}).", "parameters") from None
    if not isinstance(data, dict):
        raise invalid_parameter("The request content could not be deserialized (expected a JSON object).", "parameters")

    def present(key: str) -> bool:
        return data.get(key) not in (None, "")

    if not present("storageAccount"):
        raise invalid_parameter("Value cannot be null.", "backupStorageAccount")
    account = data["storageAccount"]
    if not isinstance(account, str) or not STORAGE_ACCOUNT_RE.match(account):
        raise invalid_parameter(BAD_NAME, "backupStorageAccount")
    if not present("containerName"):
        raise invalid_parameter("Value cannot be null.", "backupContainerName")
    container = data["containerName"]
    # A list here is what az CLI once sent (azure-cli #16262): same answer as any bad name.
    if not isinstance(container, str) or not CONTAINER_RE.match(container):
        raise invalid_parameter(BAD_NAME, "backupContainerName")
    if not present("backupName"):
        raise invalid_parameter("Value cannot be null.", "backupName")
    backup_name = data["backupName"]
    if not isinstance(backup_name, str) or CONTROL_CHARS_RE.search(backup_name) or len(backup_name) > 1024:
        raise invalid_parameter(BAD_NAME, "backupName")
    access_type_raw = data.get("accessType")
    if api_version_date(api_version) < MANAGED_IDENTITY_SINCE:
        access_type_raw = None  # not in this api-version's contract
        data.pop("clientId", None)
    if access_type_raw is None:
        access_type = "AccessKey"
    else:
        matches = [t for t in ACCESS_TYPES if isinstance(access_type_raw, str) and t.lower() == access_type_raw.lower()]
        if not matches:
            shown = access_type_raw if isinstance(access_type_raw, str) else json.dumps(access_type_raw)[:100]
            raise invalid_parameter(f"Requested value '{shown}' was not found.", "accessType")
        access_type = matches[0]
    access_key = data.get("accessKey")
    client_id = data.get("clientId")
    if access_type == "AccessKey":
        if not present("accessKey"):
            raise invalid_parameter("Value cannot be null.", "accessKey")
        if not isinstance(access_key, str) or len(access_key) > 1024:
            raise invalid_parameter("The access key is not valid.", "accessKey")
    else:
        access_key = None
    if access_type == "UserAssignedManagedIdentity":
        if not present("clientId"):
            raise invalid_parameter("Value cannot be null.", "clientId")
        if not isinstance(client_id, str) or len(client_id) > 128:
            raise invalid_parameter("The client id is not valid.", "clientId")
    else:
        client_id = None
    return BackupRestoreParameters(account, container, backup_name, access_type, access_key, client_id)
