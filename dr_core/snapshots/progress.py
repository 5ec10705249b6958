"""A snapshot job's own part of its row: how far the reading is, what it cost, and what it produced.

Stored as one JSON column of the job (``dr_core/azure/tables.py``); the pending reads and the items
read so far are too large for a row and live in the staging container, versioned by :attr:`step`
(see :mod:`dr_core.snapshots.capture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Self

from dr_core.kernel.wire import JsonObject

__all__ = ["SnapshotProgress"]


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


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)
