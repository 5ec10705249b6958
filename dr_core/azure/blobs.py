"""The backup account as the app sees it: blob facts, labels (index tags, metadata), catalog queries, CORS.

APIM itself writes and reads the backup blobs; the app only looks at them and labels them.
:class:`BackupStore` is the interface the use cases see; :class:`BlobBackupStore` talks to
Azure Blob Storage. Naming and the meaning of the tags live in :mod:`dr_core.catalog.tags`.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from dr_core.azure.errors import storage_errors
from dr_core.catalog.tags import TAG_CATALOG, CatalogEntry, catalog_query, entry_from_tags, finished_query

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

__all__ = ["IMMUTABLE_ERROR_CODES", "BackupStore", "BlobBackupStore", "BlobFacts", "DeleteOutcome"]

# What Blob Storage answers (409) to a change of a blob under a time-based policy or a legal hold.
IMMUTABLE_ERROR_CODES = frozenset({"BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold"})

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobFacts:
    size: int
    created: datetime | None


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    MISSING = "missing"
    IMMUTABLE = "immutable"  # a time-based retention policy or a legal hold protects it


class BackupStore(ABC):
    @abstractmethod
    def facts(self, container: str, blob_name: str) -> BlobFacts | None:
        """Size and creation time of a blob; None if it does not exist."""

    def exists(self, container: str, blob_name: str) -> bool:
        return self.facts(container, blob_name) is not None

    @abstractmethod
    def label(self, container: str, blob_name: str, *, tags: dict[str, str], metadata: dict[str, str]) -> None:
        """Put the catalog's index tags and the human-readable metadata on a finished backup (idempotent)."""

    @abstractmethod
    def tags(self, container: str, blob_name: str) -> dict[str, str] | None:
        """A blob's index tags; None if the blob does not exist."""

    @abstractmethod
    def find(self, container: str, service_name: str) -> list[CatalogEntry]:
        """Every finished backup of ``service_name`` in ``container``, newest first."""

    @abstractmethod
    def finished_names(self, container: str, service_name: str) -> list[str]:
        """Names of every blob of ``service_name`` labelled finished, with or without the catalog tag."""

    @abstractmethod
    def set_tags(self, container: str, blob_name: str, tags: dict[str, str]) -> None:
        """Replace a blob's index tags (metadata untouched); immutability allows it."""

    @abstractmethod
    def cors_rule_count(self) -> int:
        """How many CORS rules the account's Blob service has (APIM backup fails while any exist)."""

    @abstractmethod
    def delete(self, container: str, blob_name: str) -> DeleteOutcome:
        """Delete a backup (retention only); immutability is an outcome, not an error."""

    @abstractmethod
    def put_json(self, container: str, blob_name: str, data: dict[str, Any]) -> None:
        """Write a small JSON document beside the backups (e.g. what a backup contained)."""

    @abstractmethod
    def get_json(self, container: str, blob_name: str) -> dict[str, Any] | None:
        """Read such a document; None if it does not exist."""


class BlobBackupStore(BackupStore):
    def __init__(self, service: BlobServiceClient, *, account: str) -> None:
        self._service = service
        self._what = f"backup account {account}"

    def facts(self, container: str, blob_name: str) -> BlobFacts | None:
        with storage_errors(self._what):
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
        with storage_errors(self._what):
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
        with storage_errors(self._what):
            try:
                return dict(self._service.get_blob_client(container, blob_name).get_blob_tags())
            except ResourceNotFoundError:
                return None

    def find(self, container: str, service_name: str) -> list[CatalogEntry]:
        """One index-tag query (``find_blobs_by_tags``), not a listing of the container."""
        with storage_errors(self._what):
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
        with storage_errors(self._what):
            client = self._service.get_container_client(container)
            return [found.name for found in client.find_blobs_by_tags(finished_query(service_name))]

    def set_tags(self, container: str, blob_name: str, tags: dict[str, str]) -> None:
        with storage_errors(self._what):
            self._service.get_blob_client(container, blob_name).set_blob_tags(tags)

    def cors_rule_count(self) -> int:
        with storage_errors(self._what):
            props = self._service.get_service_properties()
        return len(props.get("cors") or [])

    def delete(self, container: str, blob_name: str) -> DeleteOutcome:
        with storage_errors(self._what):
            try:
                self._service.get_blob_client(container, blob_name).delete_blob()
            except ResourceNotFoundError:
                return DeleteOutcome.MISSING
            except HttpResponseError as e:
                if getattr(e, "error_code", None) in IMMUTABLE_ERROR_CODES:
                    return DeleteOutcome.IMMUTABLE
                raise
        return DeleteOutcome.DELETED

    def put_json(self, container: str, blob_name: str, data: dict[str, Any]) -> None:
        from azure.storage.blob import ContentSettings

        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        with storage_errors(self._what):
            self._service.get_blob_client(container, blob_name).upload_blob(
                body, overwrite=True, content_settings=ContentSettings(content_type="application/json"))

    def get_json(self, container: str, blob_name: str) -> dict[str, Any] | None:
        with storage_errors(self._what):
            try:
                body = self._service.get_blob_client(container, blob_name).download_blob().readall()
            except ResourceNotFoundError:
                return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None
