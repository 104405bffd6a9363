"""Agents' availability (online / away / offline), shown live to their colleagues.

Until a person chooses it themselves, it follows what they do: signing in or using a tab
makes them online, idling past their workspace's idle time makes them away, and closing
their last tab (no tab seen for `OFFLINE_AFTER`) or signing out makes them offline. The
times live on the user's row, so a sweep in any worker process sees every web process's
tabs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.models import Membership, User, Workspace
from puente.accounts.service import do_update_profile
from puente.db.base import utcnow
from puente.db.scope import unscoped
from puente.errors import InvalidInput
from puente.events import PresenceChanged, publish
from puente.jobs import skip_locked

# An open tab's stream says so at least this often (web/routes/presence.py).
SEEN_EVERY = dt.timedelta(seconds=30)
# No tab seen for this long: the last one closed. Three beats, so a reload (a second
# without a stream) or one late beat never turns anyone offline.
OFFLINE_AFTER = dt.timedelta(seconds=90)
# The workspace setting: minutes without activity before an agent is away (0: never).
IDLE_SETTING = "away_after_minutes"
DEFAULT_IDLE_MINUTES = 10
# The browser reports activity at most once a minute; a shorter idle time would turn a
# working agent away between two reports.
MIN_IDLE_MINUTES = 2
MAX_IDLE_MINUTES = 24 * 60


def do_set_availability(session: Session, user: User, availability: str) -> bool:
    """The person chooses their availability; it stays theirs across sign-ins. After commit
    every workspace they belong to hears of it (the assignee picker and the agent list
    update). False when nothing changed."""
    changed = _change(session, user, availability)
    if changed:
        user.availability_chosen_at = utcnow()
    return changed


def arriving(user: User) -> bool:
    """Whether `do_arrive` would put `user` online."""
    return user.availability_chosen_at is None and user.availability != "online"


def do_arrive(session: Session, user: User) -> bool:
    """Signing in, or opening the inbox, says the person is here: online, as Chatwoot and
    Wati show an agent who is using the inbox, unless they chose their availability."""
    now = utcnow()
    user.last_seen_at = user.last_active_at = now
    if not arriving(user):
        return False
    return _change(session, user, "online")


def do_leave(session: Session, user: User) -> bool:
    """Signing out: offline again, unless they chose their availability."""
    if user.availability_chosen_at is not None:
        return False
    return _change(session, user, "offline")


def _change(session: Session, user: User, availability: str) -> bool:
    before = user.availability
    do_update_profile(session, user, availability=availability)
    if user.availability == before:
        return False
    with unscoped(session, "a person's presence shows in each of their workspaces"):
        workspaces = session.scalars(
            select(Membership.workspace_id).where(
                Membership.user_id == user.id, Membership.is_active.is_(True)
            )
        ).all()
    for workspace_id in workspaces:
        publish(
            session,
            PresenceChanged(
                workspace_id=workspace_id, user_id=user.id, availability=user.availability
            ),
        )
    return True


# -- automatic: tabs, activity, idleness ---------------------------------------------------


def idle_minutes(workspace: Workspace) -> int:
    """Minutes without activity before the workspace's agents are away; 0 for never."""
    value = (workspace.settings or {}).get(IDLE_SETTING, DEFAULT_IDLE_MINUTES)
    return value if isinstance(value, int) else DEFAULT_IDLE_MINUTES


def do_set_idle_minutes(
    session: Session, actor: object, workspace: Workspace, minutes: int, *, ip: str | None = None
) -> None:
    """Set after how many minutes without activity the workspace's agents are away."""
    if minutes != 0 and not MIN_IDLE_MINUTES <= minutes <= MAX_IDLE_MINUTES:
        raise InvalidInput(
            "Choose from %(min)s to %(max)s minutes, or 0 to never mark anyone away.",
            params={"min": MIN_IDLE_MINUTES, "max": MAX_IDLE_MINUTES},
        )
    if idle_minutes(workspace) == minutes:
        return
    workspace.settings = {**(workspace.settings or {}), IDLE_SETTING: minutes}
    audit.record(
        session,
        workspace_id=workspace.id,
        actor=actor,
        action=audit.Action.SETTINGS_CHANGED,
        target="availability",
        details={IDLE_SETTING: minutes},
        ip=ip,
    )


def do_see_tab(session: Session, user: User, now: dt.datetime) -> bool:
    """One of the person's tabs is open (its stream started, or still runs). Someone the
    sweep had turned offline is back; True when that changed their availability."""
    user.last_seen_at = now
    if user.availability_chosen_at is None and user.availability == "offline":
        return _change(session, user, "online")
    return False


def do_report_activity(session: Session, user: User, now: dt.datetime) -> bool:
    """The person did something in a tab: online again unless they chose otherwise."""
    user.last_seen_at = user.last_active_at = now
    if user.availability_chosen_at is None and user.availability != "online":
        return _change(session, user, "online")
    return False


def _sweepable(now: dt.datetime) -> ColumnElement[bool]:
    """Who a sweep may change: automatic statuses whose tabs are gone, or online people
    idle for at least the shortest idle time (their workspaces' own is checked after)."""
    return and_(
        User.availability_chosen_at.is_(None),
        or_(
            and_(User.availability != "offline", User.last_seen_at < now - OFFLINE_AFTER),
            and_(
                User.availability == "online",
                User.last_active_at < now - dt.timedelta(minutes=MIN_IDLE_MINUTES),
            ),
        ),
    )


def presence_due(session: Session, now: dt.datetime) -> list[tuple[int, str]]:
    """(user id, new availability) for everyone a sweep would change now; read only."""
    with unscoped(session, "availability belongs to the person, across workspaces"):
        users = session.scalars(select(User).where(_sweepable(now)).order_by(User.id)).all()
        return _verdicts(session, users, now)


def do_sweep_presence(session: Session, now: dt.datetime, user_ids: Sequence[int]) -> int:
    """Turn offline the people whose last tab closed and away those idle too long, among
    `user_ids` (from `presence_due`), checked again under a row lock so two sweepers
    change each person once. Returns how many changed."""
    with unscoped(session, "availability belongs to the person, across workspaces"):
        users = session.scalars(
            skip_locked(
                session,
                select(User).where(User.id.in_(user_ids), _sweepable(now)).order_by(User.id),
            )
        ).all()
        changes = _verdicts(session, users, now)
        by_id = {u.id: u for u in users}
        return sum(_change(session, by_id[user_id], new) for user_id, new in changes)


def _verdicts(session: Session, users: Sequence[User], now: dt.datetime) -> list[tuple[int, str]]:
    idle = [u.id for u in users if not _tab_gone(u, now)]
    limits = _idle_limits(session, idle)
    verdicts = []
    for user in users:
        if _tab_gone(user, now):
            verdicts.append((user.id, "offline"))
            continue
        limit = limits.get(user.id)
        if limit and user.last_active_at and user.last_active_at < now - limit:
            verdicts.append((user.id, "away"))
    return verdicts


def _tab_gone(user: User, now: dt.datetime) -> bool:
    return user.last_seen_at is not None and user.last_seen_at < now - OFFLINE_AFTER


def _idle_limits(session: Session, user_ids: Sequence[int]) -> dict[int, dt.timedelta | None]:
    """Each person's idle time: the longest of their workspaces' (None: one of them
    never turns its agents away), so no workspace sees someone away sooner than it asks."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(Membership.user_id, Workspace)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Membership.user_id.in_(user_ids), Membership.is_active.is_(True))
    ).tuples()
    minutes: dict[int, list[int]] = {}
    for user_id, workspace in rows:
        minutes.setdefault(user_id, []).append(idle_minutes(workspace))
    return {
        user_id: None if 0 in values else dt.timedelta(minutes=max(values))
        for user_id, values in minutes.items()
    }
