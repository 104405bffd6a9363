"""Server-side browser sessions: created (rotated) at each login step, checked on every
request, revoked at logout, on password change and when a user is deactivated."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import String, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from puente.accounts.credentials import random_token, sha256_hex
from puente.accounts.models import Membership, TeamMember, User, WebSession, Workspace
from puente.db.base import utcnow
from puente.db.scope import unscoped

SESSION_LIFETIME = dt.timedelta(days=14)
IDLE_TIMEOUT = dt.timedelta(hours=12)
# A half-finished login (password given, code awaited) is short-lived.
MFA_STEP_LIFETIME = dt.timedelta(minutes=10)


def do_create_session(
    session: Session,
    *,
    user: User,
    workspace_id: int,
    stage: str = "full",
    ip: str | None = None,
    user_agent: str | None = None,
    replaces: str | None = None,
) -> str:
    """A new session; returns the cookie value. `replaces` (an old cookie value) is
    deleted so that every login step gets a fresh identifier."""
    if replaces:
        do_end_session(session, replaces)
    token = random_token()
    lifetime = MFA_STEP_LIFETIME if stage != "full" else SESSION_LIFETIME
    session.add(
        WebSession(
            token_hash=sha256_hex(token),
            user_id=user.id,
            workspace_id=workspace_id,
            stage=stage,
            expires_at=utcnow() + lifetime,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    session.flush()
    return token


def load_session(session: Session, token: str | None) -> WebSession | None:
    """The live session for a cookie value (reads only; see `session_touch_due`)."""
    if not token or len(token) > 200:
        return None
    with unscoped(session, "a sign-in is found by its cookie, before its workspace"):
        row = session.scalar(select(WebSession).where(WebSession.token_hash == sha256_hex(token)))
    return row if row is not None and _live(row) else None


@dataclass(frozen=True)
class SessionMember:
    """A live web session with its user, workspace, membership and the user's teams there."""

    session: WebSession
    user: User | None
    workspace: Workspace | None
    membership: Membership | None
    team_ids: frozenset[int]


def load_session_member(session: Session, token: str | None) -> SessionMember | None:
    """The live session for a cookie value with its user, workspace, membership and teams,
    in one statement (every page asks for all of them)."""
    if not token or len(token) > 200:
        return None
    teams = (
        select(func.aggregate_strings(cast(TeamMember.team_id, String), ","))
        .where(
            TeamMember.workspace_id == WebSession.workspace_id,
            TeamMember.user_id == WebSession.user_id,
        )
        .scalar_subquery()
    )
    found = session.execute(
        select(WebSession, User, Workspace, Membership, teams)
        .outerjoin(User, User.id == WebSession.user_id)
        .outerjoin(Workspace, Workspace.id == WebSession.workspace_id)
        .outerjoin(
            Membership,
            and_(
                Membership.workspace_id == WebSession.workspace_id,
                Membership.user_id == WebSession.user_id,
            ),
        )
        .where(WebSession.token_hash == sha256_hex(token))
    ).first()
    if found is None or not _live(found[0]):
        return None
    row, user, workspace, membership, team_ids = found
    ids = frozenset(int(t) for t in team_ids.split(",")) if team_ids else frozenset[int]()
    return SessionMember(row, user, workspace, membership, ids)


def _live(row: WebSession) -> bool:
    now = utcnow()
    return not (
        row.expires_at <= now or (row.stage == "full" and now - row.last_seen_at > IDLE_TIMEOUT)
    )


def session_touch_due(row: WebSession, now: dt.datetime) -> bool:
    # The idle timeout counts in hours; writing on every request would only add writes.
    return (now - row.last_seen_at).total_seconds() > 60


def do_touch_session(session: Session, session_id: int, now: dt.datetime) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now))


def do_end_session(session: Session, token: str) -> None:
    with unscoped(session, "a sign-in is found by its cookie, before its workspace"):
        session.execute(delete(WebSession).where(WebSession.token_hash == sha256_hex(token)))


def do_end_user_sessions(session: Session, user_id: int, *, keep: str | None = None) -> None:
    """Log a user out everywhere (except, optionally, the session in `keep`)."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep:
        query = query.where(WebSession.token_hash != sha256_hex(keep))
    with unscoped(session, "a person's sign-ins span their workspaces"):
        session.execute(query)


def do_purge_expired_sessions(session: Session) -> int:
    """Delete the sessions that can no longer sign anyone in (see `_live`): past their
    lifetime, or a full sign-in idle beyond the timeout."""
    now = utcnow()
    idle = and_(WebSession.stage == "full", WebSession.last_seen_at < now - IDLE_TIMEOUT)
    dead = delete(WebSession).where(or_(WebSession.expires_at <= now, idle))
    return int(getattr(session.execute(dead), "rowcount", 0) or 0)
