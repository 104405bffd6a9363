"""Imports every table so that Base.metadata is complete (for Alembic and tests)."""

from puente.accounts.models import (
    ApiToken,
    AuditEntry,
    AuthLink,
    LoginAttempt,
    Membership,
    OutgoingMail,
    RecoveryCode,
    Team,
    TeamMember,
    User,
    WebSession,
    Workspace,
)
from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactIdentity, ContactTag, Tag
from puente.conversations.models import Conversation, Media, Message, StatusEvent
from puente.db.base import Base
from puente.ingest.models import WebhookChange, WebhookEvent
from puente.outbound.models import OutboxItem

__all__ = [
    "ApiToken",
    "AuditEntry",
    "AuthLink",
    "Base",
    "Channel",
    "Contact",
    "ContactIdentity",
    "ContactTag",
    "Conversation",
    "LoginAttempt",
    "Media",
    "Membership",
    "Message",
    "OutboxItem",
    "OutgoingMail",
    "RecoveryCode",
    "StatusEvent",
    "Tag",
    "Team",
    "TeamMember",
    "User",
    "WebSession",
    "WebhookChange",
    "WebhookEvent",
    "Workspace",
]
