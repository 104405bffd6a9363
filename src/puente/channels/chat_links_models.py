"""Chat links of a number (`wa.me` links with prefilled text and a tracking reference) and
the conversations each one started."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, BigIntPK, IdMixin, TimestampMixin, WorkspaceOwned, utcnow


class ChatLink(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A `wa.me` link to one number. Its prefilled text ends with the reference
    "(ref: CODE)"; a conversation whose first message carries the code counts for it."""

    __tablename__ = "chat_links"
    __table_args__ = (UniqueConstraint("channel_id", "code", name="uq_chat_links_code"),)

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    # What the customer finds written when the chat opens, before the reference.
    text: Mapped[str] = mapped_column(Text, default="")
    code: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatLinkStart(WorkspaceOwned, IdMixin, Base):
    """A conversation a chat link started: counted once per link and conversation."""

    __tablename__ = "chat_link_starts"
    __table_args__ = (
        UniqueConstraint("link_id", "conversation_id", name="uq_chat_link_starts_conversation"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    link_id: Mapped[int] = mapped_column(ForeignKey("chat_links.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigIntPK)
    message_id: Mapped[int] = mapped_column(BigIntPK)
    # How the reference came: "text" (the prefilled message) or "referral" (Meta's).
    via: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
