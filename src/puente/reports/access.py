"""Who may see which report figures: the viewer and the filters they ask for, turned into
the `Filters` a report reads, through the authorization gate.

Members who hold reports.view (supervisors, admins, owners, or anyone the membership
grants it) see every figure of their workspace. Any other member sees their own figures
only: the reports about people (conversations, responses, resolutions, messages,
assignments, the leaderboard, users, satisfaction) with the agent filter set to
themselves, and a team filter limited to their own teams. A number, team or agent of
another workspace is a 404, as if it did not exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor, can, require
from puente.accounts.models import Membership, Team
from puente.accounts.permissions import Perm
from puente.channels.models import Channel
from puente.contacts.models import ContactSource
from puente.conversations.collab import user_error
from puente.conversations.models import MessageSource
from puente.errors import Forbidden, InvalidInput, NotFound, PuenteError
from puente.reports.queries import REPORTS, Filters
from puente.reports.ranges import DateRange

# The filters each report's figures can be cut by (the facts it counts carry them): the
# costs of a number, the presence of an agent, the contacts of a source.
FILTERS_OF: dict[str, frozenset[str]] = {
    "conversations": frozenset({"channel", "team", "agent"}),
    "responses": frozenset({"channel", "team", "agent", "source"}),
    "resolutions": frozenset({"channel", "team", "agent"}),
    "messages": frozenset({"channel", "team", "agent", "source"}),
    "contacts": frozenset({"source"}),
    "assignments": frozenset({"channel", "team", "agent"}),
    "leaderboard": frozenset({"channel", "team", "agent"}),
    "users": frozenset({"agent"}),
    "broadcasts": frozenset({"channel"}),
    "costs": frozenset({"channel"}),
    "csat": frozenset({"channel", "team", "agent"}),
}
# The reports with an agent in them, which a member without reports.view sees for
# themselves. Contacts, broadcasts and costs belong to the business, not to one person.
OWN_REPORTS = frozenset(key for key, cut in FILTERS_OF.items() if "agent" in cut)
_NOT_A_FILTER: dict[str, Callable[[], PuenteError]] = {
    "channel": lambda: user_error(InvalidInput, "This report cannot be filtered by number."),
    "team": lambda: user_error(InvalidInput, "This report cannot be filtered by team."),
    "agent": lambda: user_error(InvalidInput, "This report cannot be filtered by agent."),
    "source": lambda: user_error(InvalidInput, "This report cannot be filtered by source."),
}
# Who sent a message or started a conversation, and where a contact came from.
SOURCES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*(s.value for s in MessageSource), "workflow", *(s.value for s in ContactSource)]
    )
)


@dataclass(frozen=True)
class Asked:
    """The filters as the viewer asked for them (None: not filtered)."""

    channel_id: int | None = None
    team_id: int | None = None
    agent_id: int | None = None
    source: str | None = None

    def given(self) -> dict[str, object]:
        asked = {
            "channel": self.channel_id,
            "team": self.team_id,
            "agent": self.agent_id,
            "source": self.source or None,
        }
        return {name: value for name, value in asked.items() if value is not None}


def sees_everything(actor: Actor) -> bool:
    return can(actor, Perm.REPORTS)


def reports_for(actor: Actor) -> list[str]:
    """The report keys `actor` may open, in the index's order."""
    if sees_everything(actor):
        return list(REPORTS)
    if actor.user_id is None:
        return []
    return [key for key in REPORTS if key in OWN_REPORTS]


def check_report(actor: Actor, key: str) -> None:
    """NotFound for a report that does not exist, Forbidden for one `actor` may not open."""
    if key not in REPORTS:
        raise user_error(NotFound, "There is no such report.")
    if key not in reports_for(actor):
        require(actor, Perm.REPORTS)


def access_report(
    session: Session, actor: Actor, key: str, dates: DateRange, asked: Asked
) -> Filters:
    """The filters `actor` may read report `key` with, or NotFound/Forbidden/InvalidInput."""
    check_report(actor, key)
    everything = sees_everything(actor)
    for name in asked.given():
        if name not in FILTERS_OF[key]:
            raise _NOT_A_FILTER[name]()
    channel_ids = None
    if asked.channel_id is not None:
        channel_ids = (access_channel(session, actor, asked.channel_id),)
    team_id = None
    if asked.team_id is not None:
        team_id = access_team(session, actor, asked.team_id)
    agent_id = actor.user_id if not everything else None
    if asked.agent_id is not None:
        agent_id = access_agent(session, actor, asked.agent_id)
    source = None
    if asked.source:
        if asked.source not in SOURCES:
            raise user_error(
                InvalidInput, "“%(source)s” is not a source Puente knows.", source=asked.source[:40]
            )
        source = asked.source
    return Filters(
        workspace_id=actor.workspace_id,
        start=dates.start,
        end=dates.end,
        channel_ids=channel_ids,
        team_id=team_id,
        agent_id=agent_id,
        source=source,
    )


def access_channel(session: Session, actor: Actor, channel_id: int) -> int:
    found = session.scalar(
        select(Channel.id).where(
            Channel.id == channel_id, Channel.workspace_id == actor.workspace_id
        )
    )
    if found is None:
        raise user_error(NotFound, "There is no such number in this workspace.")
    return int(found)


def access_team(session: Session, actor: Actor, team_id: int) -> int:
    found = session.scalar(
        select(Team.id).where(Team.id == team_id, Team.workspace_id == actor.workspace_id)
    )
    if found is None:
        raise user_error(NotFound, "There is no such team in this workspace.")
    if not sees_everything(actor) and team_id not in actor.team_ids:
        raise user_error(Forbidden, "You can see the figures of your own teams only.")
    return int(found)


def access_agent(session: Session, actor: Actor, agent_id: int) -> int:
    found = session.scalar(
        select(Membership.user_id).where(
            Membership.user_id == agent_id, Membership.workspace_id == actor.workspace_id
        )
    )
    if found is None:
        raise user_error(NotFound, "There is no such agent in this workspace.")
    if not sees_everything(actor) and agent_id != actor.user_id:
        raise user_error(Forbidden, "You can see your own figures only.")
    return int(found)
