"""API tokens: random bearer secrets, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from puente.accounts.models import ApiToken
from puente.db.base import utcnow

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
    unknown = [s for s in scopes if s != "*" and s not in ALL_SCOPES]
    if unknown:
        from puente.errors import InvalidInput

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
    """The live token for this secret, with its last-used time recorded."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if row is None or not row.is_usable():
        return None
    now = utcnow()
    # Record use at most once a minute so busy API clients do not write on every call.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        row.last_used_at = now
    return row


def has_scope(token: ApiToken, scope: str) -> bool:
    return "*" in token.scopes or scope in token.scopes
