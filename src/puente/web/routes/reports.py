"""The Reports pages: the index (a card per report the viewer may open) and one report with
its date range, filters, headline figures, chart and tables, each table downloadable as
CSV. Every member may open them; who sees which figures is reports.access's to say
(supervisors and up everything, an agent their own figures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.dates import format_interval
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Team, User
from puente.accounts.permissions import Perm
from puente.channels.models import Channel
from puente.conversations.collab import user_error
from puente.errors import InvalidInput, NotFound
from puente.reports.access import (
    FILTERS_OF,
    Asked,
    access_report,
    check_report,
    reports_for,
    sees_everything,
)
from puente.reports.queries import Filters, Report, report
from puente.reports.ranges import PRESETS, DateRange, resolve_range, viewer_timezone
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import error_message, translations
from puente.web.reports import words
from puente.web.reports.present import Formats, csv_lines, view_of
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Viewer = Annotated[WebContext, Depends(require_permission(Perm.INBOX))]

# The query's names for the filters (and reports.access's names for them).
FILTER_PARAMS = {"channel": "channel", "team": "team", "agent": "agent", "source": "source"}


def formats(request: Request) -> Formats:
    # Bound to the language now: a CSV's lines are written after the request's session
    # has closed, when the member's row can no longer be read.
    lang = request_language(request)
    return Formats(lang, translations(lang).gettext)


@router.get("/reports", response_class=HTMLResponse)
def reports_index(request: Request, me: Viewer) -> Response:
    cards = [(key, *words.REPORTS[key]) for key in reports_for(me.actor)]
    context = {"cards": cards, "own_only": not sees_everything(me.actor)}
    return render(request, "reports/index.html", context)


# Declared before /reports/{key}, which would take "costs.csv" for a report's name.
@router.get("/reports/{key}.csv")
def report_csv(request: Request, key: str, session: DbDep, me: Viewer) -> Response:
    check_report(me.actor, key)
    filters = _filters(request, session, me, key)
    name = request.query_params.get("table", "")
    table = next((t for t in report(session, key, filters).tables if t.key == name), None)
    if table is None:
        raise user_error(NotFound, "This report has no such table.")
    fm = formats(request)
    filename = f"{key}-{name}-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    return StreamingResponse(
        csv_lines(table, fm),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/reports/{key}", response_class=HTMLResponse)
def report_page(request: Request, key: str, session: DbDep, me: Viewer) -> Response:
    check_report(me.actor, key)
    query = request.query_params
    context: dict[str, Any] = {
        "key": key,
        "title": words.REPORTS[key][0],
        "description": words.REPORTS[key][1],
        "own_only": not sees_everything(me.actor),
        "choices": _choices(request, session, me, key),
        "asked": {name: query.get(param, "") for name, param in FILTER_PARAMS.items()},
        "presets": words.PRESETS,
        "zone": me.workspace.timezone,
    }
    kept = {p: v for p, v in context["asked"].items() if v}
    context["preset_links"] = {p: _url(key, {"preset": p, **kept}) for p in PRESETS}
    try:
        filters, dates = _filters_and_range(request, session, me, key)
    except InvalidInput as exc:
        context.update(
            error=error_message(request_language(request), exc),
            range={"preset": "", "start": query.get("start", ""), "end": query.get("end", "")},
        )
        return render(request, "reports/report.html", context, status_code=422)
    shown: Report = report(session, key, filters)
    fm = formats(request)
    lang = request_language(request)
    context.update(
        view_of(shown, fm),
        range={
            "preset": dates.preset,
            "start": dates.start.isoformat(),
            "end": dates.end.isoformat(),
            "text": format_interval(dates.start, dates.end, "yMMMd", locale=lang),
        },
        csv_query=urlencode(
            {"start": dates.start.isoformat(), "end": dates.end.isoformat(), **kept}
        ),
    )
    return render(request, "reports/report.html", context)


def _url(key: str, params: Mapping[str, str]) -> str:
    return f"/reports/{key}?{urlencode(params)}"


def _filters(request: Request, session: Session, me: WebContext, key: str) -> Filters:
    return _filters_and_range(request, session, me, key)[0]


def _filters_and_range(
    request: Request, session: Session, me: WebContext, key: str
) -> tuple[Filters, DateRange]:
    query = request.query_params
    dates = resolve_range(
        timezone=viewer_timezone(me.user.timezone, me.workspace.timezone),
        preset=query.get("preset") or None,
        start=query.get("start") or None,
        end=query.get("end") or None,
        hint=query.get("range") or None,
    )
    asked = Asked(
        channel_id=_id(query.get("channel")),
        team_id=_id(query.get("team")),
        agent_id=_id(query.get("agent")),
        source=query.get("source") or None,
    )
    return access_report(session, me.actor, key, dates, asked), dates


def _id(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise user_error(InvalidInput, "“%(value)s” is not one of the choices.", value=value[:40])
    return int(value)


def _choices(
    request: Request, session: Session, me: WebContext, key: str
) -> dict[str, list[tuple[str, str]]]:
    """The options of each filter the report has, as (value, label)."""
    cut = FILTERS_OF[key]
    everything = sees_everything(me.actor)
    ws = me.actor.workspace_id
    out: dict[str, list[tuple[str, str]]] = {}
    if "channel" in cut:
        rows = session.execute(
            select(Channel.id, Channel.name, Channel.display_phone_number)
            .where(Channel.workspace_id == ws)
            .order_by(Channel.name)
        )
        out["channel"] = [(str(i), name or phone or f"#{i}") for i, name, phone in rows]
    if "team" in cut:
        stmt = select(Team.id, Team.name).where(Team.workspace_id == ws).order_by(Team.name)
        if not everything:
            stmt = stmt.where(Team.id.in_(me.actor.team_ids))
        out["team"] = [(str(i), name) for i, name in session.execute(stmt)]
    if "agent" in cut and everything:
        rows = session.execute(
            select(User.id, User.name)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == ws)
            .order_by(User.name)
        )
        out["agent"] = [(str(i), name) for i, name in rows]
    if "source" in cut:
        sources = words.SOURCE_CHOICES.get(key, ())
        out["source"] = [(s, translate(request, words.VALUES[s])) for s in sources]
    return out
