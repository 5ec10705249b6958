"""Scratch space in the app's own storage account: the ``apimdr-staging`` container.

Work that spans invocations and is too large for a job row (a configuration snapshot's pending reads
and the items read so far) is kept here, under the job's ID. The app's identity owns this account
(it is the Functions host's own storage); infra/ adds a lifecycle rule that deletes what a job
failed to clean up after 7 days.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

__all__ = ["STAGING_CONTAINER", "BlobStagingStore"]

STAGING_CONTAINER = "apimdr-staging"


@translates(Service.STORAGE)
class BlobStagingStore:
    """:class:`~dr_core.ports.StagingStore` in a container of the app's own storage account."""

    what = "the app's staging container"

    def __init__(self, service: BlobServiceClient) -> None:
        self._container = service.get_container_client(STAGING_CONTAINER)
        self._lock = threading.Lock()
        self._ready = False

    def put(self, name: str, data: bytes) -> None:
        self._ensure_container()
        self._container.get_blob_client(name).upload_blob(data, overwrite=True)

    def get(self, name: str) -> bytes | None:
        try:
            return self._container.get_blob_client(name).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            for blob in self._container.list_blobs(name_starts_with=prefix):
                with contextlib.suppress(ResourceNotFoundError):
                    self._container.delete_blob(blob.name)
                    deleted += 1
        except ResourceNotFoundError:
            return deleted
        return deleted

    def _ensure_container(self) -> None:
        # infra/ creates it in Azure; locally it may not exist yet. Once per process.
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._ready = True
