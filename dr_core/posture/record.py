"""The ``rpo`` record: one per protected instance, the RPO monitor's memory between runs.

Its JSON is a contract (issue 11): ``{"instance", "state", "since", "targetHours", "newestRestorable":
{"blobName", "createdAt"} | null, "announced", "watchedSince"}``, plus ``"announcing": {"state", "until"}``
while a runner claims an announcement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from dr_core.kernel.clock import iso, iso_or_none
from dr_core.kernel.phases import RpoState
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordKind
from dr_core.records import mapping, member, moment, record_key, text

__all__ = ["AnnounceClaim", "NewestBackup", "RpoRecord", "rpo_key"]


def rpo_key(instance: object) -> str:
    """The key of an instance's ``rpo`` record (``instance``: its resource ID)."""
    return record_key(str(instance))


@dataclass(frozen=True)
class NewestBackup:
    """The newest restorable backup as the record, the ``APIMDR_RPO`` line and the events carry it."""

    blob_name: str
    created_at: datetime

    def to_json(self) -> dict[str, str]:
        return {"blobName": self.blob_name, "createdAt": iso(self.created_at)}

    @classmethod
    def from_json(cls, value: object) -> NewestBackup | None:
        data = mapping(value)
        name, created = text(data.get("blobName"), 300), moment(data.get("createdAt"))
        return None if name is None or created is None else cls(name, created)


@dataclass(frozen=True)
class AnnounceClaim:
    """A runner announcing a state right now; others leave the instance alone until ``until``."""

    state: RpoState | None
    until: datetime

    def active(self, now: datetime) -> bool:
        return self.until > now

    def to_json(self) -> dict[str, str | None]:
        return {"state": None if self.state is None else self.state.value, "until": iso(self.until)}


@dataclass(frozen=True)
class RpoRecord:
    KIND: ClassVar[RecordKind] = RecordKind.RPO

    instance: str
    state: RpoState | None
    since: datetime | None
    target_hours: int | None
    newest_restorable: NewestBackup | None
    announced: RpoState | None  # the state last announced: breached, or the one recovered to
    watched_since: datetime | None
    announcing: AnnounceClaim | None = None

    def to_json(self) -> JsonObject:
        data: JsonObject = {
            "instance": self.instance,
            "state": None if self.state is None else self.state.value,
            "since": iso_or_none(self.since),
            "targetHours": self.target_hours,
            "newestRestorable": None if self.newest_restorable is None else self.newest_restorable.to_json(),
            "announced": None if self.announced is None else self.announced.value,
            "watchedSince": iso_or_none(self.watched_since),
        }
        if self.announcing is not None:
            data["announcing"] = self.announcing.to_json()
        return data

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> RpoRecord:
        claim = mapping(data.get("announcing"))
        until = moment(claim.get("until"))
        target = data.get("targetHours")
        return cls(
            instance=text(data.get("instance")) or "",
            state=member(RpoState, data.get("state")),
            since=moment(data.get("since")),
            target_hours=target if isinstance(target, int) and not isinstance(target, bool) else None,
            newest_restorable=NewestBackup.from_json(data.get("newestRestorable")),
            announced=member(RpoState, data.get("announced")),
            watched_since=moment(data.get("watchedSince")),
            announcing=None if until is None else AnnounceClaim(member(RpoState, claim.get("state")), until),
        )
