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
    "RESTORABLE_TIERS",
    "TAG_CATALOG",
    "TAG_CREATED",
    "TAG_EXPIRES",
    "TAG_SERVICE",
    "TAG_SKU",
    "TAG_STATE",
    "BackupBlob",
    "CatalogEntry",
    "backup_blob_name",
    "backup_metadata",
    "backup_tags",
    "catalog_query",
    "catalog_tags_for",
    "entry_from_tags",
    "finished_query",
    "parse_backup_blob_name",
]

# APIM refuses to restore a backup older than 30 days ("Cannot restore: backup expired").
BACKUP_RETENTION = timedelta(days=30)
# The only tiers with backup and restore (lower case, as compared).
RESTORABLE_TIERS = frozenset({"developer", "basic", "standard", "premium"})
SUFFIX = ".apimbackup"

TAG_SERVICE = "apimdr_service"
TAG_SKU = "apimdr_sku"
TAG_CREATED = "apimdr_created"
TAG_EXPIRES = "apimdr_expires"
TAG_STATE = "apimdr_state"
TAG_JOB = "apimdr_job"
TAG_SIZE = "apimdr_size"
TAG_LOCATION = "apimdr_location"
# Everything the catalog shows, in one tag. Find Blobs by Tags returns only the tags its query
# names, so the catalog query names this one and needs no read per blob.
TAG_CATALOG = "apimdr_catalog"
_CATALOG_VERSION = "v1"
_TAG_VALUE_RE = re.compile(r"[^A-Za-z0-9 +\-./:=_]")

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


def backup_tags(*, service_name: str, sku: str, created: datetime, job_id: str, size: int = 0,
                location: str = "") -> dict[str, str]:
    """Blob index tags (at most 10; values from a small character set).

    ISO-8601 UTC stamps compare correctly as strings, so "not expired" is a tag query.
    """
    tags = {
        TAG_SERVICE: service_name.lower(),
        TAG_SKU: _tag_value(sku),
        TAG_CREATED: _stamp(created),
        TAG_EXPIRES: _stamp(created + BACKUP_RETENTION),
        TAG_STATE: "succeeded",
        TAG_JOB: job_id,
        TAG_SIZE: str(int(size)),
        TAG_LOCATION: _tag_value(location),
        TAG_CATALOG: _catalog_value(_stamp(created), sku, str(int(size)), job_id, location),
    }
    # An empty value (no location known) is left out rather than sent: not every store accepts it.
    return {name: value for name, value in tags.items() if value}


def _catalog_value(created: str, sku: str, size: str, job_id: str, location: str) -> str:
    # "v1/{created}/{sku}/{size}/{job}/{location}": '/' never occurs in the first five parts.
    return _tag_value(f"{_CATALOG_VERSION}/{created}/{sku.replace('/', '_')}/{size}/{job_id}/"
                      f"{location.replace('/', '_')}")


def catalog_tags_for(tags: dict[str, str]) -> dict[str, str] | None:
    """``tags`` plus the catalog tag, for a backup labelled before that tag existed; None if it needs none.

    Backups labelled by apim-dr before the one-query catalog carry the single tags only, so the
    catalog query does not find them. Their single tags hold everything the catalog tag packs.
    None when the blob already has the tag, or is no finished backup with a valid creation time.
    """
    if TAG_CATALOG in tags or tags.get(TAG_STATE) != "succeeded":
        return None
    created = tags.get(TAG_CREATED, "")
    try:
        datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    size = tags.get(TAG_SIZE, "")
    value = _catalog_value(created, tags.get(TAG_SKU, ""), size if size.isdigit() else "0", tags.get(TAG_JOB, ""),
                           tags.get(TAG_LOCATION, ""))
    if len(tags) >= 10:  # Blob Storage allows 10 index tags per blob
        return None
    return {**tags, TAG_CATALOG: value}


def _tag_value(text: str) -> str:
    return _TAG_VALUE_RE.sub("_", text)[:256]


@dataclass(frozen=True)
class CatalogEntry:
    """One backup as the catalog knows it (from index tags, no extra reads)."""

    container: str
    blob_name: str
    service_name: str
    sku: str
    created: datetime
    expires: datetime
    size: int | None
    location: str
    job_id: str

    def restorable_for(self, target_sku: str | None, *, now: datetime,
                       margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM would accept this backup for a target of ``target_sku``, and if not, why."""
        if now >= self.expires:
            return False, f"expired on {_stamp(self.expires)} (backups are restorable for 30 days)"
        if now + margin >= self.expires:
            return False, f"expires on {_stamp(self.expires)}, within the configured margin"
        if target_sku is not None and target_sku.lower() != self.sku.lower():
            return False, f"backup tier is {self.sku}, the target's is {target_sku}"
        return True, None

    def restorable(self, *, now: datetime, margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM would restore this backup into some instance of its tier, and if not, why.

        Not expired (with ``margin``) and of a tier that has restore at all; no target in view.
        """
        restorable, reason = self.restorable_for(None, now=now, margin=margin)
        if restorable and self.sku.lower() not in RESTORABLE_TIERS:
            return False, (f"the {self.sku or 'unrecorded'} tier cannot be restored (only Developer, Basic, "
                           "Standard and Premium)")
        return restorable, reason

    def to_json(self, *, now: datetime, target_sku: str | None = None,
                margin: timedelta = timedelta(0)) -> dict[str, object]:
        restorable, reason = self.restorable_for(target_sku, now=now, margin=margin)
        return {
            "container": self.container,
            "blobName": self.blob_name,
            "serviceName": self.service_name,
            "sku": self.sku,
            "createdAt": _stamp(self.created),
            "expiresAt": _stamp(self.expires),
            "sizeBytes": self.size,
            "location": self.location,
            "jobId": self.job_id,
            "restorable": restorable,
            "notRestorableBecause": reason,
        }


def entry_from_tags(container: str, blob_name: str, tags: dict[str, str]) -> CatalogEntry | None:
    """Build a catalog entry from a blob's index tags; None for blobs apim-dr did not finish.

    Reads the one catalog tag when present (what a catalog query returns), else the single tags.
    A catalog tag stands for ``state=succeeded`` (they are written together); without one the
    state tag must say so.
    """
    catalog = _unpack(tags.get(TAG_CATALOG))
    if tags.get(TAG_STATE, "succeeded" if catalog else None) != "succeeded":
        return None
    tags = {**tags, **catalog}
    try:
        parsed = parse_backup_blob_name(blob_name)
        created = datetime.strptime(tags[TAG_CREATED], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        return None
    size_text = tags.get(TAG_SIZE, "")
    return CatalogEntry(
        container=container,
        blob_name=blob_name,
        service_name=parsed.service_name,
        sku=tags.get(TAG_SKU, ""),
        created=created,
        expires=created + BACKUP_RETENTION,
        size=int(size_text) if size_text.isdigit() else None,
        location=tags.get(TAG_LOCATION, ""),
        job_id=tags.get(TAG_JOB, ""),
    )


def _unpack(value: str | None) -> dict[str, str]:
    parts = (value or "").split("/", 5)
    if len(parts) != 6 or parts[0] != _CATALOG_VERSION:
        return {}
    _, created, sku, size, job, location = parts
    return {TAG_CREATED: created, TAG_SKU: sku, TAG_SIZE: size, TAG_JOB: job, TAG_LOCATION: location}


def catalog_query(service_name: str) -> str:
    """The index-tag query for every finished backup of ``service_name``.

    It names the catalog tag, so the answer carries it (Find Blobs by Tags returns only the
    tags of its expression): one query and its pages, no read per blob. It does not name the
    state tag: the catalog tag is only ever written together with ``state=succeeded`` (one Set
    Blob Tags, see :func:`backup_tags`), so it stands for it, and every tag named is one more
    tag in each entry of the answer (a third of the client's parsing time at 2,000 backups).
    """
    return f"\"{TAG_SERVICE}\" = '{service_name.lower()}' AND \"{TAG_CATALOG}\" >= '{_CATALOG_VERSION}/'"


def finished_query(service_name: str) -> str:
    """Every backup of ``service_name`` labelled finished, whether or not it has the catalog tag.

    The query of the catalog before the catalog tag; only the relabelling of such older backups
    uses it (:mod:`dr_core.catalog.relabel`): it returns the names, the catalog query the entries.
    """
    return f"\"{TAG_SERVICE}\" = '{service_name.lower()}' AND \"{TAG_STATE}\" = 'succeeded'"


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
