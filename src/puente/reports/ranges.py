"""The days a person asks a report for: a preset ("last 7 days", "last month") or their own
start and end, worked out in the viewer's time zone, as local dates (both included).

Presets count today in: "last 7 days" is today and the six days before it. A report reads
those dates as days of the workspace's time zone (its rollups are kept by local day), so
a viewer far from the workspace sees the workspace's days with their own calendar's
dates."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from puente.conversations.collab import user_error
from puente.errors import InvalidInput

MAX_DAYS = 400
DEFAULT_PRESET = "last_7_days"
CUSTOM = "custom"
PRESETS = (
    "today",
    "yesterday",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "this_month",
    "last_month",
)

_LAST_DAYS = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}


@dataclass(frozen=True)
class DateRange:
    start: dt.date
    end: dt.date
    preset: str  # one of PRESETS, or CUSTOM
    timezone: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def viewer_timezone(user_timezone: str | None, workspace_timezone: str | None) -> str:
    """The zone a person's "today" is in: their own, else their workspace's."""
    return (user_timezone or "").strip() or (workspace_timezone or "").strip() or "UTC"


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise user_error(
            InvalidInput, "“%(zone)s” is not a time zone Puente knows.", zone=name[:64]
        ) from None


def today_in(timezone: str, now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(zone_of(timezone)).date()


def preset_days(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of `preset`, seen from `today`."""
    if preset == "today":
        return today, today
    if preset == "yesterday":
        day = today - dt.timedelta(days=1)
        return day, day
    if preset in _LAST_DAYS:
        return today - dt.timedelta(days=_LAST_DAYS[preset] - 1), today
    first = today.replace(day=1)
    if preset == "this_month":
        return first, today
    if preset == "last_month":
        last = first - dt.timedelta(days=1)
        return last.replace(day=1), last
    raise user_error(InvalidInput, "“%(preset)s” is not a date range Puente knows.", preset=preset)


def parse_day(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise user_error(
            InvalidInput, "“%(value)s” is not a date: write it as YYYY-MM-DD.", value=value[:40]
        ) from None


def check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise user_error(
            InvalidInput,
            "The range ends (%(end)s) before it starts (%(start)s).",
            start=start.isoformat(),
            end=end.isoformat(),
        )
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise user_error(
            InvalidInput,
            "The range covers %(days)s days; a report covers at most %(max)s.",
            days=days,
            max=MAX_DAYS,
        )


def resolve_range(
    *,
    timezone: str,
    preset: str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    hint: str | None = None,
    now: dt.datetime | None = None,
) -> DateRange:
    """The range asked for. A preset wins over dates; dates need both ends; nothing at all
    is the last 7 days. `hint` is the preset the person was looking at: dates that still
    are that preset's days (they only changed a filter) keep its name."""
    today = today_in(timezone, now)
    if preset and preset != CUSTOM:
        first, last = preset_days(preset, today)
        return DateRange(first, last, preset, timezone)
    if start in (None, "") and end in (None, ""):
        if preset == CUSTOM:
            raise user_error(InvalidInput, "Choose the first and the last day of the range.")
        first, last = preset_days(DEFAULT_PRESET, today)
        return DateRange(first, last, DEFAULT_PRESET, timezone)
    if start in (None, "") or end in (None, ""):
        raise user_error(InvalidInput, "Choose the first and the last day of the range.")
    assert start is not None and end is not None
    first, last = parse_day(start), parse_day(end)
    check_range(first, last)
    if hint in PRESETS and preset_days(hint, today) == (first, last):
        return DateRange(first, last, hint, timezone)
    return DateRange(first, last, CUSTOM, timezone)
