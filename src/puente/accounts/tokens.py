"""API tokens: random bearer secrets, stored only as a SHA-256 hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from puente.accounts.models import ApiToken
from puente.db.base import utcnow
from puente.errors import InvalidInput, NotFound

TOKEN_PREFIX = "pnt_"  # noqa: S105 (a prefix, not a secret)
# Scopes a token may carry; "*" grants them all.
ALL_SCOPES = (
    "channels:read",
    "channels:write",
    "contacts:read",
    "contacts:write",
    "conversations:read",
    "conversations:write",
    "messages:read",
    "messages:send",
    "templates:read",
    "templates:write",
    "broadcasts:read",
    "broadcasts:write",
    "events:read",
    "events:write",
    "reports:read",
    "automation:read",
    "automation:write",
    "settings:read",
    "settings:write",
    "audit:read",
    "privacy:write",
)


def hash_token(token: str) -> str:
    # Tokens carry 190+ bits of randomness, so a fast hash is enough to keep them safe at rest.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def do_create_token(
    session: Session,
    *,
    workspace_id: int,
    name: str,
    scopes: list[str] | None = None,
    created_by_id: int | None = None,
) -> IssuedToken:
    scopes = scopes or ["*"]
    name = name.strip()[:120]
    if not name:
        raise InvalidInput("give the token a name")
    unknown = [s for s in scopes if s != "*" and s not in ALL_SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scopes: {', '.join(unknown)}", details={"allowed": ALL_SCOPES})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        workspace_id=workspace_id,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(secret),
        scopes=scopes,
        created_by_id=created_by_id,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row, secret)


def access_token(session: Session, secret: str) -> ApiToken | None:
    """The live token for this secret (reads only; see `token_touch_due`)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if row is None or not row.is_usable():
        return None
    return row


def token_touch_due(token: ApiToken, now: dt.datetime) -> bool:
    # Record use at most once a minute so busy API clients do not write on every call.
    return token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60


def do_touch_token(session: Session, token_id: int, now: dt.datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def has_scope(token: ApiToken, scope: str) -> bool:
    return "*" in token.scopes or scope in token.scopes


def list_tokens(session: Session, workspace_id: int) -> list[ApiToken]:
    query = (
        select(ApiToken)
        .where(ApiToken.workspace_id == workspace_id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
    )
    return list(session.scalars(query))


def access_workspace_token(session: Session, workspace_id: int, token_id: int) -> ApiToken:
    row = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.workspace_id == workspace_id)
    )
    if row is None:
        raise NotFound("no such token")
    return row


def do_revoke_token(session: Session, workspace_id: int, token_id: int) -> ApiToken:
    row = access_workspace_token(session, workspace_id, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def do_issue_token_audited(
    session: Session,
    *,
    workspace_id: int,
    actor: object,
    name: str,
    scopes: list[str] | None,
    created_by_id: int | None = None,
    ip: str | None = None,
) -> IssuedToken:
    """Create a token and record it in the audit log (the secret itself is never logged)."""
    from puente.accounts import audit

    issued = do_create_token(
        session, workspace_id=workspace_id, name=name, scopes=scopes, created_by_id=created_by_id
    )
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=audit.Action.TOKEN_CREATED,
        target=f"token {issued.token.prefix}",
        details={"name": issued.token.name, "scopes": issued.token.scopes},
        ip=ip,
    )
    return issued


def do_revoke_token_audited(
    session: Session, *, workspace_id: int, token_id: int, actor: object, ip: str | None = None
) -> ApiToken:
    from puente.accounts import audit

    row = do_revoke_token(session, workspace_id, token_id)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=audit.Action.TOKEN_REVOKED,
        target=f"token {row.prefix}",
        details={"name": row.name},
        ip=ip,
    )
    return row
