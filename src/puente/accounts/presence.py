"""Agents' availability (online / away / offline), shown live to their colleagues."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, User
from puente.accounts.service import do_update_profile
from puente.events import DomainEvent, publish


def do_set_availability(session: Session, user: User, availability: str) -> bool:
    """Set the user's availability; after commit every workspace they belong to hears of
    it (the assignee picker and the agent list update). False when nothing changed."""
    before = user.availability
    do_update_profile(session, user, availability=availability)
    if user.availability == before:
        return False
    workspaces = session.scalars(
        select(Membership.workspace_id).where(
            Membership.user_id == user.id, Membership.is_active.is_(True)
        )
    ).all()
    for workspace_id in workspaces:
        publish(
            session,
            DomainEvent(
                workspace_id=workspace_id,
                kind="presence.changed",
                data={"user_id": user.id, "availability": user.availability},
            ),
        )
    return True
