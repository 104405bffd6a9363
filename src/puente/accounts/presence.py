"""Agents' availability (online / away / offline), shown live to their colleagues."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, User
from puente.accounts.service import do_update_profile
from puente.db.base import utcnow
from puente.db.scope import unscoped
from puente.events import PresenceChanged, publish


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
