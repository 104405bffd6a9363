"""A number's business hours: a weekly schedule in the number's time zone, closed on a
country's public holidays and on dates of its own, and whether Puente answers with an away
message while it is closed.

`is_open` and `next_opening` are pure functions of the hours and an instant; everything
that asks "is this number open?" (the away message, workflows' conditions) goes through
them. The hours are stored in the number's settings (`Channel.settings["business_hours"]`),
so the inbound hot path reads them from the channel it already holds, with no query.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import holidays
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import Channel
from puente.errors import InvalidInput

SETTING = "business_hours"
Problem = Callable[[str, str], None]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60
MAX_INTERVALS_A_DAY = 6
MAX_CLOSED_DATES = 400
# WhatsApp refuses a text body longer than this.
MAX_MESSAGE_LENGTH = 4096
DEFAULT_EVERY_HOURS = 12
MAX_EVERY_HOURS = 30 * 24
# A schedule closed for longer than this (every day a holiday or a closed date) never opens.
HORIZON_DAYS = 400
# How long a clock change can skip: an opening that falls in the skipped hour is the first
# minute after it.
_MAX_SKIPPED_MINUTES = 180
_TIME = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True, order=True)
class Interval:
    """Open from `start` to `end` (exclusive), in minutes after local midnight; `end` may
    be 1440 (24:00), so a night that goes on past midnight is two intervals."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end


@dataclass(frozen=True)
class BusinessHours:
    time_zone: str
    # Seven days, Monday first; a day without intervals is closed.
    week: tuple[tuple[Interval, ...], ...]
    holidays_country: str | None = None
    closed_dates: frozenset[dt.date] = field(default_factory=frozenset)
    away_enabled: bool = False
    away_message: str = ""
    away_every: dt.timedelta = dt.timedelta(hours=DEFAULT_EVERY_HOURS)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


# -- open or closed ------------------------------------------------------------------------


def is_closed_day(hours: BusinessHours, day: dt.date) -> bool:
    """A public holiday of the hours' country, or one of their own closed dates."""
    if day in hours.closed_dates:
        return True
    return hours.holidays_country is not None and day in _holidays(hours.holidays_country, day.year)


def is_open(hours: BusinessHours, at: dt.datetime) -> bool:
    """Whether the number is open at the instant `at` (timezone-aware), by the wall clock
    of its time zone."""
    if at.tzinfo is None:
        raise ValueError("is_open needs a timezone-aware datetime")
    local = at.astimezone(hours.zone)
    if is_closed_day(hours, local.date()):
        return False
    minute = local.hour * 60 + local.minute
    return any(i.contains(minute) for i in hours.week[local.weekday()])


def next_opening(hours: BusinessHours, at: dt.datetime) -> dt.datetime | None:
    """The first instant at or after `at` when the number is open (`at` itself when it is
    open then), in UTC; None when it does not open within the next 400 days."""
    if is_open(hours, at):
        return at.astimezone(dt.UTC)
    first_day = at.astimezone(hours.zone).date()
    for offset in range(HORIZON_DAYS):
        day = first_day + dt.timedelta(days=offset)
        if is_closed_day(hours, day):
            continue
        for interval in hours.week[day.weekday()]:
            opening = _opening_of(hours, day, interval)
            if opening is not None and opening > at:
                return opening
    return None


def open_seconds_between(hours: BusinessHours, start: dt.datetime, end: dt.datetime) -> float:
    """How many seconds of [start, end) the number was open: a wait or a resolution time
    "in business hours". Days are walked in the hours' time zone (at most 400 of them)."""
    first_ts, last_ts = start.timestamp(), end.timestamp()
    if last_ts <= first_ts:
        return 0.0
    zone = hours.zone
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = 0.0
    for _ in range(HORIZON_DAYS):
        if day > last:
            break
        for opens, closes in open_intervals(hours, day):
            overlap = min(closes, last_ts) - max(opens, first_ts)
            if overlap > 0:
                total += overlap
        day += dt.timedelta(days=1)
    return total


@functools.lru_cache(maxsize=8192)
def open_intervals(hours: BusinessHours, day: dt.date) -> tuple[tuple[float, float], ...]:
    """When the number is open on its local `day`, as (opens, closes) POSIX timestamps;
    nothing on a closed day. Cached: reports ask for the same days again and again."""
    if is_closed_day(hours, day):
        return ()
    zone = hours.zone
    midnight = dt.datetime.combine(day, dt.time())
    return tuple(
        (
            (midnight + dt.timedelta(minutes=i.start)).replace(tzinfo=zone).timestamp(),
            (midnight + dt.timedelta(minutes=i.end)).replace(tzinfo=zone).timestamp(),
        )
        for i in hours.week[day.weekday()]
    )


def _opening_of(hours: BusinessHours, day: dt.date, interval: Interval) -> dt.datetime | None:
    """The instant `interval` opens on `day`. On the day the clocks go back its start time
    happens twice and the first one counts; on the day they go forward it may not exist,
    and the interval opens when the clocks land inside it (or never, if they skip it)."""
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=interval.start)
    at = min(wall.replace(tzinfo=hours.zone, fold=f).astimezone(dt.UTC) for f in (0, 1))
    for _ in range(_MAX_SKIPPED_MINUTES):
        local = at.astimezone(hours.zone)
        if local.date() > day:
            return None
        if local.date() == day and interval.contains(local.hour * 60 + local.minute):
            return at
        at += _MINUTE
    return None


@functools.lru_cache(maxsize=256)
def _holidays(country: str, year: int) -> frozenset[dt.date]:
    # Building a country's calendar for a year costs milliseconds; each is built once.
    return frozenset(holidays.country_holidays(country, years=year).keys())


@functools.lru_cache(maxsize=1)
def supported_countries() -> frozenset[str]:
    """The two-letter ISO 3166 codes whose public holidays are known (the package also
    answers to three-letter aliases, which would list every country twice)."""
    return frozenset(c for c in holidays.list_supported_countries() if len(c) == 2)


def upcoming_closed_days(
    hours: BusinessHours, today: dt.date, language: str, limit: int = 5
) -> list[tuple[dt.date, str | None]]:
    """The next days the number stays closed, each with its holiday's name in `language`
    where the holidays package has it (None for a closed date of the number's own). The
    page shows them, so a wrong country is noticed before a customer does."""
    found: list[tuple[dt.date, str | None]] = []
    for offset in range(HORIZON_DAYS):
        day = today + dt.timedelta(days=offset)
        if day in hours.closed_dates:
            found.append((day, None))
        elif hours.holidays_country is not None and day in _holidays(
            hours.holidays_country, day.year
        ):
            names = _holiday_names(hours.holidays_country, day.year, language)
            found.append((day, names.get(day)))
        if len(found) == limit:
            break
    return found


@functools.lru_cache(maxsize=64)
def _holiday_names(country: str, year: int, language: str) -> dict[dt.date, str]:
    # A language the country's calendar lacks falls back to its own.
    return dict(holidays.country_holidays(country, years=year, language=language))


# -- reading and writing ---------------------------------------------------------------------


def hours_of(channel: Channel) -> BusinessHours | None:
    """The number's business hours, None while none were set."""
    raw = (channel.settings or {}).get(SETTING)
    return parse_business_hours(raw) if isinstance(raw, dict) else None


_HOURS_CACHE = "puente.business_hours"


def cached_hours(session: Session, channel: Channel) -> BusinessHours | None:
    """The number's hours, parsed once per transaction (an ingest batch is one)."""
    cache: dict[tuple[int, int], BusinessHours | None] = session.info.setdefault(_HOURS_CACHE, {})
    # Keyed by the settings object too: a change in this transaction is seen.
    key = (channel.id, id(channel.settings))
    if key not in cache:
        cache[key] = hours_of(channel)
    return cache[key]


def away_message_on(channel: Channel) -> bool:
    """Cheap: whether the number sends away messages at all, without parsing its hours."""
    raw = (channel.settings or {}).get(SETTING)
    return isinstance(raw, dict) and raw.get("away_enabled") is True


def do_set_business_hours(
    session: Session, channel: Channel, raw: Mapping[str, Any], actor: Any
) -> BusinessHours:
    """Check and store the number's hours (422 naming every problem)."""
    hours = parse_business_hours(raw)
    # The settings are one JSON value: read them under a row lock so a change another
    # transaction just made to another key is kept, not overwritten.
    session.refresh(channel, attribute_names=["settings"], with_for_update=True)
    stored = business_hours_json(hours)
    channel.settings = {**(channel.settings or {}), SETTING: stored}
    audit.record(
        session,
        workspace_id=channel.workspace_id,
        actor=actor,
        action=Action.CHANNEL_SETTINGS_CHANGED,
        target=f"channel {channel.id}",
        # What was set, never the away message's text or the dates.
        details={
            SETTING: {
                "time_zone": hours.time_zone,
                "holidays_country": hours.holidays_country,
                "away_enabled": hours.away_enabled,
                "away_every_hours": stored["away_every_hours"],
            }
        },
    )
    return hours


def business_hours_json(hours: BusinessHours) -> dict[str, Any]:
    """The stored and API form of the hours."""
    return {
        "time_zone": hours.time_zone,
        "week": {
            name: [{"start": _hhmm(i.start), "end": _hhmm(i.end)} for i in intervals]
            for name, intervals in zip(DAYS, hours.week, strict=True)
        },
        "holidays_country": hours.holidays_country,
        "closed_dates": [d.isoformat() for d in sorted(hours.closed_dates)],
        "away_enabled": hours.away_enabled,
        "away_message": hours.away_message,
        "away_every_hours": int(hours.away_every.total_seconds() // 3600),
    }


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# -- checking what a person wrote -------------------------------------------------------------


def N_(message: str) -> str:
    """Marks a msgid the web translates (scripts/i18n.py extracts N_'s argument); the
    domain cannot import puente.web.i18n's own."""
    return message


# Problems are fixed English sentences (the web page translates them) under the field they
# are about: "week.mon.1" is Monday's second interval, "closed_dates.0" the first date.

TIME_FORMAT = N_("write times as HH:MM, from 00:00 to 24:00")
ENDS_BEFORE_START = N_("the interval ends before it starts")
OVERLAPS = N_("overlaps another interval of the same day")
TOO_MANY_INTERVALS = N_("at most 6 intervals a day")
UNKNOWN_ZONE = N_("not a time zone Puente knows (write it as America/Mexico_City)")
UNKNOWN_COUNTRY = N_(
    "no public holidays are known for this country (use a two-letter code: MX, ES)"
)
DATE_FORMAT = N_("write dates as YYYY-MM-DD")
TOO_MANY_DATES = N_("at most 400 closed dates")
MESSAGE_NEEDED = N_("write the away message, or turn it off")
MESSAGE_TOO_LONG = N_("the away message is too long (4,096 characters at most)")
EVERY_RANGE = N_("a whole number of hours from 1 to 720")
WEEK_NEEDED = N_("give the open intervals of each day (an empty list for a closed day)")


def parse_business_hours(raw: Mapping[str, Any]) -> BusinessHours:
    """The hours `raw` (the stored or API form) describes; InvalidInput naming each
    problem otherwise."""
    problems: list[dict[str, str]] = []

    def problem(where: str, message: str) -> None:
        problems.append({"field": where, "message": message})

    zone_name = str(raw.get("time_zone") or "")
    if not _known_zone(zone_name):
        problem("time_zone", UNKNOWN_ZONE)
    week = _parse_week(raw.get("week"), problem)
    country = raw.get("holidays_country") or None
    if country is not None:
        country = str(country).strip().upper()
        if country not in supported_countries():
            problem("holidays_country", UNKNOWN_COUNTRY)
    closed = _parse_dates(raw.get("closed_dates") or [], problem)
    away_enabled = raw.get("away_enabled") is True
    message = str(raw.get("away_message") or "").strip()
    if away_enabled and not message:
        problem("away_message", MESSAGE_NEEDED)
    if len(message) > MAX_MESSAGE_LENGTH:
        problem("away_message", MESSAGE_TOO_LONG)
    every = raw.get("away_every_hours", DEFAULT_EVERY_HOURS)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_EVERY_HOURS:
        problem("away_every_hours", EVERY_RANGE)
    if problems:
        raise InvalidInput(
            "the business hours are not valid: "
            + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
            details=problems,
        )
    return BusinessHours(
        time_zone=zone_name,
        week=week,
        holidays_country=country,
        closed_dates=frozenset(closed),
        away_enabled=away_enabled,
        away_message=message,
        away_every=dt.timedelta(hours=int(every)),
    )


def _known_zone(name: str) -> bool:
    if not name or name != name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _parse_week(raw: Any, problem: Problem) -> tuple[tuple[Interval, ...], ...]:
    if not isinstance(raw, Mapping) or set(raw) - set(DAYS):
        problem("week", WEEK_NEEDED)
        return tuple(() for _ in DAYS)
    return tuple(_parse_day(name, raw.get(name) or [], problem) for name in DAYS)


def _parse_day(name: str, raw: Any, problem: Problem) -> tuple[Interval, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        problem(f"week.{name}", WEEK_NEEDED)
        return ()
    if len(raw) > MAX_INTERVALS_A_DAY:
        problem(f"week.{name}", TOO_MANY_INTERVALS)
        return ()
    intervals: list[tuple[int, Interval]] = []
    for index, item in enumerate(raw):
        where = f"week.{name}.{index}"
        start, end = (
            (_minute(item.get("start")), _minute(item.get("end")))
            if isinstance(item, Mapping)
            else (None, None)
        )
        if start is None or end is None or start == MINUTES_A_DAY:
            problem(where, TIME_FORMAT)
        elif end <= start:
            problem(where, ENDS_BEFORE_START)
        else:
            intervals.append((index, Interval(start, end)))
    intervals.sort(key=lambda pair: pair[1])
    for (_, before), (index, after) in itertools.pairwise(intervals):
        if after.start < before.end:
            problem(f"week.{name}.{index}", OVERLAPS)
    return tuple(interval for _, interval in intervals)


def _minute(raw: Any) -> int | None:
    match = _TIME.match(str(raw or "").strip())
    if match is None:
        return None
    minute = int(match.group(1)) * 60 + int(match.group(2))
    return minute if minute <= MINUTES_A_DAY else None


def _parse_dates(raw: Any, problem: Problem) -> list[dt.date]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        problem("closed_dates", DATE_FORMAT)
        return []
    if len(raw) > MAX_CLOSED_DATES:
        problem("closed_dates", TOO_MANY_DATES)
        return []
    dates = []
    for index, item in enumerate(raw):
        text = str(item).strip()
        try:
            if not _DATE.match(text):
                raise ValueError(text)
            dates.append(dt.date.fromisoformat(text))
        except ValueError:
            problem(f"closed_dates.{index}", DATE_FORMAT)
    return dates
