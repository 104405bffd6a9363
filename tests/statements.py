"""Counting the SQL statements a hot path makes, for the tests that pin them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from puente.db.session import Database


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    # Transaction control, and the realtime hub relaying events to other processes
    # (PostgreSQL NOTIFY, from its own thread), are not the path's queries.
    skipped = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SELECT PG_NOTIFY")

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(skipped):
            statements.append(statement)

    # On PostgreSQL the readers' engine is the writers' with options: its statements
    # already reach the writers' engine's listeners.
    engines = {db.engine} if db.read_engine.pool is db.engine.pool else {db.engine, db.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
