"""The knowledge-base bot's tables: question-and-answer entries, the phrasings a customer
may ask them in, and the bot's memory of each conversation."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from puente.automation.kb_index import create_search_index, drop_search_index
from puente.db.base import Base, BigIntPK, IdMixin, TimestampMixin, WorkspaceOwned, utcnow


class KbLanguage(enum.StrEnum):
    ES = "es"
    EN = "en"


class KbEntry(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "kb_entries"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    language: Mapped[str] = mapped_column(String(2), default=KbLanguage.ES.value)
    answer: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The full-text index of the phrasings is built beside kb_phrasings by hand (see
# automation/kb_index.py and migration 0007), since no model can describe it: an FTS5
# virtual table and its shadow tables on SQLite, a generated tsvector column and its GIN
# index on PostgreSQL. The schema comparison (migrations/env.py) leaves out what is named
# here under "unmodelled".
FTS_TABLE = "kb_phrasings_fts"
UNMODELLED = (
    FTS_TABLE,
    *(f"{FTS_TABLE}_{shadow}" for shadow in ("data", "idx", "content", "docsize", "config")),
    "kb_phrasings.search_vector",
    "ix_kb_phrasings_search_vector",
)


class KbPhrasing(WorkspaceOwned, IdMixin, Base):
    """One way of asking an entry's question. The entry's language is copied here because
    PostgreSQL builds each phrasing's search vector from its own row."""

    __tablename__ = "kb_phrasings"
    __table_args__ = ({"info": {"unmodelled": UNMODELLED}},)

    # The entry's workspace; its foreign key implies it (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("kb_entries.id", ondelete="CASCADE"), index=True
    )
    language: Mapped[str] = mapped_column(String(2))
    text: Mapped[str] = mapped_column(String(500))
    position: Mapped[int] = mapped_column(default=0)


event.listen(KbPhrasing.__table__, "after_create", create_search_index)
event.listen(KbPhrasing.__table__, "after_drop", drop_search_index)


class KbConversation(WorkspaceOwned, Base):
    """What the bot remembers of a conversation: how many questions in a row it could not
    answer (a handoff resets it)."""

    __tablename__ = "kb_conversations"
    __table_args__ = (Index("ix_kb_conversations_workspace", "workspace_id"),)

    conversation_id: Mapped[int] = mapped_column(
        BigIntPK,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    # The conversation's workspace, implied by its foreign key (docs/decisions/0006).
    workspace_id: Mapped[int] = mapped_column(BigIntPK)
    unanswered: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
