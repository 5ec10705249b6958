"""The host stand-in's own NCRONTAB: what the Functions timer trigger (NCrontab) accepts and when it fires.

Deliberately independent of the app (no ``dr_core`` import, a different structure): the stand-in
must be able to disagree with the app when the app is wrong. It follows NCrontab, the library the
timer trigger uses, including the parts an operator may not expect:

- The timer decides the form by counting space-separated fields: exactly five is
  ``minute hour day month day-of-week`` (seconds = 0), anything else must be six, seconds first.
  Fields are separated by spaces only; a tab stays inside its field (and usually breaks it).
- A field is a comma list of items; an item is ``*``, a value, ``a-b``, with an optional ``/n``.
  ``a/n`` runs from ``a`` to the field's end. Values are ASCII digits, and for months and days of
  the week a case-insensitive prefix of the English name: the *first* name with that prefix wins
  (``Ju`` is June, ``T`` Tuesday). Day-of-week is 0-6, Sunday = 0; ``7``, ``?``, ``L``, ``W`` (as a
  day-of-month suffix) and ``#`` are refused.
- The step is read like .NET ``int.Parse``: a sign and surrounding whitespace are allowed, and a
  step below 1 counts as 1 (``*/0`` is every value). A range written backwards is swapped
  (``22-2`` is ``2-22``).
- An occurrence must match every field: when day-of-month and day-of-week are both restricted,
  both must match. The next occurrence is strictly after the given time, computed field by
  field from seconds up (the way NCrontab does it); nothing after the year 9999.

The error texts are NCrontab's, so the stand-in's log reads like the host's.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CronSchedule", "CrontabError", "parse_timer_schedule"]


class CrontabError(ValueError):
    """NCrontab refused the expression (``CrontabException``, or a ``FormatException`` from a number)."""


@dataclass(frozen=True)
class _Kind:
    label: str  # NCrontab's CrontabFieldKind name, as its messages show it
    lowest: int
    highest: int
    names: tuple[str, ...] = ()


_SECOND = _Kind("Second", 0, 59)
_MINUTE = _Kind("Minute", 0, 59)
_HOUR = _Kind("Hour", 0, 23)
_DAY = _Kind("Day", 1, 31)
_MONTH = _Kind("Month", 1, 12, ("January", "February", "March", "April", "May", "June", "July", "August",
                                "September", "October", "November", "December"))
_DAY_OF_WEEK = _Kind("DayOfWeek", 0, 6, ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                         "Saturday"))
_ALL_KINDS = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _DAY_OF_WEEK)
_LAST_YEAR = 9999
_INT32_MAX = 2**31 - 1
_DOTNET_WHITE = "\t\n\v\f\r "


class _Field:
    """The values of one field as a bit per value, as NCrontab keeps them."""

    def __init__(self, kind: _Kind) -> None:
        self.kind = kind
        self.bits = [False] * (kind.highest - kind.lowest + 1)

    def accumulate(self, start: int, end: int, interval: int) -> None:
        """Add ``start..end`` every ``interval``; ``start == end == -1`` means the whole field."""
        low, high = self.kind.lowest, self.kind.highest
        if start == end == -1:
            start, end = low, high
        elif start == end:
            self._check(start)
        else:
            start, end = min(start, end), max(start, end)  # a backwards range is swapped
            self._check(start)
            self._check(end)
        for value in range(start, end + 1, max(interval, 1)):
            self.bits[value - low] = True

    def _check(self, value: int) -> None:
        if value < self.kind.lowest:
            raise CrontabError(f"{value} is lower than the minimum allowable value for the [{self.kind.label}] field."
                               f" Value must be between {self.kind.lowest} and {self.kind.highest} (all inclusive).")
        if value > self.kind.highest:
            raise CrontabError(f"{value} is higher than the maximum allowable value for the [{self.kind.label}] field."
                               f" Value must be between {self.kind.lowest} and {self.kind.highest} (all inclusive).")

    def first(self) -> int:
        return self.bits.index(True) + self.kind.lowest

    def at_or_after(self, value: int) -> int | None:
        """The smallest value of the field that is >= ``value``, or None."""
        for index in range(max(value - self.kind.lowest, 0), len(self.bits)):
            if self.bits[index]:
                return index + self.kind.lowest
        return None

    def __contains__(self, value: int) -> bool:
        index = value - self.kind.lowest
        return 0 <= index < len(self.bits) and self.bits[index]

    def values(self) -> list[int]:
        return [i + self.kind.lowest for i, on in enumerate(self.bits) if on]


def _dotnet_int(text: str) -> int:
    """``int.Parse(text, CultureInfo.InvariantCulture)``: whitespace around, an optional sign, digits."""
    core = text.strip(_DOTNET_WHITE)
    digits = core[1:] if core[:1] in ("+", "-") else core
    if not digits or not all("0" <= c <= "9" for c in digits):
        raise CrontabError(f"Input string '{text}' was not in a correct format.")
    value = int(core)
    if not -_INT32_MAX - 1 <= value <= _INT32_MAX:
        raise CrontabError(f"Value '{text}' was either too large or too small for an Int32.")
    return value


def _value(kind: _Kind, text: str) -> int:
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    if "0" <= text[0] <= "9":
        return _dotnet_int(text)
    if not kind.names:
        raise CrontabError(f"'{text}' is not a valid [{kind.label}] crontab field value. It must be a numeric"
                           f" value between {kind.lowest} and {kind.highest} (all inclusive).")
    wanted = text.casefold()
    for offset, name in enumerate(kind.names):
        if name.casefold().startswith(wanted):
            return kind.lowest + offset
    raise CrontabError(f"'{text}' is not a known value name. Use one of the following: {', '.join(kind.names)}.")


def _accumulate_text(field: _Field, text: str) -> None:
    """One field's text, read in NCrontab's order: list, step, wildcard, range, single value."""
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    if text.find(",") > 0:
        for part in text.split(","):
            _accumulate_text(field, part)
        return
    interval: int | None = None
    slash = text.find("/")
    if slash > 0:
        interval = _dotnet_int(text[slash + 1:])
        text = text[:slash]
    if text == "*":
        field.accumulate(-1, -1, 1 if interval is None else interval)
        return
    dash = text.find("-")
    if dash > 0:
        field.accumulate(_value(field.kind, text[:dash]), _value(field.kind, text[dash + 1:]),
                         1 if interval is None else interval)
        return
    single = _value(field.kind, text)
    if interval is None:
        field.accumulate(single, single, 1)
    else:
        field.accumulate(single, field.kind.highest, interval)


def _parse_field(kind: _Kind, text: str) -> _Field:
    field = _Field(kind)
    try:
        _accumulate_text(field, text)
    except CrontabError as e:
        raise CrontabError(f"'{text}' is not a valid [{kind.label}] crontab field expression. {e}") from e
    return field


class CronSchedule:
    """One parsed NCRONTAB expression; :meth:`next_occurrence` is ``GetNextOccurrence``."""

    def __init__(self, expression: str, *, including_seconds: bool) -> None:
        tokens = [t for t in expression.split(" ") if t]
        wanted = 6 if including_seconds else 5
        if len(tokens) != wanted:
            components = ("6 components of a schedule in the sequence of seconds, minutes, hours, days, months,"
                          " and days of week" if including_seconds else
                          "5 components of a schedule in the sequence of minutes, hours, days, months, and days"
                          " of week")
            raise CrontabError(f"'{expression}' is an invalid crontab expression. It must contain {components}.")
        kinds = _ALL_KINDS if including_seconds else _ALL_KINDS[1:]
        parsed = [_parse_field(kind, token) for kind, token in zip(kinds, tokens, strict=True)]
        if not including_seconds:
            parsed.insert(0, _parse_field(_SECOND, "0"))
        self.expression = expression
        self.including_seconds = including_seconds
        self._second, self._minute, self._hour, self._day, self._month, self._day_of_week = parsed

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, including_seconds={self.including_seconds})"

    def field_values(self) -> dict[str, list[int]]:
        """Each field's values (seconds, minutes, hours, days, months, days of week; Sunday = 0)."""
        names = ("seconds", "minutes", "hours", "days", "months", "days_of_week")
        fields = (self._second, self._minute, self._hour, self._day, self._month, self._day_of_week)
        return {name: f.values() for name, f in zip(names, fields, strict=True)}

    def next_occurrence(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after`` (naive = UTC), as UTC; None past the year 9999."""
        if after.tzinfo is not None:
            after = after.astimezone(UTC).replace(tzinfo=None)
        moment = after.replace(microsecond=0)
        while True:
            found = self._next_ignoring_day_of_week(moment)
            if found is None:
                return None
            if (found.isoweekday() % 7) in self._day_of_week:  # isoweekday: Monday 1 .. Sunday 7
                return found.replace(tzinfo=UTC)
            # Not a wanted day of the week: carry on after the last second of that day.
            moment = found.replace(hour=23, minute=59, second=59)

    def _next_ignoring_day_of_week(self, moment: datetime) -> datetime | None:
        # An odometer with wheels second, minute, hour, day, month (and the year beyond): each
        # wheel moves to its next allowed value; one that runs out resets and carries into the
        # next; a wheel that moves forward resets the ones below it to their first value.
        wheels = (self._second, self._minute, self._hour, self._day, self._month)
        reading = [moment.second + 1, moment.minute, moment.hour, moment.day, moment.month]
        year = moment.year
        level = 0
        while True:
            if level == len(wheels):
                if year > _LAST_YEAR:
                    return None
                day, month = reading[3], reading[4]
                if day <= calendar.monthrange(year, month)[1]:
                    return datetime(year, month, day, reading[2], reading[1], reading[0])
                # No such date (31 April, 29 February of a common year): on to the next month.
                for lower in range(4):
                    reading[lower] = wheels[lower].first()
                reading[4] += 1
                level = 4
                continue
            value = wheels[level].at_or_after(reading[level])
            if value is None:
                for lower in range(level + 1):
                    reading[lower] = wheels[lower].first()
                if level + 1 < len(wheels):
                    reading[level + 1] += 1
                else:
                    year += 1
            elif value != reading[level]:
                for lower in range(level):
                    reading[lower] = wheels[lower].first()
                reading[level] = value
            level += 1


def parse_timer_schedule(expression: str) -> CronSchedule:
    """Parse a timer trigger's ``schedule`` as the Functions timer extension does (``CronSchedule.TryCreate``).

    Exactly five space-separated fields are read without seconds; any other count is read as six
    (seconds first), so four or seven fields fail as "must contain 6 components".
    """
    fields = [t for t in expression.split(" ") if t]
    return CronSchedule(expression, including_seconds=len(fields) != 5)
