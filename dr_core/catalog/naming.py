"""Names of backups, built and parsed here: ``{service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}.apimbackup``.

The time is the job's slot. APIM service names are globally unique (they are DNS names), and one job
exists per instance and slot, so a name is never reused by another job: no backup is overwritten.
The date folders keep listings of one service cheap.

A job's second and later attempts (a backup whose operation failed for a transient reason and is tried
again) write ``...{yyyyMMddTHHmmssZ}-a{n}.apimbackup``: every operation gets a name of its own, so an
attempt never overwrites what an earlier one left (a partial blob, or a backup that in fact finished),
which an immutable container would refuse anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["BACKUP_RETENTION", "SUFFIX", "BackupBlob", "backup_blob_name", "parse_backup_blob_name"]

# APIM refuses to restore a backup older than 30 days ("Cannot restore: backup expired").
BACKUP_RETENTION = timedelta(days=30)
SUFFIX = ".apimbackup"
MAX_ATTEMPT = 10  # the highest attempt number a name can carry (APIM_DR_BACKUP_MAX_ATTEMPTS' maximum)

_NAME_RE = re.compile(
    r"^(?P<service>[A-Za-z0-9-]{1,50})/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=service)-(?P<stamp>\d{8}T\d{6}Z)(?:-a(?P<attempt>[2-9]|10))?\.apimbackup$"
)


@dataclass(frozen=True)
class BackupBlob:
    service_name: str
    created: datetime
    attempt: int = 1

    @property
    def name(self) -> str:
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


def parse_backup_blob_name(name: str) -> BackupBlob:
    """:raises ValueError: if ``name`` is not a blob name apim-dr makes."""
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("not an apim-dr backup blob name")
    match = _NAME_RE.match(name)
    if not match:
        raise ValueError(
            "not an apim-dr backup blob name: expected {service}/{yyyy}/{mm}/{dd}/{service}-{yyyyMMddTHHmmssZ}"
            "[-a{n}]" + SUFFIX
        )
    created = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (match.group("y"), match.group("m"), match.group("d")) != (
        f"{created:%Y}", f"{created:%m}", f"{created:%d}"
    ):
        raise ValueError("backup blob name: the date folders do not match the time stamp")
    return BackupBlob(match.group("service"), created, int(match.group("attempt") or 1))
