"""The status document, typed: what ``GET /api/status`` answers, the status page renders and the CLI prints.

Its JSON is a contract (docs/architecture.md, "The status document"); each part's ``to_json`` writes
it. Values that come from records other features wrote are untrusted: texts are cut to
:data:`MAX_TEXT` characters, odd values become null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dr_core.kernel.clock import iso, iso_or_none
from dr_core.kernel.phases import DrillPhase, JobState, RpoState, SyncPhase
from dr_core.kernel.wire import JsonObject
from dr_core.records import ErrorInfo

__all__ = [
    "MAX_TEXT",
    "BackupView",
    "CopyView",
    "DrillView",
    "InstancePosture",
    "LastSyncView",
    "NewestRestorableView",
    "OpenFailure",
    "RpoView",
    "StandbyView",
    "StatusDocument",
]

MAX_TEXT = 2000


def _error_json(error: ErrorInfo | None) -> dict[str, str | None] | None:
    return None if error is None else error.cut(MAX_TEXT).to_json()


def _cut(value: str | None) -> str | None:
    return None if value is None else value[:MAX_TEXT]


@dataclass(frozen=True)
class NewestRestorableView:
    blob_name: str
    created_at: datetime
    age_hours: float

    def to_json(self) -> JsonObject:
        return {"blobName": self.blob_name, "createdAt": iso(self.created_at), "ageHours": self.age_hours}


@dataclass(frozen=True)
class RpoView:
    target_hours: int | None
    state: RpoState | None
    since: datetime | None
    newest_restorable: NewestRestorableView | None
    reason: str | None = None

    def to_json(self) -> JsonObject:
        data: JsonObject = {
            "targetHours": self.target_hours,
            "state": None if self.state is None else self.state.value,
            "since": iso_or_none(self.since),
            "newestRestorable": None if self.newest_restorable is None else self.newest_restorable.to_json(),
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class LastSyncView:
    backup: str | None
    backup_created_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> JsonObject:
        return {"backup": _cut(self.backup), "backupCreatedAt": iso_or_none(self.backup_created_at),
                "finishedAt": iso_or_none(self.finished_at)}


@dataclass(frozen=True)
class StandbyView:
    instance: str
    sync: bool
    lag_hours: float | None
    last_succeeded: LastSyncView | None
    state: SyncPhase | None
    error: ErrorInfo | None

    def to_json(self) -> JsonObject:
        return {"instance": self.instance, "sync": self.sync, "lagHours": self.lag_hours,
                "lastSucceeded": None if self.last_succeeded is None else self.last_succeeded.to_json(),
                "state": None if self.state is None else self.state.value, "error": _error_json(self.error)}


@dataclass(frozen=True)
class DrillView:
    job_id: str | None
    state: DrillPhase | None
    rto_seconds: float | None
    rpo_hours_at_drill: float | None
    finished_at: datetime | None
    target: str | None
    error: ErrorInfo | None

    def to_json(self) -> JsonObject:
        return {"jobId": _cut(self.job_id), "state": None if self.state is None else self.state.value,
                "rtoSeconds": self.rto_seconds, "rpoHoursAtDrill": self.rpo_hours_at_drill,
                "finishedAt": iso_or_none(self.finished_at), "target": _cut(self.target),
                "error": _error_json(self.error)}


@dataclass(frozen=True)
class CopyView:
    """Where the instance's copies in the second account stand: the newest verified copy and its age (the lag)."""

    account: str
    lag_hours: float | None  # age of the newest recovery point with a verified copy (None: none yet)
    last_copied_blob: str | None
    last_copied_created_at: datetime | None
    last_copied_at: datetime | None
    behind: bool  # the newest restorable backup has no verified copy yet
    error: ErrorInfo | None
    error_at: datetime | None = None

    def to_json(self) -> JsonObject:
        return {"account": self.account, "lagHours": self.lag_hours,
                "lastCopied": None if self.last_copied_blob is None else {
                    "blobName": _cut(self.last_copied_blob), "createdAt": iso_or_none(self.last_copied_created_at),
                    "copiedAt": iso_or_none(self.last_copied_at)},
                "behind": self.behind, "error": _error_json(self.error), "errorAt": iso_or_none(self.error_at)}


@dataclass(frozen=True)
class OpenFailure:
    """A failed or timed-out job no later success of the same kind and target has superseded."""

    job_id: str
    kind: str
    state: JobState
    error_code: str | None
    message: str | None
    remediation: str | None
    at: datetime | None

    def to_json(self) -> JsonObject:
        return {"jobId": self.job_id, "kind": self.kind, "state": self.state.value, "errorCode": self.error_code,
                "message": self.message, "remediation": self.remediation, "at": iso_or_none(self.at)}


@dataclass(frozen=True)
class BackupView:
    blob_name: str
    created_at: datetime
    sku: str
    size_bytes: int | None
    restorable: bool
    not_restorable_because: str | None

    def to_json(self) -> JsonObject:
        return {"blobName": self.blob_name, "createdAt": iso(self.created_at), "sku": self.sku,
                "sizeBytes": self.size_bytes, "restorable": self.restorable,
                "notRestorableBecause": self.not_restorable_because}


@dataclass(frozen=True)
class InstancePosture:
    instance: str
    service_name: str
    alias: str | None
    rpo: RpoView
    standby: StandbyView | None
    last_drill: DrillView | None
    open_failures: list[OpenFailure] = field(default_factory=list)
    backups: list[BackupView] = field(default_factory=list)
    backups_omitted: int = 0
    copy: CopyView | None = None  # None: the instance's backups are not copied

    @property
    def label(self) -> str:
        """How people name it: its alias, else its service name."""
        return self.alias or self.service_name

    def to_json(self) -> JsonObject:
        data: JsonObject = {
            "instance": self.instance, "serviceName": self.service_name, "alias": self.alias,
            "rpo": self.rpo.to_json(), "standby": None if self.standby is None else self.standby.to_json(),
            "lastDrill": None if self.last_drill is None else self.last_drill.to_json(),
            "openFailures": [f.to_json() for f in self.open_failures],
            "backups": [b.to_json() for b in self.backups],
            "copy": None if self.copy is None else self.copy.to_json(),
        }
        if self.backups_omitted:
            data["backupsOmitted"] = self.backups_omitted
        return data


@dataclass(frozen=True)
class StatusDocument:
    generated_at: datetime
    instances: list[InstancePosture]
    problems: list[str]

    def to_json(self) -> JsonObject:
        return {"generatedAt": iso(self.generated_at), "instances": [i.to_json() for i in self.instances],
                "problems": list(self.problems)}
