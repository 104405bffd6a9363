"""The supervisor's home: the dashboard page, and its figures alone for the live refresh
(static/dashboard.js asks for them when the inbox's event stream says a conversation
opened, closed, was assigned or a person's availability changed)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    format_skeleton,
    format_time,
    format_timedelta,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.reports.dashboard import Dashboard, dashboard
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import safe_zone
from puente.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
Supervisor = Annotated[WebContext, Depends(require_permission(Perm.REPORTS))]

# Day, hour, minute, second: each part of a duration below the next unit up, so that
# babel names its unit in the reader's language.
_UNITS = (86400, 3600, 60, 1)


def duration(seconds: float | None, lang: str) -> str:
    """A duration as a person reads it: 45 s, 4 min 30 s, 12 min, 1 h 35 min, 2 days 3 h
    (two neighbouring units at most, in the reader's language); a dash for none."""
    if seconds is None:
        return "—"
    left = round(max(seconds, 0.0))
    if left >= 600:
        left = round(left / 60) * 60  # past ten minutes, seconds stop mattering
    parts: list[tuple[int, int]] = []  # (amount, unit size)
    for size in _UNITS:
        amount, left = divmod(left, size)
        if amount:
            parts.append((amount, size))
        elif parts:
            break
        if len(parts) == 2:
            break
    locale = Locale.parse(lang)
    # threshold=amount keeps babel in this part's unit: 9 days, not "1 week".
    return " ".join(
        format_timedelta(
            dt.timedelta(seconds=amount * size),
            threshold=max(amount, 1),
            format="short",
            locale=locale,
        )
        for amount, size in parts or [(0, 1)]
    )


def _day(day: dt.date, locale: Locale) -> str:
    """Sunday, November 29 / domingo, 29 de noviembre (the year goes without saying)."""
    weekday = format_date(day, "EEEE", locale=locale)
    return f"{weekday}, {format_skeleton('MMMMd', day, locale=locale)}"


def _context(request: Request, me: WebContext, board: Dashboard) -> dict[str, Any]:
    lang = request_language(request)
    locale = Locale.parse(lang)
    viewer_zone = safe_zone(me.user.timezone)
    zone_name = me.workspace.timezone or "UTC"
    today_here = board.now.astimezone(viewer_zone).date()

    def since(value: dt.datetime) -> str:
        """When a customer began waiting, in the viewer's time zone: the time alone today."""
        if value.astimezone(viewer_zone).date() == today_here:
            return str(format_time(value, "short", tzinfo=viewer_zone, locale=locale))
        return str(format_datetime(value, "short", tzinfo=viewer_zone, locale=locale))

    # Days begin and end in the workspace's time zone: the comparison is told in it.
    until = format_time(board.last_week_until, "short", tzinfo=safe_zone(zone_name), locale=locale)
    return {
        "board": board,
        "waited": lambda value: duration((board.now - value).total_seconds(), lang),
        "since": since,
        "duration": lambda seconds: duration(seconds, lang),
        "today_label": _day(board.day, locale),
        "last_week_label": _day(board.last_week_day, locale),
        "last_week_time": until,
        "workspace_zone": zone_name if zone_name != (me.user.timezone or "UTC") else None,
    }


def _board(session: Session, me: WebContext) -> Dashboard:
    return dashboard(session, me.actor, timezone=me.workspace.timezone)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, session: DbDep, me: Supervisor) -> Response:
    board = _board(session, me)
    return render(request, "dashboard/dashboard.html", _context(request, me, board))


@router.get("/dashboard/figures", response_class=HTMLResponse)
def dashboard_figures(request: Request, session: DbDep, me: Supervisor) -> Response:
    board = _board(session, me)
    return render(request, "dashboard/_figures.html", _context(request, me, board))
