"""Full-text search over message text: SQLite FTS5 (an external-content index kept in
step by triggers) or PostgreSQL full-text (a GIN expression index). Results are limited
to the conversations the searcher may see."""

from __future__ import annotations

import re
import threading

from sqlalchemy import Engine, column, inspect, select, table, text
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor, conversation_scope
from puente.conversations.models import Conversation, Message

MAX_RESULTS = 50
_WORD = re.compile(r"\w+", re.UNICODE)
_ready: set[str] = set()
_ready_lock = threading.Lock()

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5("
    "text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_ai AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
)
PG_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_messages_fulltext ON messages "
    "USING gin (to_tsvector('simple', coalesce(text, '')))"
)


def ensure_search_index(engine: Engine) -> bool:
    """Create the index (and fill it from existing messages) once per database.
    Returns False when the messages table does not exist yet."""
    key = str(engine.url)
    with _ready_lock:
        if key in _ready:
            return True
    if not inspect(engine).has_table("messages"):
        return False
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            existed = bool(
                conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='messages_fts'"
                ).first()
            )
            for ddl in SQLITE_DDL:
                conn.exec_driver_sql(ddl)
            if not existed:
                conn.exec_driver_sql("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
        elif engine.dialect.name == "postgresql":
            conn.exec_driver_sql(PG_DDL)
    with _ready_lock:
        _ready.add(key)
    return True


# PostgreSQL sorts NULL first in a descending index; the inbox lists latest activity
# first with conversations that never had any last, so it needs indexes in exactly that
# order or it sorts every open conversation on each page. SQLite cannot declare NULLS
# LAST in an index (and needs none: it sorts NULL lowest), so these live here rather
# than in the model.
PG_INBOX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_conversations_inbox_order ON conversations "
    "(workspace_id, status, last_activity_at DESC NULLS LAST, id DESC)",
    "CREATE INDEX IF NOT EXISTS ix_conversations_activity_order ON conversations "
    "(workspace_id, last_activity_at DESC NULLS LAST, id DESC)",
)


def ensure_inbox_indexes(engine: Engine) -> None:
    """The PostgreSQL-only orderings of the inbox list (see PG_INBOX_DDL)."""
    if engine.dialect.name != "postgresql" or not inspect(engine).has_table("conversations"):
        return
    with engine.begin() as conn:
        for ddl in PG_INBOX_DDL:
            conn.exec_driver_sql(ddl)


def forget_search_index(engine: Engine) -> None:
    """For tests and tools that drop the tables: the next search creates the index again."""
    with _ready_lock:
        _ready.discard(str(engine.url))


def words_of(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:8]


def search_messages(
    session: Session, actor: Actor, query: str, *, limit: int = MAX_RESULTS
) -> list[Message]:
    """Messages whose text has every word of `query` (newest first), in conversations
    the actor may see."""
    words = words_of(query)
    if not words:
        return []
    bind = session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    assert isinstance(engine, Engine)
    ensure_search_index(engine)
    # Newest first, stopping at `limit` visible hits: the index is read in id order and
    # each hit's conversation is checked against the gate's scope as it comes.
    ids = (
        select(Message.id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.workspace_id == actor.workspace_id, conversation_scope(actor))
    )
    if engine.dialect.name == "sqlite":
        # Each word as a quoted prefix term: no FTS5 syntax from the user gets through.
        match = " ".join('"' + w.replace('"', "") + '"*' for w in words)
        fts = table("messages_fts", column("rowid"))
        ids = (
            ids.join(fts, fts.c.rowid == Message.id)
            .where(text("messages_fts MATCH :match"))
            .order_by(fts.c.rowid.desc())
            .params(match=match)
        )
    else:
        ids = (
            ids.where(
                text(
                    "to_tsvector('simple', coalesce(messages.text, '')) @@ "
                    "to_tsquery('simple', :tsq)"
                )
            )
            .order_by(Message.id.desc())
            .params(tsq=" & ".join(w + ":*" for w in words))
        )
    found = list(session.scalars(ids.limit(limit)))
    if not found:
        return []
    return list(
        session.scalars(select(Message).where(Message.id.in_(found)).order_by(Message.id.desc()))
    )
