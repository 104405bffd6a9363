"""Handing out what waits in the teams' queues to available agents.

A pass works one workspace at a time: it locks the workspace's routing rows (so two
workers never hand out the same turn or fill one agent past capacity), then for each team
gives its longest-waiting conversations to its online members with room, by the team's
strategy. Conversations another transaction holds are skipped, never waited for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, SQLColumnExpression, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Team, TeamMember, User
from puente.automation.routing.models import Strategy, TeamRouting
from puente.automation.routing.service import queued_filter
from puente.conversations import notifications
from puente.conversations.events import conversation_assigned
from puente.conversations.models import Conversation, ConversationEvent, ConversationStatus
from puente.db.base import utcnow
from puente.events import publish
from puente.jobs import skip_locked
from puente.reports import facts

# The most conversations one team hands out per pass; the worker runs again at once when
# a pass assigned something, so a long queue drains in steps of this size.
BATCH = 100
ONLINE = "online"


@dataclass
class Agent:
    user_id: int
    name: str
    open: int  # open conversations assigned to them in the workspace


def pick(
    strategy: str, agents: Sequence[Agent], capacity: int | None, after: int | None
) -> Agent | None:
    """The agent to get the next conversation, or None when all are full. Turns go by
    user id, starting after `after` (the team's last pick): round robin takes the next
    one with room; least busy takes the one with fewest open conversations, ties broken
    in the same turn order, so equally busy agents also take turns."""
    free = [a for a in agents if capacity is None or a.open < capacity]
    if not free:
        return None
    if strategy == Strategy.LEAST_BUSY:
        fewest = min(a.open for a in free)
        free = [a for a in free if a.open == fewest]
    later = [a for a in free if after is None or a.user_id > after]
    return min(later or free, key=lambda a: a.user_id)


def _open_assigned(workspace_id: int | SQLColumnExpression[int]) -> Select[tuple[int]]:
    return select(func.count()).where(
        Conversation.workspace_id == workspace_id,
        Conversation.status == ConversationStatus.OPEN.value,
        Conversation.assignee_id == User.id,
    )


def _online_members(workspace_id: int | SQLColumnExpression[int]) -> Select[tuple[int, str]]:
    """The team members who may be given conversations now (filtered by team later)."""
    return (
        select(User.id, User.name)
        .join(TeamMember, TeamMember.user_id == User.id)
        .join(
            Membership,
            and_(
                Membership.user_id == User.id,
                Membership.workspace_id == workspace_id,
            ),
        )
        .where(
            TeamMember.workspace_id == workspace_id,
            Membership.is_active.is_(True),
            User.is_active.is_(True),
            User.availability == ONLINE,
        )
    )


def available_agents(session: Session, workspace_id: int, team_id: int) -> list[Agent]:
    load = _open_assigned(workspace_id).scalar_subquery()
    rows = session.execute(
        _online_members(workspace_id)
        .add_columns(load)
        .where(TeamMember.team_id == team_id)
        .order_by(User.id)
    ).tuples()
    return [Agent(user_id, name, count) for user_id, name, count in rows]


def assignable_workspaces(session: Session) -> list[int]:
    """Workspaces where some team's queue holds a conversation and one of its online
    members has room: read first, so a pass takes no lock (and on SQLite no write
    transaction) when nothing can move."""
    queued = exists().where(
        *queued_filter(TeamRouting.workspace_id), Conversation.team_id == TeamRouting.team_id
    )
    with_room = exists(
        _online_members(TeamRouting.workspace_id)
        .with_only_columns(User.id)
        .where(
            TeamMember.team_id == TeamRouting.team_id,
            or_(
                TeamRouting.capacity.is_(None),
                # Named through team_members, which this subquery reads: a count naming
                # team_routing would read that table again instead of the outer row.
                _open_assigned(TeamMember.workspace_id).scalar_subquery() < TeamRouting.capacity,
            ),
        )
    )
    return list(
        session.scalars(
            select(TeamRouting.workspace_id)
            .where(TeamRouting.strategy != Strategy.MANUAL.value, queued, with_room)
            .distinct()
        )
    )


def do_route_workspace(session: Session, workspace_id: int) -> int:
    """Assign what the workspace's teams can hand out now; returns how many."""
    routings = session.scalars(
        select(TeamRouting)
        .where(
            TeamRouting.workspace_id == workspace_id,
            TeamRouting.strategy != Strategy.MANUAL.value,
        )
        .order_by(TeamRouting.team_id)
        .with_for_update()
    ).all()
    return sum(_route_team(session, routing) for routing in routings)


def _route_team(session: Session, routing: TeamRouting) -> int:
    agents = available_agents(session, routing.workspace_id, routing.team_id)
    if pick(routing.strategy, agents, routing.capacity, routing.last_user_id) is None:
        return 0
    waiting = session.scalars(
        skip_locked(
            session,
            select(Conversation)
            .where(*queued_filter(routing.workspace_id), Conversation.team_id == routing.team_id)
            .order_by(Conversation.waiting_since.asc().nulls_last(), Conversation.id)
            .limit(BATCH),
        )
    ).all()
    team_name = session.scalar(select(Team.name).where(Team.id == routing.team_id))
    assigned = 0
    for conversation in waiting:
        agent = pick(routing.strategy, agents, routing.capacity, routing.last_user_id)
        if agent is None:
            break
        do_route_to(session, conversation, agent, routing, team_name)
        agent.open += 1
        routing.last_user_id = agent.user_id
        assigned += 1
    return assigned


def do_route_to(
    session: Session,
    conversation: Conversation,
    agent: Agent,
    routing: TeamRouting,
    team_name: str | None,
) -> None:
    """Give the conversation to `agent`: the timeline says Puente did it and by which
    strategy, the agent is notified, and everyone watching hears of it after commit.
    Not audited: the audit log records people's actions, and routing is the setting a
    person chose (audited when they chose it)."""
    conversation.assignee_id = agent.user_id
    facts.assigned(session, conversation, utcnow(), previous_assignee_id=None)
    event = ConversationEvent(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        actor_id=None,
        kind="assigned",
        data={
            "from_user_id": None,
            "to_user_id": agent.user_id,
            "to_name": agent.name,
            "team_id": routing.team_id,
            "team_name": team_name,
            "strategy": routing.strategy,
        },
    )
    session.add(event)
    session.flush()
    notifications.do_notify(
        session,
        workspace_id=conversation.workspace_id,
        user_id=agent.user_id,
        kind="assigned",
        conversation_id=conversation.id,
        actor_id=None,
        text=f"{team_name or ''} → #{conversation.id}".strip(),
    )
    publish(
        session, conversation_assigned(conversation, event_id=event.id, previous_assignee_id=None)
    )
