"""How the app's storage clients retry (the managed-identity path, Azurite over HTTPS).

A token the credential cannot get is not retried: no retry fixes a wrong client ID or a missing
identity, and each retry slept (~8 s per call before). A refused connection still is.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from dr_core.azure.clients import AzureClients
from dr_core.kernel.settings import load_settings
from emulator.azurite import Azurite

BACKUP_ACCOUNT = "apimdrbackups"
INSTANCE = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
            "Microsoft.ApiManagement/service/apim-a")


class CountingCredential:
    def __init__(self, *, fail: bool) -> None:
        self.fail = fail
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        if self.fail:
            raise ClientAuthenticationError("ManagedIdentityCredential: no identity with that client ID")
        return AccessToken("not-checked-the-connection-is-refused-first", int(time.time()) + 3600)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azure_clients(azurite: Azurite, credential: CountingCredential, *, blob_endpoint: str) -> AzureClients:
    settings = load_settings({
        "AzureWebJobsStorage__queueServiceUri": azurite.endpoint("queue"),
        "AzureWebJobsStorage__tableServiceUri": azurite.endpoint("table"),
        "AzureWebJobsStorage__blobServiceUri": azurite.endpoint("blob"),
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": BACKUP_ACCOUNT,
        "APIM_DR_BACKUP_BLOB_ENDPOINT": blob_endpoint,
        "APIM_DR_INSTANCES": json.dumps([INSTANCE]),
    })
    return AzureClients(settings, credential=credential)


@pytest.mark.parametrize("service", ["blob", "queue"])
def test_no_token_fails_at_once_without_retrying(azurite: Azurite, service: str):
    credential = CountingCredential(fail=True)
    clients = azure_clients(azurite, credential, blob_endpoint=azurite.endpoint("blob", BACKUP_ACCOUNT))
    retries: list[int] = []

    def hook(retry_count: int, **_: Any) -> None:
        retries.append(retry_count)

    started = time.monotonic()
    with pytest.raises(ClientAuthenticationError):
        if service == "blob":
            clients.backup_blobs().get_container_client("apim-backups").get_container_properties(retry_hook=hook)
        else:
            clients.work_queue().get_queue_properties(retry_hook=hook)
    assert credential.calls == 1 and retries == [] and time.monotonic() - started < 1.0


def test_a_refused_connection_is_still_retried(azurite: Azurite):
    credential = CountingCredential(fail=False)
    endpoint = f"https://127.0.0.1:{closed_port()}/{BACKUP_ACCOUNT}"
    blobs = azure_clients(azurite, credential, blob_endpoint=endpoint).backup_blobs()
    retries: list[int] = []
    with pytest.raises(ServiceRequestError):
        blobs.get_container_client("apim-backups").get_container_properties(
            retry_hook=lambda retry_count, **_: retries.append(retry_count))
    assert retries == [0, 1]  # retry_total 2, as before
