"""Full-text search over message text: SQLite FTS5 (an external-content index kept in
step by triggers) or PostgreSQL full-text (a stored tsvector column with a GIN index),
accents folded on both. Results are limited to the conversations the searcher may see.
Also the indexes of the inbox list's contact search box, orders and filters, created
at start (docs/decisions/0003)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Select, column, func, inspect, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor, conversation_scope
from puente.conversations.models import Conversation, Message

log = logging.getLogger(__name__)
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
# The inbox's search box looks for a piece of a contact's name or number anywhere in it
# (LIKE '%...%'), which reads every contact. A trigram index answers the same substring
# question from the index (case-insensitive, accents kept as typed).
_CONTACT_COLUMNS = "name, profile_name, business_app_name, wa_id"
_CONTACT_OLD = "old.name, old.profile_name, old.business_app_name, old.wa_id"
_CONTACT_NEW = "new.name, new.profile_name, new.business_app_name, new.wa_id"
SQLITE_CONTACT_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS contacts_fts USING fts5({_CONTACT_COLUMNS}, "
    "content='contacts', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS contacts_fts_ai AFTER INSERT ON contacts BEGIN "
    f"INSERT INTO contacts_fts(rowid, {_CONTACT_COLUMNS}) VALUES (new.id, {_CONTACT_NEW}); END",
    "CREATE TRIGGER IF NOT EXISTS contacts_fts_ad AFTER DELETE ON contacts BEGIN "
    f"INSERT INTO contacts_fts(contacts_fts, rowid, {_CONTACT_COLUMNS}) "
    f"VALUES ('delete', old.id, {_CONTACT_OLD}); END",
    f"CREATE TRIGGER IF NOT EXISTS contacts_fts_au AFTER UPDATE OF {_CONTACT_COLUMNS} "
    "ON contacts BEGIN "
    f"INSERT INTO contacts_fts(contacts_fts, rowid, {_CONTACT_COLUMNS}) "
    f"VALUES ('delete', old.id, {_CONTACT_OLD}); "
    f"INSERT INTO contacts_fts(rowid, {_CONTACT_COLUMNS}) VALUES (new.id, {_CONTACT_NEW}); END",
)
# PostgreSQL: a text search configuration that folds accents (people type "cancion" for
# "canción"; without the unaccent extension it only lowercases), a stored tsvector of each message in it, and a GIN index on that column.
# Stored rather than an expression index: walking the newest messages first (the usual
# plan for common words) would otherwise compute to_tsvector for every row it passes.
PG_SEARCH_CONFIG = "puente_search"
_FOLD_ACCENTS = (
    f"ALTER TEXT SEARCH CONFIGURATION {PG_SEARCH_CONFIG} ALTER MAPPING FOR "
    "asciiword, word, numword, asciihword, hword, numhword, "
    "hword_asciipart, hword_part, hword_numpart WITH unaccent, simple; "
)


def _pg_config_ddl(fold_accents: bool) -> str:
    # No IF NOT EXISTS for text search configurations; a concurrent start may win.
    return (
        "DO $$ BEGIN "
        f"CREATE TEXT SEARCH CONFIGURATION {PG_SEARCH_CONFIG} (COPY = pg_catalog.simple); "
        + (_FOLD_ACCENTS if fold_accents else "")
        + "EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL; END $$"
    )


PG_DDL = (
    "ALTER TABLE messages ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('{PG_SEARCH_CONFIG}'::regconfig, coalesce(text, ''))) STORED",
    "DROP INDEX IF EXISTS ix_messages_fulltext",
    "CREATE INDEX IF NOT EXISTS ix_messages_search_vector ON messages USING gin (search_vector)",
)
PG_CONTACT_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_contacts_search_trgm ON contacts USING gin ("
    "lower(name) gin_trgm_ops, lower(profile_name) gin_trgm_ops, "
    "lower(business_app_name) gin_trgm_ops, wa_id gin_trgm_ops)",
)


# Web and worker processes start together and each runs this DDL: on PostgreSQL two
# concurrent `CREATE INDEX IF NOT EXISTS` (or CREATE EXTENSION) collide on the catalog's
# unique name and one process dies. One advisory lock, held to each transaction's end,
# makes them take turns; the second then finds everything in place.
_DDL_LOCK_KEY = 0x70756E7465  # "punte"


@contextmanager
def _startup_ddl(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_DDL_LOCK_KEY})")
        yield conn


def _sqlite_table_exists(conn: Connection, name: str) -> bool:
    return bool(
        conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).first()
    )


def _pg_extension(engine: Engine, name: str) -> bool:
    """Create a PostgreSQL extension if it is missing. Both that Puente uses are trusted
    (the database owner may create them), but a role without that right still gets a
    working Puente: the refusal is logged and the feature degrades."""
    try:
        with _startup_ddl(engine) as conn:
            conn.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {name}")
        return True
    except DBAPIError as exc:
        log.warning("PostgreSQL extension %s not available: %s", name, exc)
        return False


def _ensure_pg_contact_index(engine: Engine) -> None:
    # Without pg_trgm the search box still works (a scan of the contacts).
    if not _pg_extension(engine, "pg_trgm"):
        return
    with _startup_ddl(engine) as conn:
        for ddl in PG_CONTACT_DDL:
            conn.exec_driver_sql(ddl)


def ensure_search_index(engine: Engine) -> bool:
    """Create the message and contact search indexes (and fill them from existing rows)
    once per database. Returns False when the tables do not exist yet."""
    key = str(engine.url)
    with _ready_lock:
        if key in _ready:
            return True
    found = inspect(engine)
    if not (found.has_table("messages") and found.has_table("contacts")):
        return False
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for name, ddl in (("messages_fts", SQLITE_DDL), ("contacts_fts", SQLITE_CONTACT_DDL)):
                existed = _sqlite_table_exists(conn, name)
                for statement in ddl:
                    conn.exec_driver_sql(statement)
                if not existed:
                    conn.exec_driver_sql(f"INSERT INTO {name}({name}) VALUES ('rebuild')")
    elif engine.dialect.name == "postgresql":
        fold_accents = _pg_extension(engine, "unaccent")
        with _startup_ddl(engine) as conn:
            for statement in (_pg_config_ddl(fold_accents), *PG_DDL):
                conn.exec_driver_sql(statement)
        _ensure_pg_contact_index(engine)
    with _ready_lock:
        _ready.add(key)
    return True


def contact_search_ready(engine: Engine) -> bool:
    """Whether contact substring search can use the SQLite trigram table."""
    return engine.dialect.name == "sqlite" and ensure_search_index(engine)


# The inbox lists latest activity first with conversations that never had any last, and
# "longest waiting" lists the oldest waiting_since first with nobody-waiting last. An
# index serves either order only if it is declared in exactly that order, which each
# engine spells differently: PostgreSQL declares NULLS LAST (it sorts NULL first in a
# descending index); SQLite cannot, so it orders "waiting" by (waiting_since IS NULL)
# and indexes that expression. SQLite needs nothing for "latest": it sorts NULL lowest.
PG_INBOX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_conversations_inbox_order ON conversations "
    "(workspace_id, status, last_activity_at DESC NULLS LAST, id DESC)",
    "CREATE INDEX IF NOT EXISTS ix_conversations_activity_order ON conversations "
    "(workspace_id, last_activity_at DESC NULLS LAST, id DESC)",
    "CREATE INDEX IF NOT EXISTS ix_conversations_waiting_order ON conversations "
    "(workspace_id, status, waiting_since ASC NULLS LAST, last_activity_at DESC NULLS LAST, "
    "id DESC)",
    # The tab counts under a number or source filter from the index alone; labels (JSONB,
    # unbounded) get a GIN index of their own instead of a place in this one.
    "CREATE INDEX IF NOT EXISTS ix_conversations_filter_counts ON conversations "
    "(workspace_id, status, channel_id, last_message_source, assignee_id, team_id)",
    "CREATE INDEX IF NOT EXISTS ix_conversations_labels ON conversations "
    "USING gin (labels jsonb_path_ops)",
)
SQLITE_INBOX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_conversations_waiting_order ON conversations "
    "(workspace_id, status, waiting_since IS NULL, waiting_since, last_activity_at DESC, "
    "id DESC)",
    # The tab counts under a number, source or label filter, from the index alone (the
    # JSON labels included: SQLite has no size limit on index entries).
    "CREATE INDEX IF NOT EXISTS ix_conversations_filter_counts ON conversations "
    "(workspace_id, status, channel_id, last_message_source, assignee_id, team_id, labels)",
)


# The search box's conversations, found by contact: their status, workspace, the columns
# of the tab counts and of both orders, and the id come from the index (an index-only
# scan), not from 1000s of rows. It replaces an earlier one without the id and
# waiting_since, which made PostgreSQL visit every row.
INBOX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_conversations_contact_list ON conversations "
    "(contact_id, status, workspace_id, assignee_id, team_id, last_activity_at, "
    "waiting_since, id)",
    "DROP INDEX IF EXISTS ix_conversations_contact_inbox",
)


def ensure_inbox_indexes(engine: Engine) -> None:
    """The indexes of the inbox list's orders and filters (see PG_INBOX_DDL)."""
    ddl = {"postgresql": PG_INBOX_DDL, "sqlite": SQLITE_INBOX_DDL}.get(engine.dialect.name)
    if ddl is None or not inspect(engine).has_table("conversations"):
        return
    with _startup_ddl(engine) as conn:
        before = _index_names(conn)
        for statement in (*ddl, *INBOX_DDL):
            conn.exec_driver_sql(statement)
        # A database that was ANALYZEd holds statistics for its old indexes only; the
        # planner then prefers those over a new index it knows nothing about (a list page
        # went from 9 to 212 ms). Refresh the statistics once, when an index was added.
        added = not _index_names(conn) <= before
        if (
            added
            and conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).first()
        ):
            conn.exec_driver_sql("ANALYZE")


def _index_names(conn: Connection) -> frozenset[str]:
    """SQLite's index names (an index replaced by another leaves the count unchanged)."""
    if conn.dialect.name != "sqlite":
        return frozenset()
    rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
    return frozenset(str(r[0]) for r in rows)


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
        found = list(session.scalars(ids.limit(limit)))
    else:
        found = _pg_newest_matches(session, actor, ids, words, limit)
    if not found:
        return []
    return list(
        session.scalars(select(Message).where(Message.id.in_(found)).order_by(Message.id.desc()))
    )


# How many of the newest messages PostgreSQL reads in order before asking the index.
RECENT_WINDOW = 10_000


def _pg_newest_matches(
    session: Session, actor: Actor, ids: Select[Any], words: list[str], limit: int
) -> list[int]:
    """PostgreSQL cannot estimate how many rows prefix terms match (it assumes a fixed
    share), so its plan is a guess: walking the primary key is fast for common words
    and reads the whole table for rare ones; the GIN bitmap is the other way round.
    So two steps: walk the newest RECENT_WINDOW messages in id order (common words
    fill the page within a few thousand rows), then, if the page is not full, take
    every older match from the GIN index (few, or step one would have filled the
    page) and keep the newest."""
    match = text(f"messages.search_vector @@ to_tsquery('{PG_SEARCH_CONFIG}', :tsq)")
    tsq = " & ".join(w + ":*" for w in words)
    floor = (session.scalar(select(func.max(Message.id))) or 0) - RECENT_WINDOW
    # GIN offers only bitmap scans: without them the planner walks the primary key.
    session.execute(text("SET LOCAL enable_bitmapscan = off"))
    try:
        recent = ids.where(match, Message.id > floor).order_by(Message.id.desc()).limit(limit)
        found = list(session.scalars(recent.params(tsq=tsq)))
    finally:
        session.execute(text("SET LOCAL enable_bitmapscan = on"))
    if len(found) < limit:
        # MATERIALIZED: all older matches through the index, never a walk of the table.
        hits = (
            select(Message.id, Message.conversation_id)
            .where(Message.workspace_id == actor.workspace_id, match, Message.id <= floor)
            .cte("older_hits")
            .prefix_with("MATERIALIZED")
        )
        older = (
            select(hits.c.id)
            .join(Conversation, Conversation.id == hits.c.conversation_id)
            .where(conversation_scope(actor))
            .order_by(hits.c.id.desc())
            .limit(limit - len(found))
        )
        found += session.scalars(older.params(tsq=tsq))
    return found
