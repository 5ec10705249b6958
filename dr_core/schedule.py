"""NCRONTAB schedules as Azure Functions reads them: six fields, seconds first, UTC.

``{second} {minute} {hour} {day} {month} {day-of-week}``; each field takes ``*``, numbers,
ranges ``a-b``, steps ``*/n`` or ``a-b/n`` and comma lists. Month and day names (``Jan``,
``Mon``) are accepted as Functions accepts them. Used to validate ``BACKUP_SCHEDULE`` and
to find the schedule slot a timer firing belongs to (the job ID is derived from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["InvalidScheduleError", "Ncrontab"]

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_MAX_EXPRESSION = 200
# A schedule that never fires (e.g. 30 February) must not loop forever.
_SEARCH_LIMIT = timedelta(days=366 * 5)


class InvalidScheduleError(ValueError):
    """An NCRONTAB expression that Azure Functions would not accept."""


@dataclass(frozen=True)
class Ncrontab:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_is_wildcard: bool
    weekday_is_wildcard: bool

    @classmethod
    def parse(cls, expression: str) -> Ncrontab:
        if not isinstance(expression, str) or not expression.strip():
            raise InvalidScheduleError("schedule is empty; expected six NCRONTAB fields, e.g. '0 0 2 * * *'")
        if len(expression) > _MAX_EXPRESSION:
            raise InvalidScheduleError(f"schedule is {len(expression)} characters long; at most {_MAX_EXPRESSION}")
        parts = expression.split()
        if len(parts) != 6:
            raise InvalidScheduleError(
                f"schedule {expression!r} has {len(parts)} fields; NCRONTAB needs six:"
                " {second} {minute} {hour} {day} {month} {day-of-week}, e.g. '0 0 2 * * *'"
            )
        values = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(v % 7 for v in values[5])
        return cls(
            expression=expression,
            seconds=values[0],
            minutes=values[1],
            hours=values[2],
            days=values[3],
            months=values[4],
            weekdays=weekdays,
            day_is_wildcard=parts[3] in ("*", "?"),
            weekday_is_wildcard=parts[5] in ("*", "?"),
        )

    def matches(self, moment: datetime) -> bool:
        moment = _utc(moment)
        if moment.second not in self.seconds or moment.minute not in self.minutes:
            return False
        if moment.hour not in self.hours or moment.month not in self.months:
            return False
        return self._day_matches(moment)

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        # Python: Monday=0; cron: Sunday=0.
        weekday_ok = (moment.weekday() + 1) % 7 in self.weekdays
        if self.day_is_wildcard or self.weekday_is_wildcard:
            return day_ok and weekday_ok
        # Classic cron: when both are restricted, either may match.
        return day_ok or weekday_ok

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``."""
        return self._search(_utc(moment).replace(microsecond=0) + timedelta(seconds=1), forward=True)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The most recent occurrence at or before ``moment``: the slot a firing belongs to."""
        return self._search(_utc(moment).replace(microsecond=0), forward=False)

    def _search(self, start: datetime, *, forward: bool) -> datetime:
        step = 1 if forward else -1
        limit = start + (_SEARCH_LIMIT if forward else -_SEARCH_LIMIT)
        current = start
        while (current <= limit) if forward else (current >= limit):
            if current.month not in self.months or not self._day_matches(current):
                current = _jump_day(current, forward)
                continue
            if current.hour not in self.hours:
                current = _jump(current, "hour", forward)
                continue
            if current.minute not in self.minutes:
                current = _jump(current, "minute", forward)
                continue
            if current.second not in self.seconds:
                current = current + timedelta(seconds=step)
                continue
            return current
        raise InvalidScheduleError(f"schedule {self.expression!r} never fires")


def _jump_day(moment: datetime, forward: bool) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0)
    return day + timedelta(days=1) if forward else day - timedelta(seconds=1)


def _jump(moment: datetime, unit: str, forward: bool) -> datetime:
    if unit == "hour":
        base = moment.replace(minute=0, second=0)
        return base + timedelta(hours=1) if forward else base - timedelta(seconds=1)
    base = moment.replace(second=0)
    return base + timedelta(minutes=1) if forward else base - timedelta(seconds=1)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    result: set[int] = set()
    for raw_item in text.split(","):
        item = raw_item
        if not item:
            raise InvalidScheduleError(f"{name} field {text!r} has an empty list item")
        step = 1
        if "/" in item:
            item, _, step_text = item.partition("/")
            step = _number(step_text, name, 1, high - low + 1 if high > low else 1, {})
        if item in ("*", "?"):
            start, end = low, high
        elif "-" in item:
            a, _, b = item.partition("-")
            start, end = _number(a, name, low, high, names), _number(b, name, low, high, names)
            if start > end:
                raise InvalidScheduleError(f"{name} range {item!r} runs backwards")
        else:
            start = _number(item, name, low, high, names)
            end = high if step != 1 else start
        result.update(range(start, end + 1, step))
    return frozenset(result)


def _number(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    if name == "day-of-week" and key == "7":
        return 0  # Sunday may be written 7
    if not key.isdigit() or len(key) > 4:
        raise InvalidScheduleError(f"{name} value {text!r} is not a number between {low} and {high}")
    value = int(key)
    if not low <= value <= high:
        raise InvalidScheduleError(f"{name} value {value} is outside {low}-{high}")
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)
