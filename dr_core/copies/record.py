"""The ``copy`` record: one per instance whose backups are copied, where its copies stand.

Its JSON is the contract the status document reads (``copy`` of an instance) and the ``APIMDR_COPY``
lines echo: ``{"instance", "account", "lastCopied": {"blobName", "createdAt", "copiedAt", "sizeBytes",
"contentMd5", "checksum"}, "lastAttemptAt", "error": {"blobName", "at", "code", "message", "remediation"}}``.
``lastCopied`` is the newest recovery point (by creation) with a verified copy; ``error`` the last
failure, cleared by the next success.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordKind
from dr_core.records import ErrorInfo, mapping, moment, number, record_key, text

__all__ = ["CURSOR_KEY", "CopiedPoint", "CopyCursor", "CopyError", "CopyRecord", "copy_key"]

# The catch-up's cursor shares the record kind (a key no instance's record can have: copy_key adds a hash).
CURSOR_KEY = "catch-up-cursor"

_MAX_TEXT = 2000


def copy_key(instance: object) -> str:
    """The key of an instance's copy record (``instance``: its resource ID)."""
    return record_key(str(instance))


@dataclass(frozen=True)
class CopiedPoint:
    blob_name: str
    created_at: datetime
    copied_at: datetime | None
    size_bytes: int | None
    content_md5: str | None
    checksum: str | None

    def to_json(self) -> JsonObject:
        return {"blobName": self.blob_name, "createdAt": iso_or_none(self.created_at),
                "copiedAt": iso_or_none(self.copied_at), "sizeBytes": self.size_bytes,
                "contentMd5": self.content_md5, "checksum": self.checksum}

    @classmethod
    def from_json(cls, value: object) -> CopiedPoint | None:
        if not isinstance(value, Mapping):
            return None
        name, created = text(value.get("blobName"), _MAX_TEXT), moment(value.get("createdAt"))
        if name is None or created is None:
            return None
        size = number(value.get("sizeBytes"))
        return cls(name, created, moment(value.get("copiedAt")), int(size) if size is not None else None,
                   text(value.get("contentMd5"), 64), text(value.get("checksum"), 16))


@dataclass(frozen=True)
class CopyError:
    blob_name: str | None
    at: datetime | None
    error: ErrorInfo

    def to_json(self) -> JsonObject:
        return {"blobName": self.blob_name, "at": iso_or_none(self.at), **self.error.cut(_MAX_TEXT).to_json()}

    @classmethod
    def from_json(cls, value: object) -> CopyError | None:
        info = ErrorInfo.from_json(value)
        if info is None:
            return None
        data = mapping(value)
        return cls(text(data.get("blobName"), _MAX_TEXT), moment(data.get("at")), info)


@dataclass(frozen=True)
class CopyRecord:
    KIND: ClassVar[RecordKind] = RecordKind.COPY

    instance: str | None
    account: str | None
    last_copied: CopiedPoint | None = None
    last_attempt_at: datetime | None = None
    error: CopyError | None = None

    def lag_hours(self, now: datetime) -> float | None:
        """How old the newest copied recovery point is: what a restore from the copy would lose."""
        if self.last_copied is None:
            return None
        return round(max(0.0, (now - self.last_copied.created_at).total_seconds()) / 3600, 2)

    def with_copy(self, point: CopiedPoint, now: datetime) -> CopyRecord:
        """A verified copy of ``point``: the newest one is kept, the error cleared."""
        newest = self.last_copied
        if newest is None or point.created_at >= newest.created_at:
            newest = point
        return replace(self, last_copied=newest, last_attempt_at=now, error=None)

    def with_error(self, blob_name: str | None, error: ErrorInfo, now: datetime) -> CopyRecord:
        return replace(self, last_attempt_at=now, error=CopyError(blob_name, now, error))

    def to_json(self) -> JsonObject:
        return {"instance": self.instance, "account": self.account,
                "lastCopied": None if self.last_copied is None else self.last_copied.to_json(),
                "lastAttemptAt": iso_or_none(self.last_attempt_at),
                "error": None if self.error is None else self.error.to_json()}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> CopyRecord:
        return cls(text(data.get("instance"), _MAX_TEXT), text(data.get("account"), 64),
                   CopiedPoint.from_json(data.get("lastCopied")), moment(data.get("lastAttemptAt")),
                   CopyError.from_json(data.get("error")))


@dataclass(frozen=True)
class CopyCursor:
    """``{"resumeAfter", "at", "notReached"}``: where the last budgeted catch-up stopped (None: start over)."""

    KIND: ClassVar[RecordKind] = RecordKind.COPY

    resume_after: str | None
    at: datetime | None
    not_reached: int = 0

    def to_json(self) -> JsonObject:
        return {"resumeAfter": self.resume_after, "at": iso_or_none(self.at), "notReached": self.not_reached}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> CopyCursor:
        count = number(data.get("notReached"))
        return cls(text(data.get("resumeAfter"), _MAX_TEXT), moment(data.get("at")), int(count or 0))
