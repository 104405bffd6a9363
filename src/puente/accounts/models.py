"""Tables for workspaces, people and credentials."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, JSONType, TimestampMixin, WorkspaceOwned, utcnow


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class Workspace(IdMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(10))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    availability: Mapped[str] = mapped_column(String(16), default="offline")
    # When the person last chose their availability themselves. Until they do, signing in
    # (or opening the inbox) puts them online and signing out offline, as they come and go.
    availability_chosen_at: Mapped[dt.datetime | None]
    # Since when the availability has been what it is (the Users report's durations).
    availability_since: Mapped[dt.datetime | None]
    # When one of the person's browser tabs was last open (the inbox stream says so while
    # it runs) and when they last did something in one: a sweep turns them offline once
    # no tab has been seen for a while, and away once idle (accounts.presence).
    last_seen_at: Mapped[dt.datetime | None]
    last_active_at: Mapped[dt.datetime | None]
    # {"message.browser": false, ...}: a missing key means on (see conversations.notifications).
    notification_prefs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(500))
    # The secret above is only trusted once the user proved it with a first code.
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    # The TOTP time step of the last code accepted: a code is refused unless its step is
    # newer, so one code cannot be used twice within the minute or so it stays valid.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    last_login_at: Mapped[dt.datetime | None]


class Membership(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A user's place in a workspace: the role decides what the authorization gate allows."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT.value)
    # Overrides of the role's default permissions, e.g. {"conversations.scope": "team"}.
    permissions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)


class Team(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))


class TeamMember(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class ApiToken(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A bearer token for the REST API. Only a hash is kept; the token is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_workspace", "workspace_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    # The first characters, shown in lists so a person can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        return self.revoked_at is None or self.revoked_at > (now or utcnow())


class WebSession(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A browser session kept on the server, so logout, rotation and deactivation take
    effect on the next request. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # "full" once every login step passed; "mfa" while the TOTP code is awaited.
    stage: Mapped[str] = mapped_column(String(8), default="full")
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class LoginAttempt(IdMixin, Base):
    """Every password or code check, for throttling and lockout across processes."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    succeeded: Mapped[bool] = mapped_column(default=False)


class RecoveryCode(IdMixin, Base):
    """A single-use two-factor recovery code, stored hashed."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None]


class AuthLink(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """An emailed single-use link: an invitation to a workspace or a password reset."""

    __tablename__ = "auth_links"

    kind: Mapped[str] = mapped_column(String(8))  # "invite" | "reset"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class OutgoingMail(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """Mail Puente sends. Without SMTP settings it stays here and /dev/mail shows it."""

    __tablename__ = "outgoing_mail"

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))


class AuditEntry(WorkspaceOwned, IdMixin, Base):
    """One line of the append-only audit log. Each entry carries the hash of the one
    before it in the same workspace, so `puente audit verify` finds any edit, gap or swap."""

    __tablename__ = "audit_entries"
    __table_args__ = (UniqueConstraint("workspace_id", "seq"),)

    # Null for events that belong to no workspace (a failed login for an unknown address).
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    seq: Mapped[int]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column()
    # Who did it, as text that survives the user's deletion ("ana@example.com", "token pnt_abc").
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
