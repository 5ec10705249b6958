"""The ``drill`` record: one per drill (keyed by its restore job's ID), and what the drill verified.

Its JSON is the contract the API, the CLI, the status document and the ``APIMDR_DRILL`` lines read:
``{"instance", "target", "jobId", "backup", "backupCreatedAt", "requestedAt", "finishedAt", "state",
"rtoSeconds", "rpoHoursAtDrill", "verification", "error", "trigger", "announced"}`` (and
``"passedOver"`` when newer backups without a manifest were passed over). ``verification`` holds,
per collection (``apis``, ``products``, ``namedValues``), the names ``expected`` (the manifest),
``found`` (the drill instance), ``missing`` and ``unexpected``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from dr_core.backup.manifest import COLLECTIONS
from dr_core.jobs.job import Trigger
from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.phases import DrillPhase
from dr_core.kernel.wire import JsonObject
from dr_core.ports import ConfigurationSummary, RecordKind
from dr_core.records import ErrorInfo, mapping, member, moment, number, text

__all__ = ["CollectionCheck", "DrillRecord", "Verification", "compare"]

_TRIMMED_NAMES = 50


def _names(value: object) -> tuple[str, ...]:
    return tuple(n for n in value if isinstance(n, str)) if isinstance(value, list) else ()


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class CollectionCheck:
    """One collection's verification: the names the manifest expects, those found, and the differences."""

    expected: tuple[str, ...]
    found: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    expected_count: int | None = None  # the full counts, set once the lists may be cut to fit the record
    found_count: int | None = None
    truncated: bool = False

    def to_json(self) -> JsonObject:
        data: JsonObject = {"expected": list(self.expected), "found": list(self.found),
                                "missing": list(self.missing), "unexpected": list(self.unexpected)}
        if self.expected_count is not None:
            data["expectedCount"] = self.expected_count
        if self.found_count is not None:
            data["foundCount"] = self.found_count
        if self.truncated:
            data["truncated"] = True
        return data

    @classmethod
    def from_json(cls, value: object) -> CollectionCheck:
        data = mapping(value)
        return cls(_names(data.get("expected")), _names(data.get("found")), _names(data.get("missing")),
                   _names(data.get("unexpected")), _count(data.get("expectedCount")), _count(data.get("foundCount")),
                   data.get("truncated") is True)


def compare(expected: Sequence[str], found: Sequence[str]) -> CollectionCheck:
    """One collection's verification; names compare case-insensitively, as ARM's do."""
    wanted = {n.lower() for n in expected}
    present = {n.lower() for n in found}
    return CollectionCheck(
        expected=tuple(sorted(expected)), found=tuple(sorted(found)),
        missing=tuple(sorted(n for n in expected if n.lower() not in present)),
        unexpected=tuple(sorted(n for n in found if n.lower() not in wanted)),
    )


@dataclass(frozen=True)
class Verification:
    """What a drill found in its target against the backup's manifest, per collection."""

    apis: CollectionCheck
    products: CollectionCheck
    named_values: CollectionCheck

    @classmethod
    def of(cls, expected: ConfigurationSummary, found: ConfigurationSummary) -> Verification:
        return cls(compare(expected.apis, found.apis), compare(expected.products, found.products),
                   compare(expected.named_values, found.named_values))

    def parts(self) -> Iterator[tuple[str, CollectionCheck]]:
        """``(JSON name, check)`` of each collection, in :data:`COLLECTIONS` order."""
        yield from zip(COLLECTIONS, (self.apis, self.products, self.named_values), strict=True)

    def differences(self) -> list[str]:
        out: list[str] = []
        for name, part in self.parts():
            for what, names in (("missing", part.missing), ("unexpected", part.unexpected)):
                if names:
                    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                    out.append(f"{name} {what}: {shown}")
        return out

    def counts(self) -> dict[str, int]:
        """How many names are missing and unexpected in all (what the ``APIMDR_DRILL`` line carries)."""
        return {"missing": sum(len(p.missing) for _, p in self.parts()),
                "unexpected": sum(len(p.unexpected) for _, p in self.parts())}

    def fit(self, budget: int) -> Verification:
        """The verification with its full counts, its name lists cut when its JSON would exceed ``budget``."""
        counted = self._map(lambda p: replace(p, expected_count=len(p.expected), found_count=len(p.found)))
        if len(json.dumps(counted.to_json())) <= budget:
            return counted
        return counted._map(lambda p: replace(
            p, expected=p.expected[:_TRIMMED_NAMES], found=p.found[:_TRIMMED_NAMES],
            missing=p.missing[:_TRIMMED_NAMES * 2], unexpected=p.unexpected[:_TRIMMED_NAMES * 2], truncated=True))

    def _map(self, change: Any) -> Verification:
        return Verification(change(self.apis), change(self.products), change(self.named_values))

    def to_json(self) -> JsonObject:
        return {name: part.to_json() for name, part in self.parts()}

    @classmethod
    def from_json(cls, value: object) -> Verification | None:
        if not isinstance(value, Mapping):
            return None
        return cls(*(CollectionCheck.from_json(value.get(name)) for name in COLLECTIONS))


@dataclass(frozen=True)
class DrillRecord:
    KIND: ClassVar[RecordKind] = RecordKind.DRILL

    instance: str | None
    target: str | None
    job_id: str | None
    backup: str | None
    backup_created_at: datetime | None
    requested_at: datetime | None
    finished_at: datetime | None
    state: DrillPhase | None
    rto_seconds: float | None = None
    rpo_hours_at_drill: float | None = None
    verification: Verification | None = None
    error: ErrorInfo | None = None
    trigger: Trigger | None = None
    announced: bool = False
    passed_over: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.state is DrillPhase.RUNNING

    @property
    def failed(self) -> bool:
        return self.state is DrillPhase.FAILED

    def to_json(self) -> JsonObject:
        data: JsonObject = {
            "instance": self.instance, "target": self.target, "jobId": self.job_id, "backup": self.backup,
            "backupCreatedAt": iso_or_none(self.backup_created_at), "requestedAt": iso_or_none(self.requested_at),
            "finishedAt": iso_or_none(self.finished_at), "state": None if self.state is None else self.state.value,
            "rtoSeconds": self.rto_seconds, "rpoHoursAtDrill": self.rpo_hours_at_drill,
            "verification": None if self.verification is None else self.verification.to_json(),
            "error": None if self.error is None else self.error.to_json(),
            "trigger": None if self.trigger is None else self.trigger.value, "announced": self.announced,
        }
        if self.passed_over:
            data["passedOver"] = list(self.passed_over)
        return data

    def public_json(self) -> JsonObject:
        """The drill as the API and the CLI show it (bookkeeping left out)."""
        return {k: v for k, v in self.to_json().items() if k != "announced"}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> DrillRecord:
        return cls(
            instance=text(data.get("instance")),
            target=text(data.get("target")),
            job_id=text(data.get("jobId")) or key,
            backup=text(data.get("backup")),
            backup_created_at=moment(data.get("backupCreatedAt")),
            requested_at=moment(data.get("requestedAt")),
            finished_at=moment(data.get("finishedAt")),
            state=member(DrillPhase, data.get("state")),
            rto_seconds=number(data.get("rtoSeconds")),
            rpo_hours_at_drill=number(data.get("rpoHoursAtDrill")),
            verification=Verification.from_json(data.get("verification")),
            error=ErrorInfo.from_json(data.get("error")),
            trigger=member(Trigger, data.get("trigger")),
            announced=data.get("announced") is True,
            passed_over=_names(data.get("passedOver")),
        )
