"""INSERT that skips rows violating a unique constraint, on both engines, for
idempotent bulk writes (webhook processing inserts many rows that may exist already)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, index_elements: list[str] | None = None) -> Any:
    """An insert into `model`'s table that skips rows violating a unique constraint
    (on PostgreSQL only the one on `index_elements` when given)."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        # The dialect's ON CONFLICT construct has no cache key, so SQLAlchemy would compile
        # it on every call; INSERT OR IGNORE is cached like any plain insert.
        return insert(table).prefix_with("OR IGNORE", dialect="sqlite")
    raise NotImplementedError(f"insert_ignore on {dialect}")
