"""A snapshot job's own part of its row: how far the reading is, what it cost, and what it produced.

Stored as one JSON column of the job (``dr_core/azure/tables.py``); the pending reads and the items
read so far are too large for a row and live in the staging container, versioned by :attr:`step`
(see :mod:`dr_core.snapshots.capture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from dr_core.kernel.wire import JsonObject

__all__ = ["PROBLEMS_SHOWN", "STEPS_SHOWN", "ConfigRestoreProgress", "SnapshotProgress"]

STEPS_SHOWN = 100  # of a restore plan's steps, on its job
PROBLEMS_SHOWN = 20


@dataclass
class SnapshotProgress:
    step: int = 0  # staging version: the state after this many steps
    reads: int = 0  # ARM reads made (pages and gets), the cost of the snapshot
    throttled: int = 0  # reads ARM answered 429 (tried again after Retry-After)
    items: int = 0  # configuration items read so far
    pending: int = 0  # reads still to make
    vanished: int = 0  # items deleted between being listed and being read (skipped)
    not_captured: int = 0  # items or parts left out on purpose (secrets), listed in the document
    content_hash: str | None = None
    document_size: int | None = None
    same_as: str | None = None  # unchanged configuration: the snapshot this read confirmed (no new blob)
    tier: str | None = None

    def to_json(self) -> JsonObject:
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(_camel(name))
            if value is None:
                continue
            if name in ("content_hash", "same_as", "tier"):
                values[name] = str(value)[:300]
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                values[name] = value
        return cls(**values)

    def view(self) -> JsonObject:
        """What the job's public view shows of it."""
        return self.to_json()


@dataclass
class ConfigRestoreProgress:
    """A snapshot restore's own part of its job row (one JSON column)."""

    snapshot: str = ""  # the snapshot's blob name
    container: str = ""
    source: str = ""  # the instance the snapshot is of
    items: list[str] = field(default_factory=list)  # the chosen item IDs; empty: everything
    dry_run: bool = False
    phase: str = "reading"  # reading | applying | done
    read: SnapshotProgress = field(default_factory=SnapshotProgress)
    counts: dict[str, int] = field(default_factory=dict)  # the plan: create / update / delete
    unchanged: int = 0
    kept: int = 0  # secret named values the target has: left as they are
    steps: int = 0
    next_step: int = 0
    applied: int = 0
    already: int = 0  # steps whose item was found as wanted (a repeated step, a restore run again)
    writes: int = 0
    conflicts: int = 0
    pending_location: str | None = None  # a long-running write of the current step
    shown_steps: list[str] = field(default_factory=list)  # "create apis/echo-api (not in the target)"
    problems: list[JsonObject] = field(default_factory=list)
    failed_step: JsonObject | None = None

    def to_json(self) -> JsonObject:
        body = asdict(self)
        body["read"] = self.read.to_json()
        return {_camel(k): v for k, v in body.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Defensively: a field of the wrong type or out of range keeps its default."""
        values: dict[str, Any] = {}
        for name, parse in _RESTORE_FIELDS.items():
            raw = data.get(_camel(name))
            if raw is not None and (value := parse(raw)) is not None:
                values[name] = value
        return cls(**values)

    def view(self) -> JsonObject:
        return self.to_json()


def _count(value: object) -> int | None:
    return max(0, value) if isinstance(value, int) and not isinstance(value, bool) else None


def _short(limit: int) -> Any:
    return lambda value: value[:limit] if isinstance(value, str) else None


def _strings(value: object) -> list[str] | None:
    return [str(v)[:300] for v in value][:STEPS_SHOWN + 1] if isinstance(value, list) else None


_RESTORE_FIELDS: dict[str, Any] = {
    "snapshot": _short(300), "container": _short(300), "source": _short(300), "phase": _short(20),
    "pending_location": _short(2000), "items": _strings, "shown_steps": _strings,
    "dry_run": lambda v: v is True, "failed_step": lambda v: v if isinstance(v, dict) else None,
    "read": lambda v: SnapshotProgress.from_json(v) if isinstance(v, Mapping) else None,
    "counts": lambda v: {str(k): n for k, n in v.items() if isinstance(n, int)} if isinstance(v, Mapping) else None,
    "problems": lambda v: [p for p in v if isinstance(p, dict)][:PROBLEMS_SHOWN] if isinstance(v, list) else None,
    **{name: _count for name in ("unchanged", "kept", "steps", "next_step", "applied", "already", "writes",
                                 "conflicts")},
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)
