from datetime import UTC, datetime

import pytest

from dr_core.schedule import InvalidScheduleError, Ncrontab

NOW = datetime(2026, 11, 22, 3, 14, 5, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(
    ("expr", "latest", "nxt"),
    [
        ("0 0 2 * * *", datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC), datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)),
        ("*/30 * * * * *", datetime(2026, 11, 22, 3, 14, 0, tzinfo=UTC), datetime(2026, 11, 22, 3, 14, 30, tzinfo=UTC)),
        ("0 30 9 * * Mon-Fri", datetime(2026, 11, 20, 9, 30, tzinfo=UTC), datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("0 0 */6 * * *", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 6, 0, tzinfo=UTC)),
        ("0 0 0 1 Jan *", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("0 0 12 * * 0", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
        ("0 0 12 * * 7", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
    ],
)
def test_slots(expr, latest, nxt):
    c = Ncrontab.parse(expr)
    assert c.latest_at_or_before(NOW) == latest
    assert c.next_after(NOW) == nxt
    assert c.matches(latest) and c.matches(nxt)


def test_a_firing_exactly_on_the_slot_belongs_to_it():
    c = Ncrontab.parse("0 0 2 * * *")
    slot = datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
    assert c.latest_at_or_before(slot) == slot


@pytest.mark.parametrize("expr", ["", "* * * * *", "61 * * * * *", "* * * * 13 *", "a b c d e f", "5-1 * * * * *",
                                  "* * * * * * *", "1,,2 * * * * *", "*/0 * * * * *", "x" * 500])
def test_invalid(expr):
    with pytest.raises(InvalidScheduleError):
        Ncrontab.parse(expr)


def test_never_firing_schedule_is_reported():
    c = Ncrontab.parse("0 0 0 30 Feb *")
    with pytest.raises(InvalidScheduleError, match="never fires"):
        c.next_after(NOW)
