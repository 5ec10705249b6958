"""Time: the one place that reads the clock and turns moments into text and back.

Every use case asks an injected :class:`Clock` for ``now`` instead of calling
``datetime.now``, so tests (and the local world) can move time. Production always uses
:class:`SystemClock`; nothing in the app's settings can change that.

Moments are timezone-aware UTC ``datetime`` objects everywhere in the code; strings exist
only at the storage and HTTP edges, written by :func:`iso` (millisecond precision, ``Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "from_iso", "iso", "iso_or_none", "utc"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware UTC."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """``2026-11-30T02:00:00.000Z``: sortable as text, and what job rows and responses carry."""
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def from_iso(text: object) -> datetime | None:
    """Parse what :func:`iso` wrote (or any ISO-8601 stamp); ``None`` for empty or unreadable values."""
    if isinstance(text, datetime):
        return utc(text)
    if not isinstance(text, str) or not text:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


class ManualClock:
    """A clock that stands still until moved (tests, benchmarks, the local world); no setting selects it."""

    def __init__(self, start: datetime) -> None:
        self._now = utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = utc(moment)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
