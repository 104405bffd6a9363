"""Business hours as pure functions: open or closed at an instant, by the number's wall
clock (time zones, clock changes, nights past midnight), public holidays and closed dates,
when it opens next, and the refusals a person reads when the schedule is wrong."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from puente.automation.hours import (
    BusinessHours,
    business_hours_json,
    is_open,
    next_opening,
    parse_business_hours,
    upcoming_closed_days,
)
from puente.errors import InvalidInput

MEXICO = ZoneInfo("America/Mexico_City")
MADRID = ZoneInfo("Europe/Madrid")
SPLIT_DAY = [{"start": "09:00", "end": "13:00"}, {"start": "15:00", "end": "19:00"}]


def shop(**changes: Any) -> dict[str, Any]:
    """Mon-Fri 09:00-13:00 and 15:00-19:00, Sat 10:00-14:00, closed on Sunday."""
    raw: dict[str, Any] = {
        "time_zone": "America/Mexico_City",
        "week": {
            **{day: SPLIT_DAY for day in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [{"start": "10:00", "end": "14:00"}],
            "sun": [],
        },
    }
    raw.update(changes)
    return raw


def hours(**changes: Any) -> BusinessHours:
    return parse_business_hours(shop(**changes))


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone, fold=fold)  # type: ignore[misc]


# 2026-12-07 is a Monday.
@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ((2026, 12, 7, 8, 59), False),
        ((2026, 12, 7, 9, 0), True),
        ((2026, 12, 7, 12, 59), True),
        ((2026, 12, 7, 13, 0), False),  # the end is exclusive
        ((2026, 12, 7, 14, 30), False),  # lunch
        ((2026, 12, 7, 15, 0), True),
        ((2026, 12, 7, 19, 0), False),
        ((2026, 12, 12, 11, 0), True),  # Saturday morning
        ((2026, 12, 12, 15, 0), False),  # Saturday afternoon
        ((2026, 12, 13, 11, 0), False),  # Sunday
    ],
)
def test_open_by_the_weekly_schedule(when: tuple[int, ...], expected: bool) -> None:
    assert is_open(hours(), local(MEXICO, *when)) is expected


def test_the_numbers_own_time_zone_decides_not_utc() -> None:
    # 09:00 UTC is 03:00 in Mexico City (closed) and 10:00 in Madrid (open).
    at = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    assert not is_open(hours(), at)
    assert is_open(hours(time_zone="Europe/Madrid"), at)
    # Sunday 17:30 UTC is Monday 02:30 in Tokyo (closed); Monday 00:30 UTC is 09:30 there.
    tokyo = hours(time_zone="Asia/Tokyo")
    assert not is_open(tokyo, dt.datetime(2026, 12, 6, 17, 30, tzinfo=dt.UTC))
    assert is_open(tokyo, dt.datetime(2026, 12, 7, 0, 30, tzinfo=dt.UTC))


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(hours(), dt.datetime(2026, 12, 7, 10, 0))  # noqa: DTZ001


def test_clock_changes_keep_the_wall_clock() -> None:
    madrid = hours(time_zone="Europe/Madrid")
    # 2026-03-29 (Sunday) Madrid moves 02:00 -> 03:00; the Monday after, 09:00 is 07:00 UTC,
    # where the Monday before it was 08:00 UTC.
    assert is_open(madrid, dt.datetime(2026, 3, 30, 7, 0, tzinfo=dt.UTC))
    assert not is_open(madrid, dt.datetime(2026, 3, 23, 7, 0, tzinfo=dt.UTC))
    assert is_open(madrid, dt.datetime(2026, 3, 23, 8, 0, tzinfo=dt.UTC))
    # 2026-10-25 Madrid moves 03:00 -> 02:00: both 02:30s are inside a 02:00-03:00 interval.
    night = hours(time_zone="Europe/Madrid", week={"sun": [{"start": "02:00", "end": "03:00"}]})
    assert is_open(night, local(MADRID, 2026, 10, 25, 2, 30, fold=0))
    assert is_open(night, local(MADRID, 2026, 10, 25, 2, 30, fold=1))
    assert not is_open(night, local(MADRID, 2026, 10, 25, 3, 0))


def test_a_night_past_midnight_is_two_intervals() -> None:
    bar = hours(
        week={
            "fri": [{"start": "20:00", "end": "24:00"}],
            "sat": [{"start": "00:00", "end": "03:00"}],
        }
    )
    assert is_open(bar, local(MEXICO, 2026, 12, 11, 23, 59))
    assert is_open(bar, local(MEXICO, 2026, 12, 12, 0, 0))
    assert is_open(bar, local(MEXICO, 2026, 12, 12, 2, 59))
    assert not is_open(bar, local(MEXICO, 2026, 12, 12, 3, 0))
    assert not is_open(bar, local(MEXICO, 2026, 12, 11, 19, 59))


def test_public_holidays_of_the_country_close_the_day() -> None:
    # 2026-09-16, a Wednesday, is Mexico's Independence Day; Spain works that day.
    at = local(MEXICO, 2026, 9, 16, 10, 0)
    assert not is_open(hours(holidays_country="MX"), at)
    assert is_open(hours(holidays_country="ES"), at)
    assert is_open(hours(), at)
    # Lowercase is the same country.
    assert not is_open(hours(holidays_country="mx"), at)


def test_closed_dates_close_the_whole_day_in_local_time() -> None:
    closed = hours(closed_dates=["2026-12-24"])
    assert not is_open(closed, local(MEXICO, 2026, 12, 24, 10, 0))
    assert is_open(closed, local(MEXICO, 2026, 12, 23, 10, 0))
    # 2026-12-24 16:30 UTC is 10:30 of the 24th in Mexico (closed); 2026-12-25 01:30 UTC is
    # still the 24th there, after hours anyway, and the 23rd at 16:30 UTC is open.
    assert not is_open(closed, dt.datetime(2026, 12, 24, 16, 30, tzinfo=dt.UTC))
    assert is_open(closed, dt.datetime(2026, 12, 23, 16, 30, tzinfo=dt.UTC))


def test_next_opening_after_lunch_the_weekend_and_a_holiday() -> None:
    shop_hours = hours(holidays_country="MX")
    # Open now: the instant itself.
    now = local(MEXICO, 2026, 12, 7, 10, 0)
    assert next_opening(shop_hours, now) == now
    # At lunch: 15:00 the same day.
    assert next_opening(shop_hours, local(MEXICO, 2026, 12, 7, 13, 30)) == local(
        MEXICO, 2026, 12, 7, 15, 0
    )
    # Saturday afternoon: Monday 09:00.
    assert next_opening(shop_hours, local(MEXICO, 2026, 12, 12, 16, 0)) == local(
        MEXICO, 2026, 12, 14, 9, 0
    )
    # Christmas Eve after hours: Christmas (a holiday) and Sunday are skipped; the 26th is a
    # Saturday.
    assert next_opening(shop_hours, local(MEXICO, 2026, 12, 24, 20, 0)) == local(
        MEXICO, 2026, 12, 26, 10, 0
    )
    opening = next_opening(shop_hours, local(MEXICO, 2026, 12, 12, 16, 0))
    assert opening is not None and opening.utcoffset() == dt.timedelta(0)


def test_next_opening_on_the_night_the_clocks_skip_an_hour() -> None:
    # Opening at 02:30 on the morning Madrid skips 02:00-03:00: it opens at 03:00 local.
    early = hours(time_zone="Europe/Madrid", week={"sun": [{"start": "02:30", "end": "05:00"}]})
    before = local(MADRID, 2026, 3, 29, 1, 0)
    assert next_opening(early, before) == local(MADRID, 2026, 3, 29, 3, 0)
    # An interval entirely inside the skipped hour never opens that day: the next Sunday.
    skipped = hours(time_zone="Europe/Madrid", week={"sun": [{"start": "02:10", "end": "02:50"}]})
    assert next_opening(skipped, before) == local(MADRID, 2026, 4, 5, 2, 10)


def test_next_opening_when_the_clocks_go_back_is_the_first_of_the_two() -> None:
    night = hours(time_zone="Europe/Madrid", week={"sun": [{"start": "02:30", "end": "04:00"}]})
    opening = next_opening(night, local(MADRID, 2026, 10, 25, 1, 0))
    assert opening == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST


def test_a_schedule_without_open_days_never_opens() -> None:
    assert next_opening(hours(week={}), local(MEXICO, 2026, 12, 7, 10, 0)) is None


def test_upcoming_closed_days_name_the_holidays_in_the_readers_language() -> None:
    closing = hours(holidays_country="MX", closed_dates=["2026-12-24"])
    days = upcoming_closed_days(closing, dt.date(2026, 11, 20), "es", limit=3)
    assert days == [
        (dt.date(2026, 12, 24), None),
        (dt.date(2026, 12, 25), "Navidad"),
        (dt.date(2027, 1, 1), "Año Nuevo"),
    ]
    english = upcoming_closed_days(closing, dt.date(2026, 11, 20), "en", limit=2)
    assert english[1] == (dt.date(2026, 12, 25), "Christmas Day")


def test_the_stored_form_reads_back_the_same() -> None:
    original = hours(
        holidays_country="ES",
        closed_dates=["2026-12-31", "2026-12-24"],
        away_enabled=True,
        away_message="Hola {contact.name|}, volvemos el lunes.",
        away_every_hours=6,
    )
    stored = business_hours_json(original)
    assert stored["closed_dates"] == ["2026-12-24", "2026-12-31"]
    assert stored["week"]["mon"] == SPLIT_DAY and stored["week"]["sun"] == []
    assert parse_business_hours(stored) == original


def problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as refused:
        parse_business_hours(shop(**changes))
    return {p["field"]: p["message"] for p in refused.value.details}


def test_an_interval_that_ends_before_it_starts_is_refused() -> None:
    found = problems(week={"mon": [{"start": "13:00", "end": "09:00"}]})
    assert found == {"week.mon.0": "the interval ends before it starts"}
    assert problems(week={"tue": [{"start": "09:00", "end": "09:00"}]}) == {
        "week.tue.0": "the interval ends before it starts"
    }


def test_overlapping_intervals_are_refused_naming_the_later_one() -> None:
    found = problems(
        week={
            "wed": [
                {"start": "15:00", "end": "19:00"},
                {"start": "09:00", "end": "15:30"},
            ]
        }
    )
    assert found == {"week.wed.0": "overlaps another interval of the same day"}
    # Touching intervals do not overlap.
    parse_business_hours(
        shop(week={"wed": [{"start": "09:00", "end": "13:00"}, {"start": "13:00", "end": "14:00"}]})
    )


def test_badly_written_times_dates_zones_and_countries_are_each_named() -> None:
    found = problems(
        time_zone="Mars/Olympus",
        week={"thu": [{"start": "9", "end": "18:00"}, {"start": "24:00", "end": "24:00"}]},
        holidays_country="XX",
        closed_dates=["2026-12-24", "24/12/2026", "2026-W52-4"],
        away_every_hours=0,
    )
    assert found == {
        "time_zone": "not a time zone Puente knows (write it as America/Mexico_City)",
        "week.thu.0": "write times as HH:MM, from 00:00 to 24:00",
        "week.thu.1": "write times as HH:MM, from 00:00 to 24:00",
        "holidays_country": "no public holidays are known for this country (use a two-letter code: MX, ES)",
        "closed_dates.1": "write dates as YYYY-MM-DD",
        "closed_dates.2": "write dates as YYYY-MM-DD",
        "away_every_hours": "a whole number of hours from 1 to 720",
    }
    assert problems(week={"someday": []}) == {
        "week": "give the open intervals of each day (an empty list for a closed day)"
    }


def test_an_away_message_switched_on_needs_its_text() -> None:
    assert problems(away_enabled=True, away_message="   ") == {
        "away_message": "write the away message, or turn it off"
    }
    assert problems(away_message="x" * 4097) == {
        "away_message": "the away message is too long (4,096 characters at most)"
    }
    # Off, an empty message is fine: nothing is sent.
    assert not parse_business_hours(shop(away_enabled=False, away_message="")).away_enabled
