"""INSERT ... ON CONFLICT DO NOTHING for both engines, for idempotent bulk writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, index_elements: list[str] | None = None) -> Any:
    """An insert into `model`'s table that skips rows violating a unique constraint
    (only the one on `index_elements` when given)."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    raise NotImplementedError(f"insert_ignore on {dialect}")
