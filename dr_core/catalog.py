"""Backup blobs: their names, metadata and index tags, built and parsed in one place.

Name: ``{service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}.apimbackup``, the time being
the job's slot. APIM service names are globally unique (they are DNS names), and one job
exists per instance and slot, so a name is never reused by another job: no backup is
overwritten. The date folders keep listings of one service cheap.

After a backup succeeds, the blob gets metadata (for humans and ``az storage blob show``)
and index tags (so "latest restorable backup of X" is one ``find_blobs_by_tags`` query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "BACKUP_RETENTION",
    "TAG_CREATED",
    "TAG_EXPIRES",
    "TAG_SERVICE",
    "TAG_SKU",
    "TAG_STATE",
    "BackupBlob",
    "backup_blob_name",
    "backup_metadata",
    "backup_tags",
    "parse_backup_blob_name",
]

# APIM refuses to restore a backup older than 30 days ("Cannot restore: backup expired").
BACKUP_RETENTION = timedelta(days=30)
SUFFIX = ".apimbackup"

TAG_SERVICE = "apimdr_service"
TAG_SKU = "apimdr_sku"
TAG_CREATED = "apimdr_created"
TAG_EXPIRES = "apimdr_expires"
TAG_STATE = "apimdr_state"
TAG_JOB = "apimdr_job"

_NAME_RE = re.compile(
    r"^(?P<service>[A-Za-z0-9-]{1,50})/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=service)-(?P<stamp>\d{8}T\d{6}Z)\.apimbackup$"
)


@dataclass(frozen=True)
class BackupBlob:
    service_name: str
    created: datetime

    @property
    def name(self) -> str:
        return backup_blob_name(self.service_name, self.created)

    @property
    def expires(self) -> datetime:
        return self.created + BACKUP_RETENTION


def backup_blob_name(service_name: str, moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{service_name}/{moment:%Y/%m/%d}/{service_name}-{moment:%Y%m%dT%H%M%SZ}{SUFFIX}"


def parse_backup_blob_name(name: str) -> BackupBlob:
    """:raises ValueError: if ``name`` is not a blob name apim-dr makes."""
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("not an apim-dr backup blob name")
    match = _NAME_RE.match(name)
    if not match:
        raise ValueError(
            "not an apim-dr backup blob name: expected {service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}"
            + SUFFIX
        )
    created = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (match.group("y"), match.group("m"), match.group("d")) != (
        f"{created:%Y}", f"{created:%m}", f"{created:%d}"
    ):
        raise ValueError("backup blob name: the date folders do not match the time stamp")
    return BackupBlob(match.group("service"), created)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_metadata(
    *, source_resource_id: str, sku: str, sku_capacity: int | None, location: str, job_id: str,
    api_version: str, created: datetime,
) -> dict[str, str]:
    """Blob metadata (names must be C# identifiers; values ASCII)."""
    return {
        "source_resource_id": source_resource_id,
        "sku_name": sku,
        "sku_capacity": "" if sku_capacity is None else str(sku_capacity),
        "location": _ascii(location),
        "job_id": job_id,
        "api_version": api_version,
        "created": _stamp(created),
        "expires": _stamp(created + BACKUP_RETENTION),
    }


def backup_tags(*, service_name: str, sku: str, created: datetime, job_id: str) -> dict[str, str]:
    """Blob index tags. ISO-8601 UTC stamps compare correctly as strings in tag queries."""
    return {
        TAG_SERVICE: service_name.lower(),
        TAG_SKU: sku,
        TAG_CREATED: _stamp(created),
        TAG_EXPIRES: _stamp(created + BACKUP_RETENTION),
        TAG_STATE: "succeeded",
        TAG_JOB: job_id,
    }


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
