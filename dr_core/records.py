"""Typed records over the record store: JSON only at the storage edge.

A record is a small piece of state that is not a job: an instance's RPO state, a standby's sync, a
drill, the retention cursor. Each is a dataclass of its capability with ``KIND``, ``to_json`` and a
defensive ``from_json`` (a record may have been written by an older version, or by hand: any shape
may come back). :class:`Records` stores one kind of them through the
:class:`~dr_core.ports.RecordStore` port, with the ETag each was read with, so every write is
conditional like a job's.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

from dr_core.kernel.clock import from_iso
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordConflictError, RecordKind, RecordStore, StoredRecord

if TYPE_CHECKING:
    from dr_core.jobs.job import Job
    from dr_core.kernel.errors import DrError

__all__ = [
    "ErrorInfo",
    "Records",
    "TypedRecord",
    "Versioned",
    "mapping",
    "member",
    "moment",
    "number",
    "record_key",
    "text",
]


class TypedRecord(Protocol):
    KIND: ClassVar[RecordKind]

    def to_json(self) -> JsonObject: ...

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> Self: ...


R = TypeVar("R", bound=TypedRecord)


@dataclass
class Versioned(Generic[R]):
    """A record as read (or just written): its key, its value, and the ETag a write must match (None: new)."""

    key: str
    value: R
    etag: str | None = None


class Records(Generic[R]):
    """The records of one kind, typed: ``Records(store, RpoRecord)``."""

    def __init__(self, store: RecordStore, record_type: type[R]) -> None:
        self._store = store
        self._type = record_type
        self.kind = record_type.KIND

    def get(self, key: str) -> Versioned[R] | None:
        stored = self._store.get_record(self.kind, key)
        return None if stored is None else self._typed(stored)

    def all(self) -> list[Versioned[R]]:
        return [self._typed(stored) for stored in self._store.records(self.kind)]

    def put(self, record: Versioned[R]) -> Versioned[R]:
        """Create (``etag`` None) or replace-if-unchanged; :raises RecordConflictError: if someone was first."""
        stored = self._store.put_record(StoredRecord(self.kind, record.key, record.value.to_json(), record.etag))
        record.etag = stored.etag
        return record

    def update(self, key: str, change: Callable[[R | None], R | None], *, attempts: int = 3,
               current: Versioned[R] | None = None) -> Versioned[R] | None:
        """Read, change and write a record with its ETag; read and change again if another writer was first.

        ``change`` gets the current value (None when there is no record) and returns the new one, or
        None to leave the record as it is (then None is returned). ``current`` is the record as the
        caller has just read it (it saves the first read).

        :raises RecordConflictError: another writer was first ``attempts`` times.
        """
        for attempt in range(attempts):
            record = current if attempt == 0 and current is not None else self.get(key)
            new = change(record.value if record is not None else None)
            if new is None:
                return None
            try:
                return self.put(Versioned(key, new, record.etag if record is not None else None))
            except RecordConflictError:
                continue
        raise RecordConflictError(f"record {self.kind}/{key} kept changing ({attempts} attempts)")

    def _typed(self, stored: StoredRecord) -> Versioned[R]:
        return Versioned(stored.key, self._type.from_json(stored.key, stored.data), stored.etag)


def record_key(text_: str) -> str:
    """A table-safe key for ``text_`` (a resource ID, a blob name): readable prefix plus a hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", text_.rsplit("/", 1)[-1])[:60]
    return f"{readable}-{hashlib.sha256(text_.lower().encode()).hexdigest()[:16]}"


# -- reading stored JSON defensively -------------------------------------------------------------------------
def text(value: object, limit: int | None = None) -> str | None:
    """``value`` if it is text (cut to ``limit`` characters when given), else None."""
    if not isinstance(value, str):
        return None
    return value if limit is None else value[:limit]


def moment(value: object) -> datetime | None:
    """``value`` if it is an ISO-8601 moment, else None."""
    return from_iso(value)


def number(value: object) -> float | int | None:
    """``value`` if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


E = TypeVar("E", bound=StrEnum)


def member(enum: type[E], value: object) -> E | None:
    """The member of ``enum`` whose value ``value`` is, else None (a state an older or newer version wrote)."""
    return enum(value) if isinstance(value, str) and value in enum._value2member_map_ else None


@dataclass(frozen=True)
class ErrorInfo:
    """Why something failed, and what to do: ``{"code", "message", "remediation"}`` wherever a record carries it."""

    code: str | None = None
    message: str | None = None
    remediation: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "remediation": self.remediation}

    @classmethod
    def of_job(cls, job: Job) -> ErrorInfo:
        """Why ``job`` failed or was refused, and what to do."""
        return cls(job.error_code, job.error_message, job.remediation)

    @classmethod
    def of_error(cls, error: DrError) -> ErrorInfo:
        return cls(error.error_code, error.message, error.remediation)

    def cut(self, limit: int) -> ErrorInfo:
        """The same, each text cut to ``limit`` characters (for views of untrusted records)."""
        return ErrorInfo(*(text(v, limit) for v in (self.code, self.message, self.remediation)))

    @classmethod
    def from_json(cls, value: object) -> ErrorInfo | None:
        """The error a record carries, or None when it carries none (or not an object)."""
        if not isinstance(value, Mapping):
            return None
        return cls(text(value.get("code")), text(value.get("message")), text(value.get("remediation")))
