"""Storing signed webhook bodies: the write path that must finish before Puente answers.

The webhook endpoint's writer commits bursts with `do_commit_webhooks`; code inside a
unit of work stores with `do_store_webhooks`. Both wake the INGEST queue's workers, which
process what was stored (see ingest.process).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.orm import Session

from puente.db.base import utcnow
from puente.ingest.models import WebhookEvent
from puente.jobs import INGEST

# 128 bits: two different bodies sharing a key is out of reach (about 2^64 bodies before
# it gets likely), and the unique index stays a quarter of the size of 64 hex characters.
DEDUPE_KEY_BYTES = 16


def dedupe_key(body: bytes) -> bytes:
    """Meta's retries resend the same bytes, so the body's hash identifies a delivery:
    the first 16 bytes of its sha256."""
    return hashlib.sha256(body).digest()[:DEDUPE_KEY_BYTES]


def do_store_webhooks(session: Session, bodies: Sequence[bytes]) -> None:
    """Insert raw bodies as NEW events in the caller's transaction; a body already stored
    is silently skipped."""
    conn = session.connection()
    for sql, params in _insert_statements(conn.dialect, bodies):
        conn.exec_driver_sql(sql, params)
    INGEST.wake_after_commit(session)


_INSERT_HEAD = "INSERT INTO webhook_events (dedupe_key, received_at, body, state, attempts) VALUES "
_INSERT_TAIL = " ON CONFLICT (dedupe_key) DO NOTHING"
_ROW = {"sqlite": "(?, ?, ?, 'new', 0)", "postgresql": "(%s, %s, %s, 'new', 0)"}
# Well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters (3 per row).
_ROWS_PER_STATEMENT = 500


def _insert_statements(
    dialect: Dialect, bodies: Sequence[bytes]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Driver-level INSERTs for `bodies`, each body once.

    One multi-row INSERT per batch rather than an executemany: the driver releases the
    GIL around every statement it steps, and while the event loop is busy each
    re-acquisition waits for a thread switch, so one statement costs one switch.
    """
    rows: dict[bytes, bytes] = {}
    for body in bodies:
        rows.setdefault(dedupe_key(body), body)
    to_db = WebhookEvent.__table__.c.received_at.type.bind_processor(dialect)
    now = to_db(utcnow()) if to_db else utcnow()
    items = list(rows.items())
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        chunk = items[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join([_ROW[dialect.name]] * len(chunk))
        params = tuple(value for key, body in chunk for value in (key, now, body))
        yield _INSERT_HEAD + values + _INSERT_TAIL, params


def do_commit_webhooks(raw: Any, dialect: Dialect, bodies: Sequence[bytes]) -> None:
    """Insert and commit `bodies` on the driver connection `raw`: the webhook writer's path.

    It runs for every burst of webhooks, in a thread that shares the GIL with the event
    loop, so it makes as few calls into the driver as it can: each one releases the GIL
    and, while the event loop is busy, waits for a thread switch to get it back. On
    SQLite a burst is one INSERT in autocommit mode (Puente's SQLite connections leave
    transactions to us, see db.session): a single statement is its own transaction, it
    takes the write lock when it starts, as BEGIN IMMEDIATE would, and is committed when
    it returns. One call instead of three (BEGIN, INSERT, COMMIT).
    """
    statements = list(_insert_statements(dialect, bodies))
    cursor = raw.cursor()
    try:
        if dialect.name == "sqlite" and len(statements) == 1:
            cursor.execute(*statements[0])
            return
        try:
            if dialect.name == "sqlite":
                # Several statements: one transaction, with the write lock up front like
                # every other writer.
                cursor.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                cursor.execute(sql, params)
            if dialect.name == "postgresql":
                cursor.execute(INGEST.notify_sql)
            raw.commit()
        except Exception:
            with contextlib.suppress(Exception):  # the original error is the one to report
                raw.rollback()
            raise
    finally:
        cursor.close()
