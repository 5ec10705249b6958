"""APIM's data plane towards the backup storage account: real blobs in Azurite.

The emulator authenticates to Azurite with the account key from the seed whatever ``accessType``
the caller chose: the access-type rules (key match, identity roles) are decided by the engine
before any blob is touched, the way APIM would be refused by Azure Storage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import requests
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

# Connections kept open to Azurite: enough for the completion workers plus the POSTs reading CORS.
POOL_SIZE = 32


class BlobMissingError(Exception):
    """The container or the blob does not exist."""


class StorageUnavailableError(Exception):
    """Azurite could not be reached or refused the request."""


class BlobStore:
    """One client per account, all on one pooled HTTP session: connections to Azurite are reused."""

    def __init__(self, blob_endpoint: str, ca_bundle: Path | None) -> None:
        self.blob_endpoint = blob_endpoint.rstrip("/")
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._session = requests.Session()
        self._session.trust_env = False  # loopback Azurite: no proxies, and no proxy lookup per request
        # As azure-core's own session: urllib3 retries off (the storage retry policy retries).
        adapter = HTTPAdapter(
            pool_connections=4,
            pool_maxsize=POOL_SIZE,
            max_retries=Retry(total=False, redirect=False, raise_on_status=False),
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._clients: dict[tuple[str, str], BlobServiceClient] = {}
        self._clients_lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def _client(self, account: str, key: str) -> BlobServiceClient:
        with self._clients_lock:
            client = self._clients.get((account, key))
            if client is None:
                # Fail fast: a stuck storage call must not keep an operation (and its service) busy for minutes.
                transport = RequestsTransport(
                    session=self._session,
                    session_owner=False,
                    connection_verify=self._verify,
                    connection_timeout=5,
                    read_timeout=15,
                )
                client = BlobServiceClient(
                    f"{self.blob_endpoint}/{account}",
                    credential={"account_name": account, "account_key": key},
                    transport=transport,
                    retry_total=2,
                    retry_backoff_factor=0.2,
                )
                self._clients[(account, key)] = client
            return client

    def write(self, account: str, key: str, container: str, blob: str, data: bytes) -> None:
        client = self._client(account, key)
        target = client.get_blob_client(container, blob)
        metadata = {"writer": "apim-dr-emulator"}
        try:
            try:
                target.upload_blob(data, overwrite=True, metadata=metadata)
            except ResourceNotFoundError:
                # "If the storage container doesn't exist, the backup operation creates it." (DOC, 12/2025)
                # Tried after the upload: one request per backup when the container exists.
                with contextlib.suppress(ResourceExistsError):
                    client.create_container(container)
                target.upload_blob(data, overwrite=True, metadata=metadata)
        except AzureError as exc:
            raise StorageUnavailableError(_describe(exc)) from exc

    def read(self, account: str, key: str, container: str, blob: str) -> bytes:
        client = self._client(account, key)
        try:
            return client.get_blob_client(container, blob).download_blob().readall()
        except ResourceNotFoundError as exc:
            raise BlobMissingError(_describe(exc)) from exc
        except AzureError as exc:
            raise StorageUnavailableError(_describe(exc)) from exc

    def cors_allowed_methods(self, account: str, key: str) -> str | None:
        """The allowed methods of the first CORS rule on the blob service, or None without CORS.

        If storage cannot be read the answer is None: the operation then fails later, asynchronously,
        when it touches storage (as APIM would).
        """
        try:
            props = self._client(account, key).get_service_properties()
        except AzureError as exc:
            logger.warning("cannot read blob service properties of %s: %s", account, _describe(exc))
            return None
        rules = props.get("cors") or []
        if not rules:
            return None
        methods = rules[0].allowed_methods
        return methods if isinstance(methods, str) else ",".join(methods)


def _describe(exc: AzureError) -> str:
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or (exc.response.reason if exc.response is not None else "")
        status = exc.status_code
        return f"{status} {code}".strip()
    return type(exc).__name__ + (f": {exc.message}" if exc.message else "")
