"""The ``standby`` record: one per standby, where its last sync stands and which backup it last got.

Its JSON is the contract the status document, the CLI and the ``APIMDR_STANDBY`` lines read:
``{"primary", "standby", "jobId", "state", "backup", "backupCreatedAt", "requestedAt", "finishedAt",
"error", "lastSucceeded": {"backup", "backupCreatedAt", "finishedAt"}, "announced", "lastSkipped":
{"backup", "at", "reason"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.phases import SyncPhase
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordKind
from dr_core.records import ErrorInfo, mapping, member, moment, record_key, text

__all__ = ["LastSync", "SkippedSync", "StandbyRecord", "standby_key"]

# What the CLI and the API show of a record (its bookkeeping, ``announced``, left out), plus the lag.
_VIEW_KEYS = ("primary", "standby", "state", "jobId", "backup", "backupCreatedAt", "requestedAt", "finishedAt",
              "lastSucceeded", "error", "lastSkipped")


def standby_key(standby: object) -> str:
    """The key of a standby's record (``standby``: its resource ID)."""
    return record_key(str(standby))


@dataclass(frozen=True)
class LastSync:
    """The sync that last succeeded: the backup the standby holds, when that backup was made, when it landed."""

    backup: str | None
    backup_created_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, str | None]:
        return {"backup": self.backup, "backupCreatedAt": iso_or_none(self.backup_created_at),
                "finishedAt": iso_or_none(self.finished_at)}

    @classmethod
    def from_json(cls, value: object) -> LastSync | None:
        if not isinstance(value, Mapping):
            return None
        return cls(text(value.get("backup")), moment(value.get("backupCreatedAt")), moment(value.get("finishedAt")))


@dataclass(frozen=True)
class SkippedSync:
    """A backup not synced because the standby was busy (a note beside the attempt in flight)."""

    backup: str | None
    at: datetime | None
    reason: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"backup": self.backup, "at": iso_or_none(self.at), "reason": self.reason}

    @classmethod
    def from_json(cls, value: object) -> SkippedSync | None:
        if not isinstance(value, Mapping):
            return None
        return cls(text(value.get("backup")), moment(value.get("at")), text(value.get("reason")))


@dataclass(frozen=True)
class StandbyRecord:
    KIND: ClassVar[RecordKind] = RecordKind.STANDBY

    primary: str | None
    standby: str | None
    job_id: str | None
    state: SyncPhase | None
    backup: str | None
    backup_created_at: datetime | None
    requested_at: datetime | None
    finished_at: datetime | None
    error: ErrorInfo | None = None
    last_succeeded: LastSync | None = None
    announced: SyncPhase | None = None  # REFUSED once a refusal streak was announced
    last_skipped: SkippedSync | None = None

    def lag_hours(self, now: datetime) -> float | None:
        """Age of the backup the standby was last restored from, in hours; None if it never was."""
        created = self.last_succeeded.backup_created_at if self.last_succeeded is not None else None
        return None if created is None else round(max(0.0, (now - created).total_seconds()) / 3600, 2)

    def to_json(self) -> JsonObject:
        return {
            "primary": self.primary,
            "standby": self.standby,
            "jobId": self.job_id,
            "backup": self.backup,
            "backupCreatedAt": iso_or_none(self.backup_created_at),
            "requestedAt": iso_or_none(self.requested_at),
            "finishedAt": iso_or_none(self.finished_at),
            "error": None if self.error is None else self.error.to_json(),
            "state": None if self.state is None else self.state.value,
            "lastSucceeded": None if self.last_succeeded is None else self.last_succeeded.to_json(),
            "announced": None if self.announced is None else self.announced.value,
            "lastSkipped": None if self.last_skipped is None else self.last_skipped.to_json(),
        }

    def view_json(self, now: datetime) -> JsonObject:
        """The record as the CLI and ``apim-dr standbys --json`` show it: its contract fields and the lag."""
        data = self.to_json()
        return {key: data[key] for key in _VIEW_KEYS} | {"lagHours": self.lag_hours(now)}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> StandbyRecord:
        return cls(
            primary=text(data.get("primary")),
            standby=text(data.get("standby")),
            job_id=text(data.get("jobId")),
            state=member(SyncPhase, data.get("state")),
            backup=text(data.get("backup")),
            backup_created_at=moment(data.get("backupCreatedAt")),
            requested_at=moment(data.get("requestedAt")),
            finished_at=moment(data.get("finishedAt")),
            error=ErrorInfo.from_json(data.get("error")),
            last_succeeded=LastSync.from_json(data.get("lastSucceeded")),
            announced=member(SyncPhase, data.get("announced")),
            last_skipped=SkippedSync.from_json(mapping(data).get("lastSkipped")),
        )
