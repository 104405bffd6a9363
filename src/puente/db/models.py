"""Imports every table so that Base.metadata is complete (for Alembic and tests)."""

from puente.accounts.models import ApiToken, Membership, Team, TeamMember, User, Workspace
from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactIdentity, ContactTag, Tag
from puente.conversations.models import Conversation, Media, Message, StatusEvent
from puente.db.base import Base
from puente.ingest.models import WebhookChange, WebhookEvent
from puente.outbound.models import OutboxItem

__all__ = [
    "ApiToken",
    "Base",
    "Channel",
    "Contact",
    "ContactIdentity",
    "ContactTag",
    "Conversation",
    "Media",
    "Membership",
    "Message",
    "OutboxItem",
    "StatusEvent",
    "Tag",
    "Team",
    "TeamMember",
    "User",
    "WebhookChange",
    "WebhookEvent",
    "Workspace",
]
