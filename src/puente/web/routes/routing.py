"""Routing settings in the web UI: each team's strategy and capacity (on the teams page),
the workspace's idle time before agents are away, and a number's default team (on the
number's page). Each form answers with its own fragment, swapped in by htmx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Team
from puente.accounts.permissions import Perm
from puente.accounts.presence import do_set_idle_minutes, idle_minutes
from puente.accounts.service import access_team
from puente.automation.routing.service import (
    do_set_default_team,
    do_set_team_routing,
    team_settings,
)
from puente.channels.models import Channel
from puente.channels.service import access_channel
from puente.errors import InvalidInput, PuenteError
from puente.web.deps import DbDep, WebContext, client_ip, require_permission
from puente.web.i18n import N_, error_message
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Automation = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]


def routing_context(session: Session, me: WebContext) -> dict[str, Any]:
    """What the teams page shows of routing (settings_admin's teams page includes it)."""
    return {
        "routing": team_settings(session, me.actor.workspace_id),
        "idle_minutes": idle_minutes(me.workspace),
    }


def _number(value: str, what: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInput(what)
    return int(value)


def _saved(
    request: Request,
    session: Session,
    change: Callable[[], object],
    show: Callable[[dict[str, Any], int], HTMLResponse],
) -> HTMLResponse:
    """Make one change in a savepoint; show the fragment again, saying so or why not."""
    try:
        with session.begin_nested():
            change()
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        return show({"error": error}, exc.status_code)
    return show({"flash": translate(request, N_("Saved."))}, 200)


@router.post("/settings/teams/{team_id}/routing", response_class=HTMLResponse)
def team_routing(
    request: Request,
    session: DbDep,
    me: Automation,
    team_id: int,
    strategy: Annotated[str, Form(max_length=16)],
    capacity: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    team = access_team(session, me.actor, team_id)

    def change() -> None:
        limit = _number(capacity, N_("The capacity is a whole number of conversations."))
        do_set_team_routing(
            session, me.actor, team.id, strategy=strategy, capacity=limit, ip=client_ip(request)
        )

    def show(extra: dict[str, Any], status: int) -> HTMLResponse:
        context = {"team": team, "r": team_settings(session, me.actor.workspace_id)[team.id]}
        return render(request, "settings/_team_routing.html", context | extra, status_code=status)

    return _saved(request, session, change, show)


@router.post("/settings/availability", response_class=HTMLResponse)
def availability_settings(
    request: Request,
    session: DbDep,
    me: Automation,
    away_after_minutes: Annotated[str, Form(max_length=8)],
) -> Response:
    def change() -> None:
        minutes = _number(away_after_minutes, N_("Write a number of minutes."))
        if minutes is None:
            raise InvalidInput(N_("Write a number of minutes."))
        do_set_idle_minutes(session, me.actor, me.workspace, minutes, ip=client_ip(request))

    def show(extra: dict[str, Any], status: int) -> HTMLResponse:
        context = {"idle_minutes": idle_minutes(me.workspace), **extra}
        return render(request, "settings/_availability.html", context, status_code=status)

    return _saved(request, session, change, show)


def _number_routing(
    request: Request, session: Session, me: WebContext, channel: Channel
) -> Callable[[dict[str, Any], int], HTMLResponse]:

    def show(extra: dict[str, Any], status: int) -> HTMLResponse:
        teams = session.scalars(
            select(Team).where(Team.workspace_id == me.workspace.id).order_by(Team.name)
        ).all()
        context = {"c": channel, "teams": teams, "default_team": channel.default_team_id}
        return render(request, "channels/_routing.html", context | extra, status_code=status)

    return show


@router.get("/channels/{channel_id}/routing", response_class=HTMLResponse)
def number_routing(request: Request, session: DbDep, me: Automation, channel_id: int) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    return _number_routing(request, session, me, channel)({}, 200)


@router.post("/channels/{channel_id}/routing", response_class=HTMLResponse)
def number_routing_save(
    request: Request,
    session: DbDep,
    me: Automation,
    channel_id: int,
    team_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    show = _number_routing(request, session, me, channel)

    def change() -> None:
        chosen = _number(team_id, N_("Choose one of the teams."))
        do_set_default_team(session, me.actor, channel, chosen)

    return _saved(request, session, change, show)
