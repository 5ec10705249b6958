"""Official Azure SDK clients, built lazily from settings and reused for the life of the worker.

Imports of the SDKs happen inside the methods: the timer only needs Table and Queue
clients, and keeping ``azure.mgmt.apimanagement`` (the heaviest import) off its path keeps
cold starts short.

Identity: ``DefaultAzureCredential`` (managed identity in Azure, with the user-assigned
client ID from ``AZURE_CLIENT_ID``; ``az login`` on an operator's machine). The app's own
storage uses a connection string when one is set (locally, Azurite) and otherwise the
identity-based ``AzureWebJobsStorage__*`` settings, exactly as the Functions host does.
TLS trust comes from the environment (``REQUESTS_CA_BUNDLE``), so tests against local
HTTPS stand-ins need no switch in this code.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from dr_core.kernel.settings import JOBS_TABLE, POLL_QUEUE, WORK_QUEUE, Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient

__all__ = ["AzureClients", "arm_scope"]

# ARM endpoints and their token audiences. An unknown endpoint (an emulator, a private
# ARM proxy) gets the public cloud's audience, which is what the SDK would ask for anyway.
_ARM_AUDIENCES = {
    "https://management.azure.com": "https://management.azure.com/.default",
    "https://management.usgovcloudapi.net": "https://management.usgovcloudapi.net/.default",
    "https://management.chinacloudapi.cn": "https://management.chinacloudapi.cn/.default",
}


# Fail within seconds, not minutes. The storage SDKs' defaults retry for over a minute (blob and
# queue: 15 s + 18 s + 42 s, also on token failures; tables: ten tries): an HTTP caller would time
# out and a worker would sit idle. The queue redelivers and the watchdog re-sends work instead.
_STORAGE_RETRIES: dict[str, Any] = {"retry_total": 2, "initial_backoff": 0.5, "increment_base": 2,
                                    "random_jitter_range": 1}
_TABLE_RETRIES: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.5, "retry_backoff_max": 4}


def _storage_retry(service: str) -> Any:
    """The storage SDK's own exponential retry (``_STORAGE_RETRIES``), except after a token failure.

    Blob and queue clients retry every ``AzureError``, also a ``ClientAuthenticationError`` raised by
    the credential before any request is sent: a wrong client ID or a missing identity then took ~8 s
    of backoff per call before it failed (measured), and no retry can fix it. azure-identity retries
    the token endpoint's transient answers itself. Built on first use: no SDK import at start-up.
    """
    from azure.core.exceptions import ClientAuthenticationError

    base: Any  # the package's own policy: a queue client never imports the blob SDK, nor the other way round
    if service == "blob":
        from azure.storage.blob import ExponentialRetry as base
    else:
        from azure.storage.queue import ExponentialRetry as base

    class RetryUnlessNoToken(base):  # the base is chosen at run time
        def increment(self, settings: dict[str, Any], request: Any, response: Any = None,
                      error: Any = None) -> bool:
            return not isinstance(error, ClientAuthenticationError) and bool(super().increment(
                settings, request, response=response, error=error))

    return RetryUnlessNoToken(**_STORAGE_RETRIES)


def arm_scope(endpoint: str) -> str:
    return _ARM_AUDIENCES.get(endpoint.rstrip("/").lower(), "https://management.azure.com/.default")


class AzureClients:
    """Lazily built, thread-safe cache of SDK clients for one set of settings."""

    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None) -> None:
        self.settings = settings
        self._credential = credential
        self._lock = threading.Lock()
        self._arm: dict[str, ApiManagementClient] = {}
        self._table: TableClient | None = None
        self._queues: dict[str, QueueClient] = {}
        self._backup_blobs: BlobServiceClient | None = None
        self._copy_blobs: BlobServiceClient | None = None
        self._app_blobs: BlobServiceClient | None = None

    @property
    def credential(self) -> TokenCredential:
        with self._lock:
            return self._default_credential_unlocked()

    def _default_credential_unlocked(self) -> TokenCredential:
        # Called with self._lock held.
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential(
                managed_identity_client_id=self.settings.azure_client_id,
                exclude_interactive_browser_credential=True,
            )
        return self._credential

    def arm(self, subscription_id: str) -> ApiManagementClient:
        credential = self.credential
        with self._lock:
            client = self._arm.get(subscription_id)
            if client is None:
                from azure.mgmt.apimanagement import ApiManagementClient

                endpoint = self.settings.arm_endpoint
                client = ApiManagementClient(
                    credential, subscription_id, base_url=endpoint, credential_scopes=[arm_scope(endpoint)],
                    # No retries on answers (429, 5xx): azure-core would sleep Retry-After inside the
                    # invocation. The app carries Retry-After on its error and the job waits on the
                    # queue instead. Connection failures of reads are still retried quickly.
                    retry_status=0, retry_total=2, retry_backoff_max=2,
                )
                self._arm[subscription_id] = client
            return client

    def jobs_table(self) -> TableClient:
        with self._lock:
            if self._table is None:
                from azure.data.tables import TableClient

                storage = self.settings.app_storage
                if storage.connection_string:
                    self._table = TableClient.from_connection_string(
                        storage.connection_string.reveal(), table_name=JOBS_TABLE, **_TABLE_RETRIES)
                else:
                    assert storage.table_uri
                    self._table = TableClient(
                        storage.table_uri, table_name=JOBS_TABLE, credential=self._app_storage_credential_unlocked(),
                        **_TABLE_RETRIES)
            return self._table

    def work_queue(self) -> QueueClient:
        """Starts and fan-outs (``work_on_job``)."""
        return self._queue_client(WORK_QUEUE)

    def poll_queue(self) -> QueueClient:
        """Polls of running operations (``poll_job``)."""
        return self._queue_client(POLL_QUEUE)

    def _queue_client(self, name: str) -> QueueClient:
        with self._lock:
            client = self._queues.get(name)
            if client is None:
                from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

                # host.json says messageEncoding "base64": the trigger decodes what we encode here.
                policies: dict[str, Any] = {
                    "message_encode_policy": TextBase64EncodePolicy(),
                    "message_decode_policy": TextBase64DecodePolicy(),
                    "retry_policy": _storage_retry("queue"),
                }
                storage = self.settings.app_storage
                if storage.connection_string:
                    client = QueueClient.from_connection_string(storage.connection_string.reveal(), name, **policies)
                else:
                    assert storage.queue_uri
                    client = QueueClient(storage.queue_uri, name, credential=self._app_storage_credential_unlocked(),
                                         **policies)
                self._queues[name] = client
            return client

    def backup_blobs(self) -> BlobServiceClient:
        """The backup account as the app reaches it (catalog, metadata, tags)."""
        credential: Any
        key = self.settings.backup_storage_key
        if key is not None:
            credential = {"account_name": self.settings.backup_account, "account_key": key.reveal()}
        else:
            credential = self.credential
        with self._lock:
            if self._backup_blobs is None:
                from azure.storage.blob import BlobServiceClient

                self._backup_blobs = BlobServiceClient(self.settings.backup_blob_endpoint, credential=credential,
                                                       retry_policy=_storage_retry("blob"))
            return self._backup_blobs

    def copy_blobs(self) -> BlobServiceClient:
        """The copy account (``APIM_DR_COPY_STORAGE_ACCOUNT``) as the app reaches it: always with its identity
        (the server-side copy's source authorization is a bearer token; keys are never used for copies)."""
        assert self.settings.copy_account is not None, "no copy account configured"
        credential = self.credential
        with self._lock:
            if self._copy_blobs is None:
                from azure.storage.blob import BlobServiceClient

                self._copy_blobs = BlobServiceClient(self.settings.copy_blob_endpoint, credential=credential,
                                                     retry_policy=_storage_retry("blob"))
            return self._copy_blobs

    def app_blobs(self) -> BlobServiceClient:
        """The app's own storage account's blobs (the staging container)."""
        with self._lock:
            if self._app_blobs is None:
                from azure.storage.blob import BlobServiceClient

                storage = self.settings.app_storage
                if storage.connection_string:
                    self._app_blobs = BlobServiceClient.from_connection_string(
                        storage.connection_string.reveal(), retry_policy=_storage_retry("blob"))
                else:
                    assert storage.blob_uri, "AzureWebJobsStorage__blobServiceUri is needed for the staging container"
                    self._app_blobs = BlobServiceClient(storage.blob_uri,
                                                        credential=self._app_storage_credential_unlocked(),
                                                        retry_policy=_storage_retry("blob"))
            return self._app_blobs

    def ensure_app_storage(self) -> None:
        """Create the jobs table and the work queues if they are missing.

        In Azure, infra/ creates them; locally they may not exist yet. The caller does this once per process.
        """
        from azure.core.exceptions import ResourceExistsError

        from .errors import AzureCall, Service, translated

        with translated(AzureCall(Service.STORAGE, "the app's storage (jobs table and work queue)")):
            with contextlib.suppress(ResourceExistsError):
                self.jobs_table().create_table()
            for queue in (self.work_queue(), self.poll_queue()):
                with contextlib.suppress(ResourceExistsError):
                    queue.create_queue()

    def _app_storage_credential_unlocked(self) -> TokenCredential:
        # Called with self._lock held: build the credential without re-entering the lock.
        storage = self.settings.app_storage
        if storage.client_id:
            from azure.identity import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=storage.client_id)
        return self._default_credential_unlocked()
