"""REST API for routing: each team's assignment strategy and capacity, and the team a
number's new conversations go to (thin: the rules live in `puente.automation.routing`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Team, TeamMember, User
from puente.accounts.service import access_team
from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.automation.routing.service import (
    MAX_CAPACITY,
    do_set_default_team,
    do_set_team_routing,
    team_settings,
)
from puente.channels.models import Channel
from puente.channels.service import access_channel

router = APIRouter(tags=["routing"])

ReadCaller = Annotated[ApiCaller, scoped("automation:read")]
WriteCaller = Annotated[ApiCaller, scoped("automation:write")]
TeamId = Annotated[int, Path(ge=1, le=2**62, description="the team's id")]
ChannelId = Annotated[int, Path(ge=1, le=2**62, description="the number's id")]
StrategyName = Literal["manual", "round_robin", "least_busy"]


class TeamRoutingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName = Field(
        description="manual: agents take conversations from the queue; round_robin: each "
        "available (online) member in turn; least_busy: the available member with the "
        "fewest open conversations"
    )
    capacity: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CAPACITY,
        description="the most open conversations a member may hold before routing passes "
        "them by; null for no limit",
    )


class MemberOut(BaseModel):
    id: int
    name: str
    availability: str = Field(description="online, away or offline")


class TeamRoutingOut(TeamRoutingIn):
    model_config = ConfigDict(extra="forbid")

    team_id: int
    name: str
    queued: int = Field(description="open conversations of the team that nobody has yet")
    members: list[MemberOut]


class NumberRoutingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_team_id: int | None = Field(
        ge=1,
        le=2**62,
        description="the team whose queue the number's new conversations join; null for none",
    )


class NumberRoutingOut(NumberRoutingIn):
    channel_id: int


def _teams_out(
    session: Session, workspace_id: int, only: int | None = None
) -> list[TeamRoutingOut]:
    settings = team_settings(session, workspace_id)
    teams = select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)
    members = (
        select(TeamMember.team_id, User.id, User.name, User.availability)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.workspace_id == workspace_id)
        .order_by(User.name, User.id)
    )
    if only is not None:
        teams = teams.where(Team.id == only)
        members = members.where(TeamMember.team_id == only)
    by_team: dict[int, list[MemberOut]] = {}
    for team_id, user_id, name, availability in session.execute(members).tuples():
        by_team.setdefault(team_id, []).append(
            MemberOut(id=user_id, name=name, availability=availability)
        )
    return [
        TeamRoutingOut(
            team_id=team.id,
            name=team.name,
            strategy=settings[team.id].strategy,
            capacity=settings[team.id].capacity,
            queued=settings[team.id].queued,
            members=by_team.get(team.id, []),
        )
        for team in session.scalars(teams)
    ]


@router.get(
    "/teams",
    response_model=list[TeamRoutingOut],
    summary="The workspace's teams, with their routing, queue and members' availability",
    responses=error_responses(403),
)
def list_teams(caller: ReadCaller, session: SessionDep) -> list[TeamRoutingOut]:
    return _teams_out(session, caller.workspace_id)


@router.get(
    "/teams/{team_id}/routing",
    response_model=TeamRoutingOut,
    summary="How a team's conversations are assigned",
    responses=error_responses(403, 404),
)
def get_team_routing(team_id: TeamId, caller: ReadCaller, session: SessionDep) -> TeamRoutingOut:
    team = access_team(session, caller.actor, team_id)
    return _teams_out(session, caller.workspace_id, only=team.id)[0]


@router.put(
    "/teams/{team_id}/routing",
    response_model=TeamRoutingOut,
    summary="Set how a team's conversations are assigned",
    description="Turning round robin or least busy on assigns what already waits in the "
    "team's queue to its available members, within their capacity.",
    responses=error_responses(403, 404, 422),
)
def put_team_routing(
    team_id: TeamId, body: TeamRoutingIn, caller: WriteCaller, session: SessionDep
) -> TeamRoutingOut:
    do_set_team_routing(
        session, caller.actor, team_id, strategy=body.strategy, capacity=body.capacity
    )
    return _teams_out(session, caller.workspace_id, only=team_id)[0]


def _number_out(channel: Channel) -> NumberRoutingOut:
    return NumberRoutingOut(channel_id=channel.id, default_team_id=channel.default_team_id)


@router.get(
    "/channels/{channel_id}/routing",
    response_model=NumberRoutingOut,
    summary="The team a number's new conversations go to",
    responses=error_responses(403, 404),
)
def get_number_routing(
    channel_id: ChannelId, caller: ReadCaller, session: SessionDep
) -> NumberRoutingOut:
    return _number_out(access_channel(session, caller.workspace_id, channel_id))


@router.put(
    "/channels/{channel_id}/routing",
    response_model=NumberRoutingOut,
    summary="Send a number's new conversations to a team",
    description="A customer's message into a conversation nobody has puts it in this "
    "team's queue; the team's routing then assigns it.",
    responses=error_responses(403, 404, 422),
)
def put_number_routing(
    channel_id: ChannelId, body: NumberRoutingIn, caller: WriteCaller, session: SessionDep
) -> NumberRoutingOut:
    channel = access_channel(session, caller.workspace_id, channel_id)
    do_set_default_team(session, caller.actor, channel, body.default_team_id)
    return _number_out(channel)
