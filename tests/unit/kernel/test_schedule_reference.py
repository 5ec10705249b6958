"""Schedules against NCrontab: the app's parser (``dr_core.kernel.schedule``) and the host stand-in's own
NCrontab (``emulator.funchost.ncrontab``) each against NCrontab's test vectors (../shared, read in
place), then against each other on random expressions and instants.

The two implementations are written independently (different structure, no shared code), so a
disagreement points at a bug in one of them. The app is deliberately stricter than NCrontab on a
few forms (see dr_core/schedule.py); where the app accepts, both must mean the same schedule.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dr_core.kernel.schedule import InvalidScheduleError, Ncrontab
from emulator.funchost.ncrontab import CronSchedule, CrontabError, parse_timer_schedule
from tests.conftest import shared_dir

# -- the two implementations behind one interface -----------------------------------------------------


def _app_parse(expression: str, including_seconds: bool) -> Ncrontab:
    # NCrontab accepts schedules that never fire ("* * 31 Feb *"); the app refuses them by default.
    return Ncrontab.parse(expression, including_seconds=including_seconds, allow_never=True)


def _app_next(schedule: Any, after: datetime) -> datetime | None:
    try:
        return schedule.next_after(after)
    except InvalidScheduleError:
        return None


def _host_parse(expression: str, including_seconds: bool) -> CronSchedule:
    return CronSchedule(expression, including_seconds=including_seconds)


def _host_next(schedule: Any, after: datetime) -> datetime | None:
    return schedule.next_occurrence(after)


IMPLEMENTATIONS: dict[str, tuple[Callable[[str, bool], Any], Callable[[Any, datetime], datetime | None],
                                 type[Exception]]] = {
    "app": (_app_parse, _app_next, InvalidScheduleError),
    "stand-in": (_host_parse, _host_next, CrontabError),
}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- NCrontab's own test vectors ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    path = shared_dir("reference", "ncrontab") / "vectors.json"
    if not path.is_file():
        pytest.skip(f"{path} not found: the NCrontab test vectors live in ../shared beside the repo")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.needs_shared
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_evaluations(vectors: dict[str, Any], impl: str) -> None:
    parse, next_after, _ = IMPLEMENTATIONS[impl]
    cases = vectors["evaluations"]
    wrong = []
    for case in cases:
        got = next_after(parse(case["expression"], case["includingSeconds"]), _utc(case["after"]))
        if got != _utc(case["next"]):
            wrong.append(f"{case['expression']!r} after {case['after']}: {got}, NCrontab {case['next']}")
    assert len(cases) > 100
    assert not wrong, "\n".join(wrong)


@pytest.mark.needs_shared
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_no_occurrence(vectors: dict[str, Any], impl: str) -> None:
    parse, next_after, _ = IMPLEMENTATIONS[impl]
    cases = vectors["noOccurrence"]
    wrong = []
    for case in cases:
        got = next_after(parse(case["expression"], case["includingSeconds"]), _utc(case["from"]))
        if got is not None and got < _utc(case["until"]):
            wrong.append(f"{case['expression']!r} in ({case['from']}, {case['until']}): {got}")
    assert cases
    assert not wrong, "\n".join(wrong)


@pytest.mark.needs_shared
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_invalid(vectors: dict[str, Any], impl: str) -> None:
    parse, _, error = IMPLEMENTATIONS[impl]
    cases = vectors["invalid"]
    accepted = []
    for case in cases:
        try:
            parse(case["expression"], case["includingSeconds"])
        except error:
            continue
        accepted.append(repr(case["expression"]))
    assert cases
    assert not accepted, "accepted what NCrontab refuses: " + ", ".join(accepted)


@pytest.mark.needs_shared
def test_the_apps_slot_search_agrees_with_the_evaluations(vectors: dict[str, Any]) -> None:
    # latest_at_or_before (the slot a firing belongs to) is next_after seen from the other side.
    wrong = []
    for case in vectors["evaluations"]:
        schedule = _app_parse(case["expression"], case["includingSeconds"])
        after, nxt = _utc(case["after"]), _utc(case["next"])
        if schedule.latest_at_or_before(nxt) != nxt or schedule.latest_at_or_before(nxt - timedelta(seconds=1)) > after:
            wrong.append(f"{case['expression']!r}: slots around {case['next']}")
    assert not wrong, "\n".join(wrong)


# -- the app against the stand-in, on random schedules -------------------------------------------------

_SPANS = {"second": (0, 59, ()), "minute": (0, 59, ()), "hour": (0, 23, ()), "day": (1, 31, ()),
          "month": (1, 12, ("January", "February", "March", "April", "May", "June", "July", "August",
                            "September", "October", "November", "December")),
          "day-of-week": (0, 6, ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))}


def _unique_prefix_length(name: str, names: tuple[str, ...]) -> int:
    for length in range(1, len(name) + 1):
        if sum(other.lower().startswith(name[:length].lower()) for other in names) == 1:
            return length
    return len(name)


def _random_value(rng: random.Random, field: str, value: int) -> str:
    low, _, names = _SPANS[field]
    if names and rng.random() < 0.4:
        name = names[value - low]
        text = name[:rng.randint(_unique_prefix_length(name, names), len(name))]
        return rng.choice([text, text.upper(), text.lower()])
    return str(value)


def _random_item(rng: random.Random, field: str) -> str:
    low, high, _ = _SPANS[field]
    span = high - low + 1
    kind = rng.choice(["*", "*/n", "v", "v", "a-b", "a-b/n", "a/n"])
    a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
    step = rng.choice([1, 2, 3, 5, 7, rng.randint(1, span)])
    return {
        "*": "*",
        "*/n": f"*/{step}",
        "v": _random_value(rng, field, a),
        "a-b": f"{_random_value(rng, field, a)}-{_random_value(rng, field, b)}",
        "a-b/n": f"{_random_value(rng, field, a)}-{_random_value(rng, field, b)}/{step}",
        "a/n": f"{_random_value(rng, field, a)}/{step}",
    }[kind]


def _random_expression(rng: random.Random) -> str:
    fields = ["minute", "hour", "day", "month", "day-of-week"]
    if rng.random() < 0.5:
        fields.insert(0, "second")
    parts = []
    for field in fields:
        # Mostly '*' for the wide fields, so that schedules fire often enough to compare many times.
        if rng.random() < (0.5 if field in ("day", "month", "day-of-week") else 0.3):
            parts.append("*")
        else:
            parts.append(",".join(_random_item(rng, field) for _ in range(rng.choice([1, 1, 2, 3]))))
    separator = rng.choice([" ", " ", "  "])
    return rng.choice(["", " "]) + separator.join(parts) + rng.choice(["", " "])


def _random_instant(rng: random.Random) -> datetime:
    moment = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(70 * 365 * 86400))
    return moment + timedelta(microseconds=rng.choice([0, 0, rng.randrange(1_000_000)]))


def _app_values(schedule: Ncrontab) -> dict[str, list[int]]:
    return {"seconds": sorted(schedule.seconds), "minutes": sorted(schedule.minutes), "hours": sorted(schedule.hours),
            "days": sorted(schedule.days), "months": sorted(schedule.months),
            "days_of_week": sorted(schedule.weekdays)}


def test_app_and_stand_in_agree_on_random_schedules() -> None:
    rng = random.Random(20261122)
    compared = 0
    for _ in range(300):
        expression = _random_expression(rng)
        app = Ncrontab.parse(expression, allow_never=True)  # the generator only writes what the app accepts
        host = parse_timer_schedule(expression)
        assert app.including_seconds == host.including_seconds, expression
        assert _app_values(app) == host.field_values(), expression
        for _ in range(4):
            moment = _random_instant(rng)
            for _ in range(3):  # a few occurrences in a row
                expected = host.next_occurrence(moment)
                assert _app_next(app, moment) == expected, f"{expression!r} after {moment}"
                if expected is None:
                    break
                compared += 1
                moment = expected
            moment = _random_instant(rng)
            try:
                slot = app.latest_at_or_before(moment)
            except InvalidScheduleError:
                continue
            # The slot is an occurrence at or before the moment, and the stand-in sees none after it up to the moment.
            assert slot <= moment and host.next_occurrence(slot - timedelta(seconds=1)) == slot, expression
            following = host.next_occurrence(slot)
            assert following is None or following > moment, f"{expression!r}: {following} is between {slot}, {moment}"
    assert compared > 2000


_SOUP = ["*", "*", "0", "1", "5", "6", "7", "12", "13", "23", "24", "29", "31", "32", "59", "60", "?", "L", "1W",
         "Mon#2", "1-5", "5-1", "*/0", "*/5", "*/+5", "*/61", "1/5", "/5", "5/", "1-2-3", "1,2", "1,,2", ",1", "1,",
         "Mon", "mon-FRI", "Ju", "T", "jan", "Dec-Jan", "Feb", "007", "*\t", "-1", "*-5"]


def test_whatever_the_app_accepts_the_stand_in_accepts_with_the_same_meaning() -> None:
    rng = random.Random(7)
    accepted = refused = 0
    for _ in range(3000):
        count = rng.choice([4, 5, 5, 5, 6, 6, 6, 7])
        fields = ["second", "minute", "hour", "day", "month", "day-of-week", "day"][(0 if count != 5 else 1):][:count]
        # Mostly well-formed fields, with one odd token here and there.
        expression = " ".join(rng.choice(_SOUP) if rng.random() < 0.15 else _random_item(rng, field)
                              for field in fields)
        try:
            app = Ncrontab.parse(expression, allow_never=True)
        except InvalidScheduleError:
            refused += 1
            continue
        accepted += 1
        try:
            host = parse_timer_schedule(expression)
        except CrontabError as e:
            pytest.fail(f"the app accepts {expression!r}, the Functions timer would not: {e}")
        assert _app_values(app) == host.field_values(), expression
    assert accepted > 200 and refused > 200
