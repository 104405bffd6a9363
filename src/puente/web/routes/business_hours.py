"""The business hours pages: each number's weekly schedule, holidays, closed dates and away
message (supervisors and admins), and a list of the numbers with whether each is open now.
Mounted with the channel pages (see channels.py)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from babel import Locale
from babel.dates import format_datetime, format_skeleton, get_day_names
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from puente.accounts.permissions import Perm
from puente.automation import hours as bh
from puente.channels.models import Channel
from puente.channels.service import access_channel, list_channels
from puente.db.base import utcnow
from puente.errors import InvalidInput
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import N_, common_timezones
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Configurer = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]
# Interval rows shown per day; a day the API gave more keeps one empty row beyond them.
SLOTS = 3
MAX_FORM_FIELDS = 200
_FIELD = re.compile(r"^week\.(mon|tue|wed|thu|fri|sat|sun)(?:\.(\d+))?$")
FIELD_LABELS = {
    "time_zone": N_("Time zone"),
    "holidays_country": N_("Public holidays of"),
    "away_message": N_("Away message"),
    "away_every_hours": N_("Hours between two away messages to a contact"),
    "week": N_("Schedule"),
}


# -- words -------------------------------------------------------------------------------------


def day_names(lang: str) -> list[str]:
    names = get_day_names("wide", locale=lang)
    return [str(names[i]).capitalize() for i in range(7)]


def country_names(lang: str) -> list[tuple[str, str]]:
    territories = Locale.parse(lang).territories
    named = [(code, str(territories.get(code, code))) for code in bh.supported_countries()]
    return sorted(named, key=lambda pair: pair[1])


def status_words(request: Request, hours: bh.BusinessHours | None, now: dt.datetime) -> str:
    """ "Open now", "Closed now, opens Monday 09:00", in the reader's language."""
    if hours is None:
        return translate(request, "No business hours yet: the number counts as always open.")
    if bh.is_open(hours, now):
        return translate(request, "Open now")
    opening = bh.next_opening(hours, now)
    if opening is None:
        return translate(request, "Closed now, with no opening in the schedule")
    lang = request_language(request)
    local, today = opening.astimezone(hours.zone), now.astimezone(hours.zone).date()
    time = format_datetime(local, "HH:mm", locale=lang)
    if local.date() == today:
        return translate(request, "Closed now, opens today at %(time)s", time=time)
    if (local.date() - today).days < 7:
        day = format_datetime(local, "EEEE", locale=lang)
    else:
        day = format_skeleton("MMMMEEEEd", local, locale=lang)
    return translate(request, "Closed now, opens %(day)s %(time)s", day=day, time=time)


def field_label(request: Request, field: str, days: list[str]) -> str:
    match = _FIELD.match(field)
    if match is not None:
        day = days[bh.DAYS.index(match.group(1))]
        if match.group(2) is None:
            return day
        return translate(request, "%(day)s, interval %(n)s", day=day, n=int(match.group(2)) + 1)
    if field.startswith("closed_dates"):
        return translate(request, "Closed dates")
    return translate(request, FIELD_LABELS.get(field, field))


# -- the form ----------------------------------------------------------------------------------


def form_of(hours: bh.BusinessHours | None) -> dict[str, Any]:
    """The form's values for the stored hours (a blank week in UTC when there are none)."""
    stored = bh.business_hours_json(hours) if hours is not None else None
    if stored is None:
        return {
            "time_zone": "UTC",
            "week": {day: [] for day in bh.DAYS},
            "holidays_country": "",
            "closed_dates": "",
            "away_enabled": False,
            "away_message": "",
            "away_every_hours": str(bh.DEFAULT_EVERY_HOURS),
        }
    return {
        **stored,
        "holidays_country": stored["holidays_country"] or "",
        "closed_dates": "\n".join(stored["closed_dates"]),
        "away_every_hours": str(stored["away_every_hours"]),
    }


def raw_of(form: dict[str, str]) -> dict[str, Any]:
    """What the person submitted, in the shape the domain checks (bad values are kept as
    written, so they are named and shown back rather than dropped)."""
    week: dict[str, list[dict[str, str]]] = {}
    for day in bh.DAYS:
        intervals = []
        for slot in range(bh.MAX_INTERVALS_A_DAY + 1):
            start = form.get(f"{day}_start_{slot}", "").strip()
            end = form.get(f"{day}_end_{slot}", "").strip()
            if start or end:
                intervals.append({"start": start, "end": end})
        week[day] = intervals
    every = form.get("away_every_hours", "").strip()
    return {
        "time_zone": form.get("time_zone", ""),
        "week": week,
        "holidays_country": form.get("holidays_country") or None,
        "closed_dates": [d for d in re.split(r"[\s,;]+", form.get("closed_dates", "")) if d],
        "away_enabled": form.get("away_enabled") == "yes",
        "away_message": form.get("away_message", ""),
        # Left empty, the period is the default one.
        "away_every_hours": int(every) if every.isdigit() else (every or bh.DEFAULT_EVERY_HOURS),
    }


def _page(
    request: Request,
    channel: Channel,
    form: dict[str, Any],
    problems: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    lang = request_language(request)
    days = day_names(lang)
    hours = bh.hours_of(channel)
    now = utcnow()
    today = now.astimezone(hours.zone).date() if hours is not None else now.date()
    shown = [
        {
            "where": field_label(request, p["field"], days),
            "field": p["field"],
            "message": translate(request, p["message"]),
        }
        for p in problems or []
    ]
    context = {
        "c": channel,
        "form": form,
        "days": list(zip(bh.DAYS, days, strict=True)),
        "slots": {day: max(SLOTS, len(form["week"].get(day, [])) + 1) for day in bh.DAYS},
        "zones": common_timezones(),
        "countries": country_names(lang),
        "status": status_words(request, hours, now),
        "open_now": hours is not None and bh.is_open(hours, now),
        "closures": bh.upcoming_closed_days(hours, today, lang) if hours is not None else [],
        "problems": shown,
        "bad_fields": {p["field"] for p in problems or []},
        "flash": translate(request, "Saved.") if request.query_params.get("flash") else None,
    }
    return render(request, "channels/business_hours.html", context, status_code=status_code)


@router.get("/channels/{channel_id}/business-hours", response_class=HTMLResponse)
def business_hours_page(
    request: Request, channel_id: int, session: DbDep, me: Configurer
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    return _page(request, channel, form_of(bh.hours_of(channel)))


@router.post("/channels/{channel_id}/business-hours", response_class=HTMLResponse)
async def business_hours_save(
    request: Request, channel_id: int, session: DbDep, me: Configurer
) -> Response:
    data = await request.form(max_fields=MAX_FORM_FIELDS)
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    return await run_in_threadpool(_save, request, session, me, channel_id, form)


def _save(
    request: Request, session: Session, me: WebContext, channel_id: int, form: dict[str, str]
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    raw = raw_of(form)
    try:
        bh.do_set_business_hours(session, channel, raw, me.actor)
    except InvalidInput as exc:
        shown = {
            **raw,
            "holidays_country": raw["holidays_country"] or "",
            "closed_dates": form.get("closed_dates", ""),
            "away_every_hours": form.get("away_every_hours", ""),
        }
        return _page(request, channel, shown, list(exc.details or []), status_code=422)
    return RedirectResponse(f"/channels/{channel_id}/business-hours?flash=saved", status_code=303)


@router.get("/settings/business-hours", response_class=HTMLResponse)
def business_hours_list(request: Request, session: DbDep, me: Configurer) -> Response:
    now = utcnow()
    rows = []
    for channel in list_channels(session, me.workspace.id):
        hours = bh.hours_of(channel)
        rows.append(
            {
                "c": channel,
                "status": status_words(request, hours, now),
                "away": hours is not None and hours.away_enabled,
            }
        )
    return render(request, "settings/business_hours.html", {"rows": rows})
