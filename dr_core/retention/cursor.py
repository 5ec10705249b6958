"""The retention cursor: where the last budgeted run stopped, so the next one begins there (one record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordKind
from dr_core.records import moment, text

__all__ = ["CURSOR_KEY", "RetentionCursor"]

CURSOR_KEY = "cursor"


@dataclass(frozen=True)
class RetentionCursor:
    """``{"resumeAfter", "at", "notReached"}``: the key of the last instance reached (None: start over)."""

    KIND: ClassVar[RecordKind] = RecordKind.RETENTION

    resume_after: str | None
    at: datetime | None
    not_reached: int = 0

    def to_json(self) -> JsonObject:
        return {"resumeAfter": self.resume_after, "at": iso_or_none(self.at), "notReached": self.not_reached}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> RetentionCursor:
        count = data.get("notReached")
        return cls(text(data.get("resumeAfter")), moment(data.get("at")),
                   count if isinstance(count, int) and not isinstance(count, bool) else 0)
