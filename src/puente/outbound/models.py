"""The outbox: every outgoing message is a durable row before anything is sent."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, BigIntPK, IdMixin, JSONType, TimestampMixin, WorkspaceOwned, utcnow


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a lane; Meta may or may not have accepted it
    SENT = "sent"  # Meta accepted it (later ticks live on the message)
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A broadcast's item while the broadcast is paused: lanes skip it until resumed.
    HELD = "held"


class OutboxItem(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_lane", "channel_id", "state", "priority", "next_attempt_at", "id"),
        # The claim's "no earlier queued item in this conversation" check.
        Index("ix_outbox_conversation", "conversation_id", "state", "id"),
    )

    # The message's workspace, number and conversation, copied for the lanes' indexes. No
    # foreign keys of their own: the message's imply them, and deleting any of the three
    # deletes the message and with it this row (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    channel_id: Mapped[int] = mapped_column(BigIntPK)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    conversation_id: Mapped[int] = mapped_column(BigIntPK)
    # Lower goes first: agents' replies (0) overtake broadcasts (10).
    priority: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.QUEUED.value)
    # The exact Graph API request body, built when the message was queued.
    payload: Mapped[dict[str, Any]] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None]
    sent_at: Mapped[dt.datetime | None]
    # When the current attempt was handed to HTTP (committed before the request is
    # written). A SENDING item without it was only claimed: provably never sent, so it
    # goes back to the queue when its lane's claim lapses.
    handed_at: Mapped[dt.datetime | None]
    # Set for a broadcast's messages, so pause, resume and cancel touch them in one update.
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="SET NULL"), index=True
    )


class TemplateStatus(enum.StrEnum):
    """Meta's review and health states (whatsapp-protocol.md §9), plus DRAFT for local-only."""

    DRAFT = "DRAFT"  # checked locally, not submitted to Meta
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    FLAGGED = "FLAGGED"
    IN_APPEAL = "IN_APPEAL"
    LOCKED = "LOCKED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    ARCHIVED = "ARCHIVED"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"


class MessageTemplate(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """One language variant of a WhatsApp message template. Templates belong to a WABA,
    so every number of that WABA can send them; the row is per workspace and WABA."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("workspace_id", "waba_id", "name", "language"),
        Index("ix_message_templates_meta_id", "meta_id"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    waba_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    # Meta's id for this language variant (hsm_id); null while a draft.
    meta_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=TemplateStatus.DRAFT.value)
    # Why Meta rejected, paused or disabled it, in Meta's words.
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[dt.datetime | None]
    parameter_format: Mapped[str] = mapped_column(String(16), default="positional")
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    quality: Mapped[str | None] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_synced_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BroadcastState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waits for its start time
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RecipientState(enum.StrEnum):
    """Where a recipient is in planning; once QUEUED, what people see follows the message."""

    PENDING = "pending"  # planned; no message yet (not started, or waiting for the tier)
    QUEUED = "queued"  # has its message in the outbox
    SKIPPED = "skipped"  # refused before sending, with the reason (opted out, unknown, ...)
    CANCELLED = "cancelled"


class Broadcast(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """One template sent to an audience, with one BroadcastRecipient row per person."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_workspace_state", "workspace_id", "state"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(16))
    template_category: Mapped[str] = mapped_column(String(32))
    # Target ("body.1", "header.image", "button.0") -> value with {field|fallback} parts.
    variables: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # How the audience was chosen: {"kind": "tags", "tags": [...]} and the like.
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Rows of an uploaded CSV that did not become recipients: [{"line", "problem"}].
    report: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    estimate: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=BroadcastState.SCHEDULED.value)
    scheduled_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # Why recipients are waiting (messaging-limit tier reached), shown on the page.
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    total: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BroadcastRecipient(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        Index("ix_broadcast_recipients_state", "broadcast_id", "state", "id"),
        Index("ix_broadcast_recipients_contact", "contact_id", "replied_at"),
    )

    # The broadcast's workspace; its foreign key is the broadcast's (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    # Null for a contact id that does not exist in the workspace (skipped, with the reason).
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    phone: Mapped[str | None] = mapped_column(String(32))
    # The template's values for this person, resolved when the broadcast was planned.
    values: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=RecipientState.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    line: Mapped[int | None]  # the CSV line it came from
    replied_at: Mapped[dt.datetime | None]
