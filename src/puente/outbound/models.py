"""The outbox: every outgoing message is a durable row before anything is sent."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, TimestampMixin, utcnow


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a lane; Meta may or may not have accepted it
    SENT = "sent"  # Meta accepted it (later ticks live on the message)
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxItem(IdMixin, TimestampMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_lane", "channel_id", "state", "priority", "next_attempt_at", "id"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
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
