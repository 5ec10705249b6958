"""The host's own storage: its ID, its function IDs and its container ``azure-webjobs-hosts``.

Timer singleton locks and timer schedule status live in blob storage under the host ID, in the
account ``AzureWebJobsStorage`` names, exactly where the real host puts them, so instances of one
app find each other there and a restarted app finds its schedule status.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .connections import DEFAULT_CONNECTION, ConnectionNotConfiguredError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["HOSTS_CONTAINER", "function_id", "host_id", "hosts_container"]

# Azure/azure-webjobs-sdk src/Microsoft.Azure.WebJobs.Host/HostContainerNames.cs (Hosts) and the
# "azure-webjobs-hosts" constant of azure-webjobs-sdk-extensions StorageScheduleMonitor(V2).cs.
HOSTS_CONTAINER = "azure-webjobs-hosts"
# Azure/azure-functions-host src/WebJobs.Script/ScriptConstants.cs MaximumHostIdLength.
_MAX_HOST_ID_LENGTH = 32


def host_id(settings: Mapping[str, str], script_path: str) -> str:
    """The host ID, by Azure/azure-functions-host src/WebJobs.Script/Host/ScriptHostIdProvider.cs.

    ``AzureFunctionsJobHost__id`` (configuration ``AzureFunctionsJobHost:id``) wins; on App Service
    (``WEBSITE_SITE_NAME`` set) it is the site's unique slot name; locally it is the machine name
    and a stable hash of the script path. Then it is cut to 32 characters, lower-cased and trailing
    ``-`` trimmed. The local hash differs from .NET's ``Utility.GetStableHash`` (only its
    stability matters: one folder, one ID).
    """
    configured = settings.get("AzureFunctionsJobHost__id") or settings.get("AzureFunctionsJobHost:id")
    if configured:
        return configured
    site = settings.get("WEBSITE_SITE_NAME")
    if site:
        slot = (settings.get("WEBSITE_SLOT_NAME") or "").lower()
        candidate = site if slot in ("", "production") else f"{site}-{slot}"
    else:
        machine = re.sub(r"[^0-9A-Za-z]", "", platform.node())
        digest = int.from_bytes(hashlib.sha256(script_path.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF
        candidate = f"{machine}-{digest}"
    return candidate[:_MAX_HOST_ID_LENGTH].lower().rstrip("-")


def function_id(name: str) -> str:
    """The ID the WebJobs SDK gives a script function: ``{DeclaringType.FullName}.{Method}``.

    The Functions host generates the type ``Host.Functions`` (its startup log reads "Found the
    following functions: Host.Functions.<name>"); TimerTriggerBinding.cs builds the timer name,
    and so the lock and status blob names, from it.
    """
    return f"Host.Functions.{name}"


def hosts_container(settings: Mapping[str, str], credential: Any = None) -> ContainerClient:
    """``azure-webjobs-hosts`` in the ``AzureWebJobsStorage`` account (connection string or identity)."""
    from azure.storage.blob import BlobServiceClient

    value = settings.get(DEFAULT_CONNECTION)
    if value:
        service = BlobServiceClient.from_connection_string(value)
    else:
        prefix = f"{DEFAULT_CONNECTION}__"
        uri = settings.get(prefix + "blobServiceUri") or settings.get(prefix + "serviceUri")
        if not uri and settings.get(prefix + "accountName"):
            uri = f"https://{settings[prefix + 'accountName']}.blob.core.windows.net"
        if not uri:
            raise ConnectionNotConfiguredError(
                f"the host needs blob storage for timer locks and schedule status: set {DEFAULT_CONNECTION} to a"
                f" connection string, or {prefix}blobServiceUri / {prefix}accountName"
            )
        if credential is None:
            from .connections import QueueConnection

            credential = QueueConnection(
                name=DEFAULT_CONNECTION, service_uri=uri,
                credential_kind=(settings.get(prefix + "credential") or "").strip().lower() or None,
                client_id=settings.get(prefix + "clientId") or None,
            ).make_credential()
        service = BlobServiceClient(uri.rstrip("/"), credential=credential)
    return service.get_container_client(HOSTS_CONTAINER)
