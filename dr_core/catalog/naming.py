"""Names of recovery points, built and parsed here: ``{service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}``
plus ``.apimbackup`` (a native backup) or ``.apimsnapshot`` (a configuration snapshot, gzip JSON).

The time is the job's slot. APIM service names are globally unique (they are DNS names), and one job
exists per instance and slot, so a name is never reused by another job: no backup is overwritten.
The date folders keep listings of one service cheap.

A native backup job's second and later attempts (its operation failed for a transient reason and is tried
again) write ``...{yyyyMMddTHHmmssZ}-a{n}.apimbackup``: every operation gets a name of its own, so an
attempt never overwrites what an earlier one left (a partial blob, or a backup that in fact finished),
which an immutable container would refuse anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "BACKUP_RETENTION",
    "MAX_ATTEMPT",
    "SNAPSHOT_SUFFIX",
    "SUFFIX",
    "BackupBlob",
    "backup_blob_name",
    "parse_backup_blob_name",
    "snapshot_blob_name",
    "snapshot_id",
    "snapshot_name_of",
]

# APIM refuses to restore a backup older than 30 days ("Cannot restore: backup expired").
BACKUP_RETENTION = timedelta(days=30)
SUFFIX = ".apimbackup"
SNAPSHOT_SUFFIX = ".apimsnapshot"
MAX_ATTEMPT = 10  # the highest attempt number a name can carry (APIM_DR_BACKUP_MAX_ATTEMPTS' maximum)

_NAME_RE = re.compile(
    r"^(?P<service>[A-Za-z0-9-]{1,50})/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=service)-(?P<stamp>\d{8}T\d{6}Z)(?:-a(?P<attempt>[2-9]|10)(?=\.apimbackup$))?"
    r"(?P<suffix>\.apimbackup|\.apimsnapshot)$"
)
# A snapshot's ID, as operators and URLs name it: the blob name's last part without the suffix.
_SNAPSHOT_ID_RE = re.compile(r"^(?P<service>[A-Za-z0-9-]{1,50})-(?P<stamp>\d{8}T\d{6}Z)$")


@dataclass(frozen=True)
class BackupBlob:
    service_name: str
    created: datetime
    snapshot: bool = False
    attempt: int = 1

    @property
    def name(self) -> str:
        if self.snapshot:
            return snapshot_blob_name(self.service_name, self.created)
        return backup_blob_name(self.service_name, self.created, attempt=self.attempt)

    @property
    def expires(self) -> datetime:
        return self.created + BACKUP_RETENTION


def backup_blob_name(service_name: str, moment: datetime, *, attempt: int = 1) -> str:
    """The blob of ``service_name``'s backup for ``moment`` (the job's slot), written by its ``attempt``-th try."""
    if not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be between 1 and {MAX_ATTEMPT}")
    moment = moment.astimezone(UTC)
    again = f"-a{attempt}" if attempt > 1 else ""
    return f"{service_name}/{moment:%Y/%m/%d}/{service_name}-{moment:%Y%m%dT%H%M%SZ}{again}{SUFFIX}"


def snapshot_blob_name(service_name: str, moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{service_name}/{moment:%Y/%m/%d}/{service_name}-{moment:%Y%m%dT%H%M%SZ}{SNAPSHOT_SUFFIX}"


def snapshot_id(blob_name: str) -> str:
    """``apim-contoso-prod-20261207T020000Z``: the name operators and URLs use for a snapshot."""
    return blob_name.rsplit("/", 1)[-1].removesuffix(SNAPSHOT_SUFFIX)


def snapshot_name_of(identifier: object) -> str:
    """The blob name of the snapshot ``identifier`` names (its ID or its blob name).

    :raises ValueError: naming what a snapshot ID looks like.
    """
    if not isinstance(identifier, str) or not identifier or len(identifier) > 200:
        raise ValueError("a snapshot ID is {service}-{yyyyMMddTHHmmssZ}, e.g. apim-contoso-prod-20261207T020000Z")
    if identifier.endswith(SNAPSHOT_SUFFIX):
        parsed = parse_backup_blob_name(identifier)
        if not parsed.snapshot:
            raise ValueError("not a snapshot's blob name")
        return identifier
    match = _SNAPSHOT_ID_RE.match(identifier)
    if not match:
        raise ValueError("a snapshot ID is {service}-{yyyyMMddTHHmmssZ}, e.g. apim-contoso-prod-20261207T020000Z")
    try:
        moment = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise ValueError("the snapshot ID's time stamp is not a date") from e
    return snapshot_blob_name(match.group("service"), moment)


def parse_backup_blob_name(name: str) -> BackupBlob:
    """A native backup's or a snapshot's name. :raises ValueError: if ``name`` is not a blob name apim-dr makes."""
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("not an apim-dr backup blob name")
    match = _NAME_RE.match(name)
    if not match:
        raise ValueError(
            "not an apim-dr backup blob name: expected {service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}"
            f"[-a{{n}}]{SUFFIX} (or {SNAPSHOT_SUFFIX})"
        )
    created = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (match.group("y"), match.group("m"), match.group("d")) != (
        f"{created:%Y}", f"{created:%m}", f"{created:%d}"
    ):
        raise ValueError("backup blob name: the date folders do not match the time stamp")
    return BackupBlob(match.group("service"), created, snapshot=match.group("suffix") == SNAPSHOT_SUFFIX,
                      attempt=int(match.group("attempt") or 1))
