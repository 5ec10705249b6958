"""The host stand-in's own NCRONTAB (``emulator.funchost.ncrontab``): NCrontab's rules, quirks included.

The reference vectors, run through both this and the app's parser, are in
tests/unit/kernel/test_schedule_reference.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from emulator.funchost.ncrontab import CronSchedule, CrontabError, parse_timer_schedule

NOW = datetime(2026, 11, 22, 3, 14, 5, tzinfo=UTC)  # a Sunday


def values(expression: str, field: str) -> list[int]:
    return parse_timer_schedule(expression).field_values()[field]


def test_the_timer_reads_exactly_five_fields_without_seconds_and_anything_else_as_six() -> None:
    assert not parse_timer_schedule("*/5 * * * *").including_seconds
    assert values("*/5 * * * *", "minutes") == list(range(0, 60, 5))
    assert values("*/5 * * * *", "seconds") == [0]
    assert parse_timer_schedule("  0   0 2 * * *  ").including_seconds
    for wrong in ("", "0 2 * *", "0 0 2 * * * *"):
        with pytest.raises(CrontabError, match="must contain 6 components"):
            parse_timer_schedule(wrong)
    with pytest.raises(CrontabError, match="must contain 5 components"):
        CronSchedule("0 0 2 * * *", including_seconds=False)


@pytest.mark.parametrize(
    ("expression", "field", "expected"),
    [
        ("0 0 22-2 * * *", "hours", list(range(2, 23))),  # a backwards range is swapped
        ("*/0 * * * * *", "seconds", list(range(60))),  # a step below 1 is 1
        ("*/-3 * * * * *", "seconds", list(range(60))),
        ("*/+20 * * * * *", "seconds", [0, 20, 40]),  # the step is read by int.Parse: sign allowed
        ("*/90 * * * *", "minutes", [0]),  # a step past the end keeps the first value
        ("0 0 2 * Ju *", "months", [6]),  # the first name with that prefix wins
        ("0 0 2 * M *", "months", [3]),
        ("0 0 2 * * T", "days_of_week", [2]),
        ("0 0 2 * * s", "days_of_week", [0]),
        ("0 0 2 * * Mon-Fri", "days_of_week", [1, 2, 3, 4, 5]),
        ("0 0 2 * * Fri-Mon", "days_of_week", [1, 2, 3, 4, 5]),  # swapped too
        ("0 0 2 * * Wed/2", "days_of_week", [3, 5]),
        ("0 0 2 * SEPT-october,DECEM *", "months", [9, 10, 12]),
        ("0 0 2 25/3 * *", "days", [25, 28, 31]),
        ("007 * * * * *", "seconds", [7]),
        ("*,5 * * * * *", "seconds", list(range(60))),
    ],
)
def test_ncrontab_field_syntax(expression: str, field: str, expected: list[int]) -> None:
    assert values(expression, field) == expected


@pytest.mark.parametrize(
    "expression",
    ["0 0 2 * * 7", "0 0 2 ? * *", "0 0 2 * * ?", "0 0 2 L * *", "0 0 2 1W * *", "0 0 2 * * Mon#2", "0 0 0 * * *-5",
     "1,,2 * * * * *", ",1 * * * * *", "1, * * * * *", "/5 * * * * *", "5/ * * * * *", "1-2-3 * * * * *",
     "*/5/2 * * * * *", "* * * * Foo *", "0 0 2 * * *\t", "0\t0 2 * * *", "99999999999 * * * * *",
     "*/99999999999 * * * * *", "1a * * * * *"],
)
def test_ncrontab_refuses(expression: str) -> None:
    with pytest.raises(CrontabError):
        parse_timer_schedule(expression)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    friday_13 = parse_timer_schedule("0 0 0 13 * Fri")
    assert friday_13.next_occurrence(NOW) == datetime(2027, 8, 13, tzinfo=UTC)
    assert parse_timer_schedule("0 0 1 * Mon").next_occurrence(NOW) == datetime(2027, 2, 1, tzinfo=UTC)
    assert parse_timer_schedule("0 0 * * Mon").next_occurrence(NOW) == datetime(2026, 11, 23, tzinfo=UTC)


def test_next_occurrence_is_strictly_after_and_whole_seconds() -> None:
    every_second = parse_timer_schedule("* * * * * *")
    assert every_second.next_occurrence(NOW) == datetime(2026, 11, 22, 3, 14, 6, tzinfo=UTC)
    assert every_second.next_occurrence(NOW.replace(microsecond=999_999)) == datetime(2026, 11, 22, 3, 14, 6,
                                                                                      tzinfo=UTC)
    assert parse_timer_schedule("0 0 2 * * *").next_occurrence(datetime(2026, 11, 22, 2, 0)) == datetime(
        2026, 11, 23, 2, 0, tzinfo=UTC)


def test_a_schedule_that_never_fires_parses_and_has_no_next_occurrence() -> None:
    never = parse_timer_schedule("0 0 0 31 Feb *")  # NCrontab accepts it; the timer would wait forever
    assert never.next_occurrence(NOW) is None
    yearly = parse_timer_schedule("0 0 0 1 1 *")
    assert yearly.next_occurrence(datetime(9998, 6, 1)) == datetime(9999, 1, 1, tzinfo=UTC)
    assert yearly.next_occurrence(datetime(9999, 6, 1)) is None
