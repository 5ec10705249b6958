"""The backup account through the Blob SDK: blob facts, labels (index tags, metadata), catalog queries, CORS.

APIM itself writes and reads the backup blobs; the app only looks at them, labels them and (retention)
deletes them. Naming and the meaning of the tags live in :mod:`dr_core.catalog`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from dr_core.catalog.entry import CatalogEntry
from dr_core.catalog.tags import TAG_CATALOG, catalog_query, entry_from_tags, finished_query
from dr_core.kernel.errors import ConflictError
from dr_core.kernel.wire import JsonObject
from dr_core.ports import BlobFacts, DeleteOutcome

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

__all__ = ["IMMUTABLE_ERROR_CODES", "BlobBackupStore"]

# What Blob Storage answers (409) to a change of a blob under a time-based policy or a legal hold.
IMMUTABLE_ERROR_CODES = frozenset({"BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold"})

logger = logging.getLogger(__name__)


@translates(Service.STORAGE)
class BlobBackupStore:
    """:class:`~dr_core.ports.BackupStore` on Azure Blob Storage."""

    def __init__(self, service: BlobServiceClient, *, account: str) -> None:
        self._service = service
        self.what = f"backup account {account}"

    def facts(self, container: str, blob_name: str) -> BlobFacts | None:
        try:
            props = self._service.get_blob_client(container, blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return BlobFacts(size=int(props.size or 0), created=props.creation_time)

    def label(self, container: str, blob_name: str, *, tags: dict[str, str], metadata: dict[str, str]) -> None:
        """Index tags first: the catalog needs them, and immutability (WORM, legal hold) allows them.

        Metadata is for people only. Under immutability Set Blob Metadata is refused
        (``BlobImmutableDueToPolicy`` / ``BlobImmutableDueToLegalHold``); the backup is complete
        without it, so that refusal is logged and the blob keeps its tags.
        """
        blob = self._service.get_blob_client(container, blob_name)
        blob.set_blob_tags(tags)
        try:
            blob.set_blob_metadata(metadata)
        except HttpResponseError as e:
            code = getattr(e, "error_code", None)
            if code not in IMMUTABLE_ERROR_CODES:
                raise
            logger.info("%s/%s is immutable (%s): metadata skipped, index tags kept", container, blob_name, code)

    def tags(self, container: str, blob_name: str) -> dict[str, str] | None:
        try:
            return dict(self._service.get_blob_client(container, blob_name).get_blob_tags())
        except ResourceNotFoundError:
            return None

    def find(self, container: str, service_name: str) -> list[CatalogEntry]:
        """One index-tag query (``find_blobs_by_tags``), not a listing of the container."""
        client = self._service.get_container_client(container)
        entries: list[CatalogEntry] = []
        for found in client.find_blobs_by_tags(catalog_query(service_name)):
            tags = dict(found.tags or {})
            if TAG_CATALOG not in tags:
                # A service that answers without the queried tags: read them (one call per blob).
                tags = dict(client.get_blob_client(found.name).get_blob_tags())
            entry = entry_from_tags(container, found.name, tags)
            if entry is not None:
                entries.append(entry)
        entries.sort(key=lambda e: e.created, reverse=True)
        return entries

    def finished_names(self, container: str, service_name: str) -> list[str]:
        client = self._service.get_container_client(container)
        return [found.name for found in client.find_blobs_by_tags(finished_query(service_name))]

    def set_tags(self, container: str, blob_name: str, tags: dict[str, str]) -> None:
        self._service.get_blob_client(container, blob_name).set_blob_tags(tags)

    def cors_rule_count(self) -> int:
        props = self._service.get_service_properties()
        return len(props.get("cors") or [])

    def delete(self, container: str, blob_name: str) -> DeleteOutcome:
        try:
            self._service.get_blob_client(container, blob_name).delete_blob()
        except ResourceNotFoundError:
            return DeleteOutcome.MISSING
        except HttpResponseError as e:
            if getattr(e, "error_code", None) in IMMUTABLE_ERROR_CODES:
                return DeleteOutcome.IMMUTABLE
            raise
        return DeleteOutcome.DELETED

    def put_json(self, container: str, blob_name: str, data: JsonObject) -> None:
        from azure.storage.blob import ContentSettings

        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        self._service.get_blob_client(container, blob_name).upload_blob(
            body, overwrite=True, content_settings=ContentSettings(content_type="application/json"))

    def get_json(self, container: str, blob_name: str) -> JsonObject | None:
        try:
            body = self._service.get_blob_client(container, blob_name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def put_document(self, container: str, blob_name: str, data: bytes, *, tags: dict[str, str],
                     metadata: dict[str, str]) -> None:
        """One Put Blob with its index tags and metadata: the recovery point is catalogued the moment it exists.

        Never overwrites (``If-None-Match: *``): a name that exists is :class:`ConflictError`.
        """
        from azure.storage.blob import ContentSettings

        try:
            self._service.get_blob_client(container, blob_name).upload_blob(
                data, overwrite=False, tags=tags, metadata=metadata,
                # application/gzip, not Content-Encoding gzip: HTTP clients would inflate that on the way down.
                content_settings=ContentSettings(content_type="application/gzip"))
        except ResourceExistsError as e:
            raise ConflictError(f"{container}/{blob_name} exists already; a recovery point is never overwritten") from e

    def get_document(self, container: str, blob_name: str, *, max_bytes: int) -> bytes | None:
        try:
            download = self._service.get_blob_client(container, blob_name).download_blob()
        except ResourceNotFoundError:
            return None
        if download.size is not None and download.size > max_bytes:
            raise ValueError(f"{container}/{blob_name} is {download.size} bytes; at most {max_bytes} are read")
        return download.readall()
