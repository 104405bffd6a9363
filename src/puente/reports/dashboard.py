"""The supervisor's dashboard: what is happening now (open and unassigned conversations,
who waits longest, who is online) read from the live tables, and today so far beside the
same weekday last week up to the same time of day, read from the report facts.

Every figure is a handful of index reads whatever the size of the workspace: the counts
come from the inbox's own indexes (conversations.search), the longest waiting from the
"waiting" order's index, and today's figures from the facts of two partial days through
(workspace_id, at). The rollups are per day and cannot stop at a time of day; the facts
can, to the quarter hour (counted messages are stored per quarter hour, reports.facts)."""

from __future__ import annotations

import datetime as dt
import statistics
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, union_all
from sqlalchemy.orm import Session, aliased

from puente.accounts.gate import Actor, conversation_scope
from puente.accounts.models import Membership, Team, User, Workspace
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, ConversationStatus, MessageSource
from puente.db.base import utcnow
from puente.reports.facts import Kind
from puente.reports.models import ReportFact

LONGEST_WAITING = 5
AVAILABILITIES = ("online", "away", "offline")
# The conversations somebody still has to deal with, and where a customer can be waiting.
ACTIVE = (ConversationStatus.OPEN.value, ConversationStatus.PENDING.value)


@dataclass(frozen=True)
class Waiting:
    """A conversation whose customer waits for a person's answer."""

    conversation_id: int
    contact_name: str
    contact_phone: str | None
    channel_name: str
    status: str
    waiting_since: dt.datetime
    assignee_name: str | None
    team_name: str | None


@dataclass(frozen=True)
class Comparison:
    """One of today's figures beside the same weekday last week at the same time of day.
    `kind`: number, or seconds (a duration; None when nothing was measured)."""

    key: str  # new | resolved | received | first_response
    today: float | None
    last_week: float | None
    kind: str = "number"

    @property
    def change(self) -> float | None:
        """Today minus last week, when both exist."""
        if self.today is None or self.last_week is None:
            return None
        return self.today - self.last_week


@dataclass(frozen=True)
class Dashboard:
    open: int
    unassigned: int  # open and nobody's
    pending: int
    longest_waiting: list[Waiting]
    agents: dict[str, list[str]]  # availability -> names, in name order
    today: list[Comparison]
    now: dt.datetime  # UTC
    day: dt.date  # today in the workspace's time zone
    last_week_day: dt.date
    last_week_until: dt.datetime  # UTC: the same local time of day, a week ago


# -- now -------------------------------------------------------------------------------------


def _counts(session: Session, actor: Actor) -> tuple[int, int, int]:
    """Open, open and unassigned, pending: one read of the inbox's tab-count index."""
    c = Conversation
    is_open = c.status == ConversationStatus.OPEN.value
    row = session.execute(
        select(
            func.count().filter(is_open),
            func.count().filter(and_(is_open, c.assignee_id.is_(None))),
            func.count().filter(c.status == ConversationStatus.PENDING.value),
        ).where(conversation_scope(actor), c.status.in_(ACTIVE))
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _waiting_ids(session: Session, actor: Actor, status: str) -> Select[Any]:
    """The longest-waiting conversations of one status, read in the order of
    ix_conversations_waiting_order (conversations.search), spelled as the inbox spells it."""
    c = Conversation
    order: tuple[ColumnElement[Any], ...]
    if session.get_bind().dialect.name == "sqlite":
        order = (c.waiting_since.is_(None), c.waiting_since.asc())
    else:
        order = (c.waiting_since.asc().nulls_last(),)
    return (
        select(c.id)
        .where(conversation_scope(actor), c.status == status, c.waiting_since.is_not(None))
        .order_by(*order)
        .limit(LONGEST_WAITING)
    )


def longest_waiting(session: Session, actor: Actor) -> list[Waiting]:
    """The conversations (open or pending) whose customers have waited longest for a
    person, among those `actor` may see."""
    # One limited index walk per status; a single walk over both would sort them all.
    parts = [_waiting_ids(session, actor, s).subquery() for s in ACTIVE]
    ids = union_all(*(select(p.c.id) for p in parts)).subquery()
    assignee = aliased(User)
    rows = session.execute(
        select(
            Conversation.id,
            Conversation.status,
            Conversation.waiting_since,
            Contact.name,
            Contact.business_app_name,
            Contact.profile_name,
            Contact.phone_e164,
            Channel.name,
            assignee.name,
            Team.name,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(Channel, Channel.id == Conversation.channel_id)
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .where(Conversation.id.in_(select(ids.c.id)), conversation_scope(actor))
    ).all()
    found = [
        Waiting(
            conversation_id=r[0],
            status=r[1],
            waiting_since=r[2],
            contact_name=r[3] or r[4] or r[5] or r[6] or "",
            contact_phone=r[6],
            channel_name=r[7] or "",
            assignee_name=r[8],
            team_name=r[9],
        )
        for r in rows
    ]
    found.sort(key=lambda w: (w.waiting_since, w.conversation_id))
    return found[:LONGEST_WAITING]


def agents(session: Session, workspace_id: int) -> dict[str, list[str]]:
    """The workspace's active members by availability (online, away, offline)."""
    out: dict[str, list[str]] = {a: [] for a in AVAILABILITIES}
    rows = session.execute(
        select(User.name, User.availability)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.workspace_id == workspace_id,
            Membership.is_active.is_(True),
            User.is_active.is_(True),
        )
        .order_by(func.lower(User.name), User.id)
    )
    for name, availability in rows:
        out.get(availability, out["offline"]).append(name)
    return out


# -- today against the same weekday last week ------------------------------------------------


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime


def windows(now: dt.datetime, zone: zoneinfo.ZoneInfo) -> tuple[Window, Window]:
    """Today (all of it: a fact stamped by Meta's clock a moment ahead of ours still
    counts), and the same weekday a week earlier from its midnight to the same local time
    of day as `now` (a week earlier may have had another UTC offset)."""
    local = now.astimezone(zone)
    today = local.date()
    before = today - dt.timedelta(days=7)

    def at(day: dt.date, time: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, time, tzinfo=zone).astimezone(dt.UTC)

    time_of_day = local.time().replace(tzinfo=None)
    return (
        Window(at(today, dt.time()), at(today + dt.timedelta(days=1), dt.time())),
        Window(at(before, dt.time()), at(before, time_of_day)),
    )


_COUNTED = (Kind.OPENED.value, Kind.RESOLVED.value, Kind.MESSAGE.value)


def _figures(session: Session, workspace_id: int, window: Window) -> dict[str, float | None]:
    f = ReportFact
    inside = (f.workspace_id == workspace_id, f.at >= window.start, f.at < window.end)
    counts = {
        (kind, label, source): int(n or 0)
        for kind, label, source, n in session.execute(
            select(f.kind, f.label, f.source, func.sum(f.count))
            .where(*inside, f.kind.in_(_COUNTED))
            .group_by(f.kind, f.label, f.source)
        )
    }
    waits = [
        float(s or 0.0)
        for s in session.scalars(
            select(f.seconds).where(
                *inside, f.kind == Kind.FIRST_RESPONSE.value, f.seconds.is_not(None)
            )
        )
    ]

    def total(kind: str, *, label: str | None = None, source: str | None = None) -> float:
        return float(
            sum(
                n
                for (k, lab, src), n in counts.items()
                if k == kind and label in (None, lab) and source in (None, src)
            )
        )

    return {
        "new": total(Kind.OPENED.value, label="new"),
        "resolved": total(Kind.RESOLVED.value),
        "received": total(Kind.MESSAGE.value, source=MessageSource.CUSTOMER.value),
        "first_response": statistics.median(waits) if waits else None,
    }


def compared(
    session: Session, workspace_id: int, today: Window, last_week: Window
) -> list[Comparison]:
    """New conversations, resolved, messages received and the median first response,
    today so far and on the same weekday last week up to the same time of day."""
    a = _figures(session, workspace_id, today)
    b = _figures(session, workspace_id, last_week)
    kinds = {"first_response": "seconds"}
    return [
        Comparison(key, a[key], b[key], kinds.get(key, "number"))
        for key in ("new", "resolved", "received", "first_response")
    ]


# -- the whole dashboard ---------------------------------------------------------------------


def zone_of(session: Session, workspace_id: int, timezone: str | None = None) -> zoneinfo.ZoneInfo:
    if timezone is None:
        timezone = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    try:
        return zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def dashboard(
    session: Session,
    actor: Actor,
    *,
    timezone: str | None = None,
    now: dt.datetime | None = None,
) -> Dashboard:
    """The dashboard as `actor` sees it: the conversations they may see; today's figures
    for the whole workspace (reports.view). Days in the workspace's time zone."""
    now = now or utcnow()
    zone = zone_of(session, actor.workspace_id, timezone)
    open_, unassigned, pending = _counts(session, actor)
    today, last_week = windows(now, zone)
    return Dashboard(
        open=open_,
        unassigned=unassigned,
        pending=pending,
        longest_waiting=longest_waiting(session, actor),
        agents=agents(session, actor.workspace_id),
        today=compared(session, actor.workspace_id, today, last_week),
        now=now,
        day=today.start.astimezone(zone).date(),
        last_week_day=last_week.start.astimezone(zone).date(),
        last_week_until=last_week.end,
    )
