"""Resolve a binding's ``connection`` to a queue service, by the host's rules.

1. A setting named ``X`` (or the legacy ``AzureWebJobsX``) holding a connection string wins.
2. Else the identity-based collection ``X__queueServiceUri`` (alias ``X__serviceUri``); for
   ``AzureWebJobsStorage`` also ``X__accountName``. ``X__credential=managedidentity`` with
   ``X__clientId`` selects a user-assigned identity; without them the host uses the default identity,
   which locally means ``DefaultAzureCredential``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

__all__ = ["ConnectionNotConfiguredError", "QueueConnection", "resolve_queue_connection"]

logger = logging.getLogger(__name__)

DEFAULT_CONNECTION = "AzureWebJobsStorage"


class ConnectionNotConfiguredError(LookupError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class QueueConnection:
    """Where a binding's queues live and how to authenticate. Clients are made on demand."""

    name: str
    connection_string: str | None = None
    service_uri: str | None = None
    credential_kind: str | None = None  # "managedidentity" or None (DefaultAzureCredential)
    client_id: str | None = None

    def make_credential(self) -> Any:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        if self.credential_kind == "managedidentity":
            # Without a client id this is the system-assigned identity, as on the platform.
            if self.client_id:
                return ManagedIdentityCredential(client_id=self.client_id)
            return ManagedIdentityCredential()
        return DefaultAzureCredential()

    def queue_client(self, queue_name: str, *, credential: Any = None) -> QueueClient:
        """A client that sends and receives the raw (already encoded) message text: no encode/decode policy."""
        from azure.storage.queue import QueueClient

        if self.connection_string is not None:
            return QueueClient.from_connection_string(self.connection_string, queue_name)
        assert self.service_uri is not None
        return QueueClient(self.service_uri, queue_name, credential=credential or self.make_credential())


def resolve_queue_connection(name: str | None, settings: Mapping[str, str]) -> QueueConnection:
    name = name or DEFAULT_CONNECTION
    for candidate in (name, f"AzureWebJobs{name}"):
        value = settings.get(candidate)
        if value:
            return QueueConnection(name=name, connection_string=value)
    prefix = f"{name}__"
    service_uri = settings.get(prefix + "queueServiceUri") or settings.get(prefix + "serviceUri")
    if not service_uri and name == DEFAULT_CONNECTION and settings.get(prefix + "accountName"):
        # The accountName shortcut is unique to AzureWebJobsStorage.
        service_uri = f"https://{settings[prefix + 'accountName']}.queue.core.windows.net"
    if not service_uri:
        raise ConnectionNotConfiguredError(
            f"connection {name!r} is not configured: set {name!r} to a connection string, or"
            f" {prefix}queueServiceUri (with {prefix}credential=managedidentity and {prefix}clientId for a"
            " user-assigned identity)"
        )
    kind = (settings.get(prefix + "credential") or "").strip().lower() or None
    if kind not in (None, "managedidentity"):
        logger.warning("connection %s: %scredential=%s is not understood; using DefaultAzureCredential",
                       name, prefix, kind)
        kind = None
    client_id = settings.get(prefix + "clientId") or None
    return QueueConnection(
        name=name, service_uri=service_uri.rstrip("/"), credential_kind=kind, client_id=client_id
    )
