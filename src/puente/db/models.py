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
from puente.channels.models import AppContactSync, Channel, ChannelSync, HistoryChunkSeen
from puente.contacts.models import (
    ConsentEvent,
    Contact,
    ContactConsent,
    ContactIdentity,
    ContactTag,
    Tag,
)
from puente.conversations.models import (
    Conversation,
    Media,
    Message,
    PendingMessageOp,
    StatusEvent,
)
from puente.db.base import Base
from puente.ingest.models import WebhookChange, WebhookEvent
from puente.outbound.models import MessageTemplate, OutboxItem

__all__ = [
    "ApiToken",
    "AppContactSync",
    "AuditEntry",
    "AuthLink",
    "Base",
    "Channel",
    "ChannelSync",
    "ConsentEvent",
    "Contact",
    "ContactConsent",
    "ContactIdentity",
    "ContactTag",
    "Conversation",
    "HistoryChunkSeen",
    "LoginAttempt",
    "Media",
    "Membership",
    "Message",
    "MessageTemplate",
    "OutboxItem",
    "OutgoingMail",
    "PendingMessageOp",
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
