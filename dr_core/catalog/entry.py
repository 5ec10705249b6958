"""One recovery point as the catalog knows it, and whether it can be restored.

Two kinds (:class:`RecoveryPointKind`): a native backup (APIM's ``.apimbackup``: classic tiers only,
restorable for 30 days into an instance of the same tier, all or nothing) and a configuration snapshot
(``.apimsnapshot``: every tier, never expires while it is kept, restored item by item through ARM by
``apim-dr snapshot restore``). The catalog, retention, the RPO monitor and the status page list them
side by side; a native restore (preflight, standby sync, drills) only ever picks a native backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = ["RESTORABLE_TIERS", "CatalogEntry", "RecoveryPointKind", "stamp"]

# The only tiers with backup and restore (lower case, as compared).
RESTORABLE_TIERS = frozenset({"developer", "basic", "standard", "premium"})


class RecoveryPointKind(StrEnum):
    """What a catalog entry is."""

    NATIVE_BACKUP = "native-backup"
    SNAPSHOT = "snapshot"


def stamp(moment: datetime) -> str:
    """``2026-11-30T02:00:00Z``: the second-precision UTC stamp of tags, metadata and catalog listings."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CatalogEntry:
    """One recovery point as the catalog knows it (from index tags, no extra reads).

    ``created`` is the recovery point's time: when the backup was taken, or when a snapshot's
    configuration was last read and found the same as its document (``taken`` is when that document
    was first written). ``expires`` is None for a snapshot.
    """

    container: str
    blob_name: str
    service_name: str
    sku: str
    created: datetime
    expires: datetime | None
    size: int | None
    location: str
    job_id: str
    kind: RecoveryPointKind = RecoveryPointKind.NATIVE_BACKUP
    taken: datetime | None = None
    content_hash: str | None = None

    @property
    def is_snapshot(self) -> bool:
        return self.kind is RecoveryPointKind.SNAPSHOT

    def restorable_for(self, target_sku: str | None, *, now: datetime,
                       margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM's restore would accept this entry for a target of ``target_sku``, and if not, why.

        Only a native backup is restored by APIM's restore: a snapshot is applied item by item instead.
        """
        if self.expires is None:
            return False, "a configuration snapshot: restore it with `apim-dr snapshot restore`, not APIM's restore"
        if now >= self.expires:
            return False, f"expired on {stamp(self.expires)} (backups are restorable for 30 days)"
        if now + margin >= self.expires:
            return False, f"expires on {stamp(self.expires)}, within the configured margin"
        if target_sku is not None and target_sku.lower() != self.sku.lower():
            return False, f"backup tier is {self.sku}, the target's is {target_sku}"
        return True, None

    def restorable(self, *, now: datetime, margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM would restore this backup into some instance of its tier, and if not, why.

        Not expired (with ``margin``) and of a tier that has restore at all; no target in view. A
        configuration snapshot is always a restorable recovery point (into an instance of any tier).
        """
        if self.is_snapshot:
            return True, None
        restorable, reason = self.restorable_for(None, now=now, margin=margin)
        if restorable and self.sku.lower() not in RESTORABLE_TIERS:
            return False, (f"the {self.sku or 'unrecorded'} tier cannot be restored (only Developer, Basic, "
                           "Standard and Premium)")
        return restorable, reason

    def to_json(self, *, now: datetime, target_sku: str | None = None,
                margin: timedelta = timedelta(0)) -> dict[str, object]:
        if self.is_snapshot:
            restorable, reason = self.restorable(now=now, margin=margin)
        else:
            restorable, reason = self.restorable_for(target_sku, now=now, margin=margin)
        return {
            "kind": self.kind.value,
            "container": self.container,
            "blobName": self.blob_name,
            "serviceName": self.service_name,
            "sku": self.sku,
            "createdAt": stamp(self.created),
            "expiresAt": None if self.expires is None else stamp(self.expires),
            "sizeBytes": self.size,
            "location": self.location,
            "jobId": self.job_id,
            "restorable": restorable,
            "notRestorableBecause": reason,
            **({"takenAt": stamp(self.taken or self.created), "contentHash": self.content_hash}
               if self.is_snapshot else {}),
        }
