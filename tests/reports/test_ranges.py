"""The date range a person asks a report for: presets counted from today in the viewer's
time zone, their own start and end, and the ranges refused with their reason."""

from __future__ import annotations

import datetime as dt

import pytest

from puente.errors import InvalidInput
from puente.reports.ranges import (
    CUSTOM,
    MAX_DAYS,
    PRESETS,
    resolve_range,
    viewer_timezone,
)

# 03:30 on 1 March in UTC: still 28 February in Mexico City, already 1 March in Madrid.
NOW = dt.datetime(2026, 3, 1, 3, 30, tzinfo=dt.UTC)
D = dt.date


def days(preset: str, timezone: str = "Europe/Madrid") -> tuple[dt.date, dt.date]:
    r = resolve_range(timezone=timezone, preset=preset, now=NOW)
    assert r.preset == preset
    return r.start, r.end


def test_each_preset_counts_from_today_in_the_viewers_zone() -> None:
    assert days("today") == (D(2026, 3, 1), D(2026, 3, 1))
    assert days("yesterday") == (D(2026, 2, 28), D(2026, 2, 28))
    assert days("last_7_days") == (D(2026, 2, 23), D(2026, 3, 1))
    assert days("last_30_days") == (D(2026, 1, 31), D(2026, 3, 1))
    assert days("last_90_days") == (D(2025, 12, 2), D(2026, 3, 1))
    assert days("this_month") == (D(2026, 3, 1), D(2026, 3, 1))
    assert days("last_month") == (D(2026, 2, 1), D(2026, 2, 28))
    assert {p for p in PRESETS} == {
        "today",
        "yesterday",
        "last_7_days",
        "last_30_days",
        "last_90_days",
        "this_month",
        "last_month",
    }


def test_the_same_moment_is_another_day_in_another_zone() -> None:
    assert days("today", "America/Mexico_City") == (D(2026, 2, 28), D(2026, 2, 28))
    assert days("this_month", "America/Mexico_City") == (D(2026, 2, 1), D(2026, 2, 28))
    assert days("last_month", "America/Mexico_City") == (D(2026, 1, 1), D(2026, 1, 31))


def test_last_month_in_january_is_last_years_december() -> None:
    january = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
    r = resolve_range(timezone="UTC", preset="last_month", now=january)
    assert (r.start, r.end, r.days) == (D(2025, 12, 1), D(2025, 12, 31), 31)


def test_nothing_asked_is_the_last_seven_days() -> None:
    r = resolve_range(timezone="UTC", now=NOW)
    assert (r.preset, r.start, r.end, r.days) == ("last_7_days", D(2026, 2, 23), D(2026, 3, 1), 7)


def test_a_custom_range_keeps_its_days_and_a_preset_wins_over_dates() -> None:
    r = resolve_range(timezone="UTC", start="2026-01-05", end="2026-01-05", now=NOW)
    assert (r.preset, r.start, r.end, r.days) == (CUSTOM, D(2026, 1, 5), D(2026, 1, 5), 1)
    r = resolve_range(
        timezone="UTC", preset="yesterday", start="2020-01-01", end="2020-01-02", now=NOW
    )
    assert (r.preset, r.start) == ("yesterday", D(2026, 2, 28))


def test_dates_that_still_are_the_presets_days_keep_its_name() -> None:
    # The person looked at "last 7 days" and only changed a filter.
    kept = resolve_range(
        timezone="UTC", start="2026-02-23", end="2026-03-01", hint="last_7_days", now=NOW
    )
    assert kept.preset == "last_7_days"
    moved = resolve_range(
        timezone="UTC", start="2026-02-22", end="2026-03-01", hint="last_7_days", now=NOW
    )
    assert moved.preset == CUSTOM


def test_the_longest_range_is_accepted_and_one_day_more_is_not() -> None:
    start = D(2025, 1, 1)
    end = start + dt.timedelta(days=MAX_DAYS - 1)
    assert resolve_range(timezone="UTC", start=start, end=end, now=NOW).days == MAX_DAYS
    with pytest.raises(InvalidInput) as refused:
        resolve_range(timezone="UTC", start=start, end=end + dt.timedelta(days=1), now=NOW)
    assert refused.value.message == "The range covers 401 days; a report covers at most 400."


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (
            {"start": "2026-02-10", "end": "2026-02-01"},
            "The range ends (2026-02-01) before it starts (2026-02-10).",
        ),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "“2026-02-30” is not a date"),
        ({"start": "10/02/2026", "end": "2026-03-01"}, "“10/02/2026” is not a date"),
        ({"start": "2026-02-01"}, "Choose the first and the last day of the range."),
        ({"preset": "custom"}, "Choose the first and the last day of the range."),
        ({"preset": "last_week"}, "“last_week” is not a date range Puente knows."),
        ({"timezone": "Mars/Olympus"}, "“Mars/Olympus” is not a time zone Puente knows."),
        ({"timezone": "../etc/passwd"}, "is not a time zone Puente knows."),
    ],
)
def test_a_range_that_cannot_be_is_refused_with_its_reason(
    asked: dict[str, str], message: str
) -> None:
    asked = {"timezone": "UTC", **asked}
    with pytest.raises(InvalidInput) as refused:
        resolve_range(now=NOW, **asked)  # type: ignore[arg-type]
    assert message in refused.value.message
    assert refused.value.status_code == 422
    # The page shows it in the reader's language: the catalogue text travels with it.
    assert refused.value.details["template"]


def test_the_viewers_zone_falls_back_to_the_workspaces() -> None:
    assert viewer_timezone("America/Bogota", "Europe/Madrid") == "America/Bogota"
    assert viewer_timezone("", "Europe/Madrid") == "Europe/Madrid"
    assert viewer_timezone(None, None) == "UTC"
