"""Conversations (one per contact and channel) and the messages in them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, BigIntPK, IdMixin, JSONType, TimestampMixin, WorkspaceOwned, utcnow


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageSource(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BUSINESS_APP = "business_app"  # echoes of what the owner sent from the phone
    BOT = "bot"
    BROADCAST = "broadcast"
    API = "api"
    HISTORY = "history"  # imported from the Business app's chat history


class MessageStatus(enum.StrEnum):
    RECEIVED = "received"  # inbound
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    CANCELLED = "cancelled"


# Statuses only move forward along this order: a late "delivered" never undoes "read".
# "failed" ranks above "sent" (a send can fail after Meta accepted it) but below
# "delivered": a message the phone has received did not fail.
STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.FAILED: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.READ: 5,
    MessageStatus.PLAYED: 6,
}


class Conversation(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel_id", "contact_id"),
        Index("ix_conversations_inbox", "workspace_id", "status", "last_activity_at"),
        Index("ix_conversations_assignee", "workspace_id", "assignee_id", "last_activity_at"),
    )

    # The number's (and the contact's) workspace: their foreign keys imply it, and
    # deleting the workspace deletes both (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ConversationStatus.OPEN.value)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    snoozed_until: Mapped[dt.datetime | None]
    # Latest message time by Meta's clock, used for sorting the inbox.
    last_activity_at: Mapped[dt.datetime | None]
    # Since when the customer has been waiting for a human answer (null: not waiting).
    waiting_since: Mapped[dt.datetime | None]
    # The last message the customer sent, which opened the service window; echoes never move it.
    last_inbound_at: Mapped[dt.datetime | None]
    # When the customer-service window closes (24 h, or 72 h from a free entry point).
    window_expires_at: Mapped[dt.datetime | None]
    unread_count: Mapped[int] = mapped_column(default=0)
    last_message_id: Mapped[int | None] = mapped_column()
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    last_message_source: Mapped[str | None] = mapped_column(String(16))
    bot_paused: Mapped[bool] = mapped_column(default=False)
    # A pause that ends by itself (the owner answered from the phone); None: until someone
    # turns the bot back on. Read through `bot_is_paused`.
    bot_paused_until: Mapped[dt.datetime | None]
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The current cycle, for reports: when the conversation last began or reopened, and
    # when the business first answered in it (None: not yet). History never sets them.
    opened_at: Mapped[dt.datetime | None]
    first_response_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def bot_is_paused(conversation: Conversation, now: dt.datetime) -> bool:
    """Whether bots and workflows keep out of the conversation now: paused by someone, or
    for a while after the owner answered from the phone."""
    if not conversation.bot_paused:
        return False
    return conversation.bot_paused_until is None or conversation.bot_paused_until > now


class Message(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_time", "conversation_id", "timestamp", "id"),
        Index("ix_messages_workspace_time", "workspace_id", "timestamp"),
    )

    # The conversation's workspace, number and contact, copied for queries. Only the
    # conversation has a foreign key: it implies the other three, and deleting any of them
    # deletes the conversation and with it its messages (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    channel_id: Mapped[int] = mapped_column(BigIntPK)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigIntPK, index=True)
    # Meta's message id. Null only while an outgoing message waits in the outbox.
    wamid: Mapped[str | None] = mapped_column(String(255), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(32))
    # The type-specific object as on the wire (text, image, location, ...), normalised.
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Plain text for previews and search (body, caption, title...).
    text: Mapped[str | None] = mapped_column(Text)
    # Meta's timestamp (when the message was sent), not when Puente processed it.
    timestamp: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[dt.datetime | None]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reply_to_wamid: Mapped[str | None] = mapped_column(String(255))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    referral: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    edited: Mapped[bool] = mapped_column(default=False)
    revoked: Mapped[bool] = mapped_column(default=False)
    # Earlier versions of an edited or revoked message: [{"content":..., "text":..., "at":...}].
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    sender_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Raw wire object for types Puente does not understand yet (and for audit).
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class StatusEvent(WorkspaceOwned, IdMixin, Base):
    """Every status webhook as received, so a status that arrives before its message
    (or for a message sent elsewhere) is kept and applied when the message appears."""

    __tablename__ = "status_events"
    __table_args__ = (UniqueConstraint("wamid", "status"),)

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    wamid: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16))
    timestamp: Mapped[dt.datetime]
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    callback_data: Mapped[str | None] = mapped_column(String(512))
    applied: Mapped[bool] = mapped_column(default=False)


class Media(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A media file referenced by a message, downloaded in the background.

    Files are content-addressed: stored under data_dir/media/<sha256[:2]>/<sha256>.
    """

    __tablename__ = "media"
    __table_args__ = (
        UniqueConstraint("channel_id", "meta_media_id"),
        # The media worker polls for pending rows that are due.
        Index("ix_media_due", "state", "next_attempt_at"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    meta_media_id: Mapped[str | None] = mapped_column(String(128))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    file_size: Mapped[int | None]
    filename: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|stored|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class PendingMessageOp(WorkspaceOwned, IdMixin, Base):
    """A change to a message that arrived before the message itself (an edit, a revoke,
    the media completing a history placeholder). Applied and deleted when the message
    with `target_wamid` is stored, so the result is the same in any arrival order."""

    __tablename__ = "pending_message_ops"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # Indexed: each processed batch asks which targets of its channel are still waiting.
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    target_wamid: Mapped[str] = mapped_column(String(255), index=True)
    # The edit's or revoke's own wamid; for media completions "<target>#media".
    op_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # edit | revoke | media
    timestamp: Mapped[dt.datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# -- collaboration (the team inbox) ------------------------------------------------------


class Note(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A private note agents leave on a conversation; never sent to the customer."""

    __tablename__ = "conversation_notes"
    __table_args__ = (Index("ix_conversation_notes_conversation", "conversation_id", "created_at"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)


class Mention(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "note_mentions"
    __table_args__ = (UniqueConstraint("note_id", "user_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    note_id: Mapped[int] = mapped_column(ForeignKey("conversation_notes.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


# The partial unique index's condition, literal so PostgreSQL can match ON CONFLICT to it.
UNREAD_MESSAGE = "kind = 'message' AND read_at IS NULL"


class Notification(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """Something an agent should notice: an assignment, a mention, a new message."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user", "user_id", "read_at", "created_at"),
        # New messages of one conversation collapse into one unread notification: the
        # upsert in conversations.notifications relies on this index on both engines.
        Index(
            "uq_notifications_unread_message",
            "user_id",
            "conversation_id",
            unique=True,
            sqlite_where=sql_text(UNREAD_MESSAGE),
            postgresql_where=sql_text(UNREAD_MESSAGE),
        ),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # assigned | mention | message
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(String(300), default="")
    # How many new messages a collapsed "message" notification stands for.
    message_count: Mapped[int] = mapped_column(default=1, server_default="1")
    read_at: Mapped[dt.datetime | None]


class ConversationEvent(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """The conversation's activity timeline: assignments, status changes, labels, bot."""

    __tablename__ = "conversation_events"
    __table_args__ = (
        Index("ix_conversation_events_conversation", "conversation_id", "created_at"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Snippet(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A canned response, shared (owner_id null) or personal, inserted with `/shortcut`."""

    __tablename__ = "snippets"
    __table_args__ = (Index("ix_snippets_workspace", "workspace_id", "shortcut"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ComposerSubmission(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """The browser's key for one press of "Send", so a retried request never sends twice."""

    __tablename__ = "composer_submissions"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))


# Indexes the inbox list needs at scale (100,000s of conversations per workspace): the
# "any status" view in activity order, and the tab counts (with the team scope of agents)
# read from the index alone.
Index("ix_conversations_activity", Conversation.workspace_id, Conversation.last_activity_at)
Index(
    "ix_conversations_counts",
    Conversation.workspace_id,
    Conversation.status,
    Conversation.assignee_id,
    Conversation.team_id,
)
