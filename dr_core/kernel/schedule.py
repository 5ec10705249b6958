"""NCRONTAB schedules as the Azure Functions timer reads them (NCrontab, UTC on Flex Consumption).

Five fields ``{minute} {hour} {day} {month} {day-of-week}``, or six with ``{second}`` first: the
timer takes an expression of exactly five space-separated fields as minutes-first (seconds = 0)
and anything else as six fields. Each field is ``*``, a number, a range ``a-b``, a step ``*/n``,
``a/n`` (a to the end) or ``a-b/n``, or a comma list of those. Months and days of the week also
take their English names or a prefix (``Jan``, ``mon``, ``SEPT``), in any case. Day-of-week is
0-6 with 0 = Sunday (no ``7``); ``?``, ``L``, ``W`` and ``#`` do not exist. When both day-of-month
and day-of-week are restricted, a time must match both (``0 0 1 * Mon``: a 1st that is a Monday),
unlike classic cron's "either".

Where NCrontab accepts something an operator almost certainly did not mean, this parser refuses
it with what NCrontab would do instead, rather than schedule backups the operator did not ask
for: a range written backwards (NCrontab swaps ``22-2`` into ``2-22``), a step below 1 (NCrontab
reads ``*/0`` as every value) or above the field's span (``*/90`` minutes is minute 0 only), a
name prefix that fits two names (NCrontab takes the first: ``Ju`` is June), signs or non-space
whitespace in numbers, and a schedule that never fires (``0 0 30 Feb *``: the timer would accept
it and never run). Everything else agrees with NCrontab's own test vectors.

Used to validate ``BACKUP_SCHEDULE`` and to find the slot a timer firing belongs to (the job ID
is derived from it).
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

__all__ = ["InvalidScheduleError", "Ncrontab"]

_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i

    def describe_range(self) -> str:
        text = f"{self.low}-{self.high}"
        if self.name == "day-of-week":
            text += " (0 = Sunday)"
        return text


_SECOND = _FieldSpec("second", 0, 59)
_FIELDS = (
    _SECOND,
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day", 1, 31),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 6, _DAY_NAMES),
)
_MAX_EXPRESSION = 200
_MAX_DIGITS = 9  # any longer number is far out of every field's range
_LAST_YEAR = 9999  # NCrontab stops where .NET DateTime does

_Fail = Callable[[str], "InvalidScheduleError"]


class InvalidScheduleError(ValueError):
    """An NCRONTAB expression that the Functions timer would refuse, misread, or never fire."""


@dataclass(frozen=True)
class Ncrontab:
    """A parsed schedule: the set of values of each field. Build it with :meth:`parse`."""

    expression: str
    including_seconds: bool
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    # Sorted copies for the searches.
    _seconds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _days: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _months: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("seconds", "minutes", "hours", "days", "months"):
            object.__setattr__(self, f"_{name}", tuple(sorted(getattr(self, name))))

    @classmethod
    def parse(cls, expression: str, *, including_seconds: bool | None = None,
              allow_never: bool = False) -> Ncrontab:
        """Parse ``expression`` as the Functions timer does.

        ``including_seconds=None`` applies the timer's rule (exactly five fields: no seconds;
        otherwise six are required); ``True``/``False`` demand six or five fields, as NCrontab's
        ``ParseOptions.IncludingSeconds`` does. A schedule that never fires is refused unless
        ``allow_never``.

        :raises InvalidScheduleError: naming the field, the value and what is allowed.
        """
        if not isinstance(expression, str):
            raise InvalidScheduleError(f"schedule must be text, not {type(expression).__name__}")
        if len(expression) > _MAX_EXPRESSION:
            raise InvalidScheduleError(f"schedule is {len(expression)} characters long; at most {_MAX_EXPRESSION}")
        odd_space = next((c for c in expression if c.isspace() and c != " "), None)
        if odd_space is not None:
            raise InvalidScheduleError(
                f"schedule {expression!r} contains {odd_space!r}; the Functions timer separates fields with"
                " spaces only (check for a tab or a trailing newline)"
            )
        tokens = [t for t in expression.split(" ") if t]
        explicit = including_seconds is not None
        if including_seconds is None:
            including_seconds = len(tokens) != 5
        expected = 6 if including_seconds else 5
        if len(tokens) != expected:
            found = f"{expression!r} has {len(tokens)} field(s)" if tokens else "is empty"
            wanted = ("five fields {minute} {hour} {day} {month} {day-of-week}, or six with {second} first,"
                      " e.g. '0 2 * * *' or '0 0 2 * * *'")
            if explicit:
                wanted = ("six fields here, {second} first" if including_seconds
                          else "five fields here, {minute} first")
            raise InvalidScheduleError(f"schedule {found}; the Functions timer takes {wanted}")
        specs = _FIELDS if including_seconds else _FIELDS[1:]
        values = [_parse_field(token, spec, expression) for token, spec in zip(tokens, specs, strict=True)]
        if not including_seconds:
            values.insert(0, frozenset({0}))
        schedule = cls(
            expression=expression,
            including_seconds=including_seconds,
            seconds=values[0],
            minutes=values[1],
            hours=values[2],
            days=values[3],
            months=values[4],
            weekdays=values[5],
        )
        if not allow_never and not schedule._has_a_date():
            days = ", ".join(str(d) for d in schedule._days)
            months = ", ".join(_MONTH_NAMES[m - 1] for m in schedule._months)
            raise InvalidScheduleError(
                f"schedule {expression!r} never fires: day(s) {days} never occur in {months}"
                " (the timer would accept it and never run)"
            )
        return schedule

    # -- queries -----------------------------------------------------------------------------------

    def matches(self, moment: datetime) -> bool:
        """Whether the whole second ``moment`` falls in is an occurrence (naive times are UTC)."""
        moment = _utc(moment)
        return (moment.second in self.seconds and moment.minute in self.minutes and moment.hour in self.hours
                and self._date_matches(moment.date()))

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC).

        :raises InvalidScheduleError: when there is none before the year 10000.
        """
        base = _utc(moment).replace(microsecond=0)
        day = base.date()
        if self._date_matches(day):
            at = self._time_after(base.hour, base.minute, base.second)
            if at is not None:
                return datetime.combine(day, at, UTC)
        following = self._first_date_from(day, forward=True)
        if following is None:
            raise InvalidScheduleError(f"schedule {self.expression!r} never fires after {base.isoformat()}")
        return datetime.combine(following, time(self._hours[0], self._minutes[0], self._seconds[0]), UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The most recent occurrence at or before ``moment`` (UTC): the slot a firing belongs to.

        For any ``t``, ``next_after(latest_at_or_before(t)) > t``: no occurrence lies between them.

        :raises InvalidScheduleError: when there is none since the year 1.
        """
        base = _utc(moment).replace(microsecond=0)
        day = base.date()
        if self._date_matches(day):
            at = self._time_at_or_before(base.hour, base.minute, base.second)
            if at is not None:
                return datetime.combine(day, at, UTC)
        previous = self._first_date_from(day, forward=False)
        if previous is None:
            raise InvalidScheduleError(f"schedule {self.expression!r} never fired before {base.isoformat()}")
        return datetime.combine(previous, time(self._hours[-1], self._minutes[-1], self._seconds[-1]), UTC)

    # -- internals ---------------------------------------------------------------------------------

    def _date_matches(self, day: date) -> bool:
        # Day of month AND day of week (date.weekday(): Monday = 0; NCrontab: Sunday = 0).
        return (day.month in self.months and day.day in self.days
                and (day.weekday() + 1) % 7 in self.weekdays)

    def _has_a_date(self) -> bool:
        # Every (month, day) that exists in some year falls on every day of the week in some year.
        return any(d <= (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in self._months for d in self._days)

    def _first_date_from(self, start: date, *, forward: bool) -> date | None:
        """The first matching date after ``start`` (excluded), or the last one before it.

        Whole months outside the month field are jumped over, and only the days of the day field
        are tried in the others, so a search costs at most 12 x 31 checks per year it spans; it
        stops at the years 1 and 9999.
        """
        year, month, day = start.year, start.month, start.day + (1 if forward else -1)
        while 1 <= year <= _LAST_YEAR:
            if month in self.months:
                found = self._day_in_month(year, month, day, forward=forward)
                if found is not None:
                    return found
            year, month = self._next_month(year, month, forward=forward)
            day = 1 if forward else 31
        return None

    def _day_in_month(self, year: int, month: int, day: int, *, forward: bool) -> date | None:
        """The first matching day of the month from ``day`` on (or the last one up to it, backwards)."""
        length = calendar.monthrange(year, month)[1]
        if forward:
            candidates = [d for d in self._days[bisect_left(self._days, day):] if d <= length]
        else:
            candidates = [d for d in reversed(self._days[:bisect_right(self._days, day)]) if d <= length]
        return next((date(year, month, d) for d in candidates if (date(year, month, d).weekday() + 1) % 7
                     in self.weekdays), None)

    def _next_month(self, year: int, month: int, *, forward: bool) -> tuple[int, int]:
        """The next (previous) month of the month field, in the next (previous) year after the last one."""
        if forward:
            i = bisect_right(self._months, month)
            return (year, self._months[i]) if i < len(self._months) else (year + 1, self._months[0])
        i = bisect_left(self._months, month)
        return (year, self._months[i - 1]) if i > 0 else (year - 1, self._months[-1])

    def _time_after(self, hour: int, minute: int, second: int) -> time | None:
        """The first time of day strictly after ``hour:minute:second``, on a matching date."""
        if hour in self.hours:
            if minute in self.minutes:
                i = bisect_right(self._seconds, second)
                if i < len(self._seconds):
                    return time(hour, minute, self._seconds[i])
            i = bisect_right(self._minutes, minute)
            if i < len(self._minutes):
                return time(hour, self._minutes[i], self._seconds[0])
        i = bisect_right(self._hours, hour)
        if i < len(self._hours):
            return time(self._hours[i], self._minutes[0], self._seconds[0])
        return None

    def _time_at_or_before(self, hour: int, minute: int, second: int) -> time | None:
        """The last time of day at or before ``hour:minute:second``, on a matching date."""
        if hour in self.hours:
            if minute in self.minutes:
                i = bisect_right(self._seconds, second)
                if i > 0:
                    return time(hour, minute, self._seconds[i - 1])
            i = bisect_left(self._minutes, minute)
            if i > 0:
                return time(hour, self._minutes[i - 1], self._seconds[-1])
        i = bisect_left(self._hours, hour)
        if i > 0:
            return time(self._hours[i - 1], self._minutes[-1], self._seconds[-1])
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- parsing -------------------------------------------------------------------------------------


def _parse_field(token: str, spec: _FieldSpec, expression: str) -> frozenset[int]:
    def fail(problem: str) -> InvalidScheduleError:
        return InvalidScheduleError(f"schedule {expression!r}, {spec.name} field {token!r}: {problem}")

    if "?" in token:
        raise fail("'?' is not supported by the Functions timer (NCrontab); use '*'")
    if "#" in token:
        raise fail("'#' (nth weekday of the month) is not supported by the Functions timer (NCrontab)")
    values: set[int] = set()
    items = token.split(",")
    for item in items:
        if not item:
            raise fail("a comma list has an empty item")
        values.update(_parse_item(item, spec, fail))
    return frozenset(values)


def _parse_item(item: str, spec: _FieldSpec, fail: _Fail) -> range:
    step: int | None = None
    base = item
    if "/" in item:
        base, _, step_text = item.partition("/")
        if not base:
            raise fail(f"step {item!r} needs a start: '*/n', 'a/n' or 'a-b/n'")
        span = spec.high - spec.low + 1
        if not step_text.isascii() or not step_text.isdigit():
            raise fail(f"step {step_text!r} is not a whole number between 1 and {span}")
        step = int(step_text) if len(step_text) <= _MAX_DIGITS else span + 1
        if step < 1:
            raise fail(f"step {step} is below 1 (NCrontab would read it as 1: every value)")
        if step > span:
            raise fail(f"step {step} is above {span}, the number of {spec.name} values"
                       f" (NCrontab would keep only the first value)")
    if base == "*":
        return range(spec.low, spec.high + 1, step or 1)
    if "-" in base:
        first_text, _, last_text = base.partition("-")
        first = _parse_value(first_text, spec, fail)
        last = _parse_value(last_text, spec, fail)
        if first > last:
            raise fail(f"range {base!r} runs backwards; ranges do not wrap around"
                       f" (NCrontab would read it as {last}-{first})")
        return range(first, last + 1, step or 1)
    value = _parse_value(base, spec, fail)
    return range(value, (spec.high if step else value) + 1, step or 1)


def _parse_value(text: str, spec: _FieldSpec, fail: _Fail) -> int:
    if not text:
        raise fail("a value is missing (e.g. '1-' or '-5')")
    allowed = spec.describe_range()
    if text.isascii() and text.isdigit():
        value = int(text) if len(text) <= _MAX_DIGITS else spec.high + 1
        if not spec.low <= value <= spec.high:
            hint = "; Sunday is 0, the Functions timer has no 7" if spec.name == "day-of-week" and value == 7 else ""
            raise fail(f"{text} is outside {allowed}{hint}")
        return value
    if spec.names and text.isascii() and text.isalpha():
        found = [i for i, name in enumerate(spec.names) if name.lower().startswith(text.lower())]
        if len(found) == 1:
            return spec.low + found[0]
        if found:
            could = " or ".join(spec.names[i] for i in found)
            raise fail(f"{text!r} could be {could} (NCrontab would take {spec.names[found[0]]}); write more letters")
        raise fail(f"{text!r} is not a {spec.name} name ({', '.join(n[:3] for n in spec.names)}, or the full name)"
                   f" nor a number {allowed}")
    extra = " or a name" if spec.names else ""
    hint = " (the Functions timer has no 'L' or 'W')" if "L" in text or "W" in text else ""
    raise fail(f"{text!r} is not a number {allowed}{extra}{hint}")

