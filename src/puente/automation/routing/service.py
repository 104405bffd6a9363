"""Routing settings: each team's strategy and capacity, a number's default team, and what
waits in each team's queue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, SQLColumnExpression, func, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.gate import Actor
from puente.accounts.models import Team
from puente.accounts.service import access_team
from puente.automation.routing.models import Strategy, TeamRouting
from puente.channels.models import Channel
from puente.conversations.models import Conversation, ConversationStatus
from puente.errors import InvalidInput
from puente.jobs import ROUTING

MAX_CAPACITY = 1000


@dataclass(frozen=True)
class TeamSettings:
    team_id: int
    strategy: str
    capacity: int | None
    queued: int


def queued_filter(workspace_id: int | SQLColumnExpression[int]) -> list[ColumnElement[bool]]:
    """What "waiting in a team's queue" means: open, with a team and nobody assigned."""
    return [
        Conversation.workspace_id == workspace_id,
        Conversation.status == ConversationStatus.OPEN.value,
        Conversation.assignee_id.is_(None),
        Conversation.team_id.is_not(None),
    ]


def team_settings(session: Session, workspace_id: int) -> dict[int, TeamSettings]:
    """Every team's routing (manual for a team never configured) and queue length, in three
    statements whatever the number of teams."""
    routings = {
        r.team_id: r
        for r in session.scalars(
            select(TeamRouting).where(TeamRouting.workspace_id == workspace_id)
        )
    }
    queued: dict[int | None, int] = {
        team_id: count
        for team_id, count in session.execute(
            select(Conversation.team_id, func.count())
            .where(*queued_filter(workspace_id))
            .group_by(Conversation.team_id)
        ).tuples()
    }
    team_ids = session.scalars(select(Team.id).where(Team.workspace_id == workspace_id))
    result = {}
    for team_id in team_ids:
        routing = routings.get(team_id)
        result[team_id] = TeamSettings(
            team_id=team_id,
            strategy=routing.strategy if routing else Strategy.MANUAL.value,
            capacity=routing.capacity if routing else None,
            queued=queued.get(team_id, 0),
        )
    return result


def check_team_routing(strategy: str, capacity: int | None) -> tuple[Strategy, int | None]:
    try:
        chosen = Strategy(strategy)
    except ValueError:
        raise InvalidInput("Choose how the team's conversations are assigned.") from None
    if capacity is not None and not 1 <= capacity <= MAX_CAPACITY:
        raise InvalidInput(
            "The capacity is a number of conversations from 1 to %(max)s, or empty for no limit.",
            params={"max": MAX_CAPACITY},
        )
    return chosen, capacity


def do_set_team_routing(
    session: Session,
    actor: Actor,
    team_id: int,
    *,
    strategy: str,
    capacity: int | None,
    ip: str | None = None,
) -> TeamRouting:
    """Set how a team's conversations are assigned. Turning routing on hands out what
    already waits in the queue, at once (the routing worker is woken after commit)."""
    chosen, capacity = check_team_routing(strategy, capacity)
    team = access_team(session, actor, team_id)
    # Locked like a routing pass locks it, so a pass under way finishes on the old
    # settings and the next one starts on the new.
    routing = session.scalar(
        select(TeamRouting).where(TeamRouting.team_id == team.id).with_for_update()
    )
    if routing is None:
        routing = TeamRouting(team_id=team.id, workspace_id=team.workspace_id)
        session.add(routing)
    routing.strategy = chosen.value
    routing.capacity = capacity
    session.flush()
    audit.record(
        session,
        workspace_id=team.workspace_id,
        actor=actor,
        action=audit.Action.TEAM_ROUTING_CHANGED,
        target=f"team {team.name}",
        details={"strategy": chosen.value, "capacity": capacity},
        ip=ip,
    )
    if chosen is not Strategy.MANUAL:
        ROUTING.wake_after_commit(session)
    return routing


def do_set_default_team(
    session: Session, actor: Actor, channel: Channel, team_id: int | None
) -> None:
    """Send the number's new conversations to `team_id` (None: to no team)."""
    team = access_team(session, actor, team_id) if team_id is not None else None
    if channel.default_team_id == team_id:
        return
    channel.default_team_id = team_id
    audit.record(
        session,
        workspace_id=channel.workspace_id,
        actor=actor,
        action=audit.Action.CHANNEL_SETTINGS_CHANGED,
        target=f"channel {channel.id}",
        details={"default_team_id": team_id, "default_team": team.name if team else None},
    )
