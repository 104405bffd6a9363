"""The away messages' table (apart from away.py, so the table list in db/models.py does
not import the outbox)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, WorkspaceOwned


class AwayMessageSent(WorkspaceOwned, IdMixin, Base):
    """When a number last sent its away message to a contact: one row per pair, so two
    workers storing two messages of the same customer cannot both send it."""

    __tablename__ = "away_messages_sent"
    __table_args__ = (UniqueConstraint("channel_id", "contact_id"),)

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    sent_at: Mapped[dt.datetime]
