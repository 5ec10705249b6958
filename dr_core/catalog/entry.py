"""One recovery point as the catalog knows it, and whether APIM would restore it.

Today every entry is a native backup (APIM's ``.apimbackup``); :class:`RecoveryPointKind` leaves room
for the recovery points to come (configuration snapshots, companion exports), which the catalog,
retention, the RPO monitor and the status page will list beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = ["RESTORABLE_TIERS", "CatalogEntry", "RecoveryPointKind", "stamp"]

# The only tiers with backup and restore (lower case, as compared).
RESTORABLE_TIERS = frozenset({"developer", "basic", "standard", "premium"})


class RecoveryPointKind(StrEnum):
    """What a catalog entry is: a native backup, or (coming, dr_core/snapshots) a configuration snapshot.

    The kinds differ in what time does to them: APIM restores a native backup for 30 days only and only
    into a classic tier, while a configuration snapshot is applied through ARM's child resources, so it
    never expires and fits every tier (:attr:`expires`, :attr:`tier_limited`).
    """

    NATIVE_BACKUP = "native-backup"
    CONFIGURATION_SNAPSHOT = "configuration-snapshot"

    @property
    def expires(self) -> bool:
        """Whether APIM stops accepting a point of this kind after its ``expires`` (30 days)."""
        return self is RecoveryPointKind.NATIVE_BACKUP

    @property
    def tier_limited(self) -> bool:
        """Whether only the classic tiers (:data:`RESTORABLE_TIERS`) can restore a point of this kind."""
        return self is RecoveryPointKind.NATIVE_BACKUP


def stamp(moment: datetime) -> str:
    """``2026-11-30T02:00:00Z``: the second-precision UTC stamp of tags, metadata and catalog listings."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    kind: RecoveryPointKind = RecoveryPointKind.NATIVE_BACKUP

    def restorable_for(self, target_sku: str | None, *, now: datetime,
                       margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM would accept this backup for a target of ``target_sku``, and if not, why."""
        if not self.kind.expires:  # a configuration snapshot: applied through ARM, any age, any tier
            return True, None
        if now >= self.expires:
            return False, f"expired on {stamp(self.expires)} (backups are restorable for 30 days)"
        if now + margin >= self.expires:
            return False, f"expires on {stamp(self.expires)}, within the configured margin"
        if target_sku is not None and target_sku.lower() != self.sku.lower():
            return False, f"backup tier is {self.sku}, the target's is {target_sku}"
        return True, None

    def restorable(self, *, now: datetime, margin: timedelta = timedelta(0)) -> tuple[bool, str | None]:
        """Whether APIM would restore this backup into some instance of its tier, and if not, why.

        Not expired (with ``margin``) and of a tier that has restore at all; no target in view.
        """
        restorable, reason = self.restorable_for(None, now=now, margin=margin)
        if restorable and self.kind.tier_limited and self.sku.lower() not in RESTORABLE_TIERS:
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
            "createdAt": stamp(self.created),
            "expiresAt": stamp(self.expires),
            "sizeBytes": self.size,
            "location": self.location,
            "jobId": self.job_id,
            "restorable": restorable,
            "notRestorableBecause": reason,
        }
