"""``dr_core.kernel.schedule``: NCRONTAB as the Functions timer reads it (no ../shared needed here).

The reference vectors and the comparison with the host stand-in's own NCrontab are in
test_schedule_reference.py.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dr_core.kernel.schedule import InvalidScheduleError, Ncrontab

NOW = datetime(2026, 11, 22, 3, 14, 5, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(
    ("expr", "latest", "nxt"),
    [
        ("0 0 2 * * *", datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC), datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)),
        ("0 2 * * *", datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC), datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)),
        ("*/30 * * * * *", datetime(2026, 11, 22, 3, 14, 0, tzinfo=UTC), datetime(2026, 11, 22, 3, 14, 30, tzinfo=UTC)),
        ("*/5 * * * *", datetime(2026, 11, 22, 3, 10, tzinfo=UTC), datetime(2026, 11, 22, 3, 15, tzinfo=UTC)),
        ("0 30 9 * * Mon-Fri", datetime(2026, 11, 20, 9, 30, tzinfo=UTC), datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("0 0 */6 * * *", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 6, 0, tzinfo=UTC)),
        ("0 0 0 1 Jan *", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("0 0 12 * * 0", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
        ("0 0 12 * * sunday", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
        # Day of month AND day of week: a 1st that is a Monday (June 2026, then February 2027).
        ("0 0 1 * Mon", datetime(2026, 6, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),
        # Only one of them restricted: that one alone decides.
        ("0 0 1 * *", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        ("0 0 * * Mon", datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),
        # 29 February that is a Monday: every 28 years or so (2016, 2044).
        ("0 0 0 29 2 1", datetime(2016, 2, 29, tzinfo=UTC), datetime(2044, 2, 29, tzinfo=UTC)),
    ],
)
def test_slots(expr, latest, nxt):
    c = Ncrontab.parse(expr)
    assert c.latest_at_or_before(NOW) == latest
    assert c.next_after(NOW) == nxt
    assert c.matches(latest) and c.matches(nxt)
    assert c.next_after(latest) == nxt  # nothing between the slot and the next one


def test_a_firing_exactly_on_the_slot_belongs_to_it():
    c = Ncrontab.parse("0 0 2 * * *")
    slot = datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
    assert c.latest_at_or_before(slot) == slot
    assert c.latest_at_or_before(slot + timedelta(microseconds=999_999)) == slot
    assert c.latest_at_or_before(slot - timedelta(microseconds=1)) == slot - timedelta(days=1)
    assert c.next_after(slot) == slot + timedelta(days=1)
    assert c.next_after(slot - timedelta(microseconds=1)) == slot


def test_five_fields_mean_minutes_first_and_no_seconds():
    five = Ncrontab.parse("30 2 * * *")
    assert not five.including_seconds and five.seconds == {0} and five.minutes == {30} and five.hours == {2}
    assert five.next_after(NOW) == datetime(2026, 11, 23, 2, 30, 0, tzinfo=UTC)
    six = Ncrontab.parse("30 2 * * * *")
    assert six.including_seconds and six.seconds == {30} and six.minutes == {2}


def test_day_and_weekday_must_both_match():
    c = Ncrontab.parse("0 0 0 13 * Fri")  # Friday the 13th, not every 13th and every Friday
    assert c.next_after(NOW) == datetime(2027, 8, 13, tzinfo=UTC)
    assert not c.matches(datetime(2026, 11, 27, tzinfo=UTC))  # a Friday, not the 13th
    assert not c.matches(datetime(2026, 12, 13, tzinfo=UTC))  # the 13th, a Sunday


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0 0 12 * * 7", "outside 0-6"),  # Sunday is 0 only
        ("0 12 * * 7", "no 7"),
        ("0 0 2 ? * *", "'?' is not supported"),
        ("0 0 2 * * ?", "'?' is not supported"),
        ("0 0 2 1W * *", "'1W' is not a number 1-31"),
        ("0 0 2 L * *", "no 'L'"),
        ("0 0 2 * * Mon#2", "'#'"),
        ("", "is empty"),
        ("0 2 * *", "has 4 field(s)"),
        ("* * * * * * *", "has 7 field(s)"),
        ("61 * * * * *", "second field '61': 61 is outside 0-59"),
        ("* * 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * * 0 * *", "day field '0': 0 is outside 1-31"),
        ("* * * * 13 *", "month field '13': 13 is outside 1-12"),
        ("* * * * Foo *", "'Foo' is not a month name"),
        ("* * * * * Ju", "'Ju' is not a day-of-week name"),
        ("* * * * Ju *", "'Ju' could be June or July"),
        ("* * * * * T", "could be Tuesday or Thursday"),
        ("a b c d e f", "second field 'a'"),
        ("5-1 * * * * *", "runs backwards"),
        ("0 0 22-2 * * *", "NCrontab would read it as 2-22"),
        ("1,,2 * * * * *", "empty item"),
        (",1 * * * * *", "empty item"),
        ("1- * * * * *", "value is missing"),
        ("/5 * * * * *", "needs a start"),
        ("*/0 * * * * *", "step 0 is below 1"),
        ("*/61 * * * * *", "step 61 is above 60"),
        ("*/+5 * * * * *", "not a whole number"),
        ("*/5/2 * * * * *", "not a whole number"),
        ("0\t0 2 * * *", "spaces only"),
        ("0 0 2 * * *\n", "spaces only"),
        ("0 0 0 30 Feb *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("x" * 500, "at most 200"),
    ],
)
def test_invalid_schedules_name_what_is_wrong(expr, fragment):
    with pytest.raises(InvalidScheduleError) as caught:
        Ncrontab.parse(expr)
    assert fragment in str(caught.value)


def test_including_seconds_can_be_demanded_either_way():
    with pytest.raises(InvalidScheduleError, match="six fields here"):
        Ncrontab.parse("* * * * *", including_seconds=True)
    with pytest.raises(InvalidScheduleError, match="five fields here"):
        Ncrontab.parse("* * * * * *", including_seconds=False)
    assert Ncrontab.parse("0 * * * * *", including_seconds=True).seconds == {0}


@pytest.mark.parametrize(
    ("expr", "field", "values"),
    [
        ("0 0 2 * * Mon-Fri", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 2 * * sun,SAT", "weekdays", {0, 6}),
        ("0 0 2 * * Wed/2", "weekdays", {3, 5}),
        ("0 0 2 * * 0-6/3", "weekdays", {0, 3, 6}),
        ("0 0 2 * january,FeB,SEPT-October,DECEM *", "months", {1, 2, 9, 10, 12}),
        ("0 0 2 * Augu *", "months", {8}),
        ("0 0 2 1-31/10 * *", "days", {1, 11, 21, 31}),
        ("0 0 2 25/3 * *", "days", {25, 28, 31}),
        ("0 0 2 5-5 * *", "days", {5}),
        ("45-47,48,49 * * * * *", "seconds", {45, 46, 47, 48, 49}),
        ("007 * * * * *", "seconds", {7}),
        ("*/60 * * * * *", "seconds", {0}),
        ("0 0 2 * * *", "hours", {2}),
    ],
)
def test_field_syntax(expr, field, values):
    assert getattr(Ncrontab.parse(expr), field) == values


def test_never_firing_schedule_is_refused_and_never_searched_forever():
    with pytest.raises(InvalidScheduleError, match="never fires"):
        Ncrontab.parse("0 0 0 30 Feb *")
    # When it is let through (the reference vectors need that), the searches end at the year 1 or 9999.
    c = Ncrontab.parse("0 0 0 30 Feb *", allow_never=True)
    with pytest.raises(InvalidScheduleError, match="never fires"):
        c.next_after(NOW)
    with pytest.raises(InvalidScheduleError, match="never fired"):
        c.latest_at_or_before(NOW)


def test_nothing_after_the_year_9999():
    c = Ncrontab.parse("0 0 0 1 1 *")
    assert c.next_after(datetime(9998, 6, 1, tzinfo=UTC)) == datetime(9999, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidScheduleError):
        c.next_after(datetime(9999, 6, 1, tzinfo=UTC))


def test_times_in_other_zones_and_naive_times_are_utc():
    c = Ncrontab.parse("0 0 2 * * *")
    paris = timezone(timedelta(hours=1))
    slot = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert c.latest_at_or_before(datetime(2026, 11, 22, 3, 30, tzinfo=paris)) == slot
    assert c.next_after(datetime(2026, 11, 22, 1, 0)) == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
