"""Rows of any table as JSON and back, and which columns hold a contact's id: what a merge
moves, keeps and puts back, read from the tables themselves (contacts/merge.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Column, Date, DateTime, Table, TypeDecorator, select
from sqlalchemy.orm import Session

CHUNK = 500


def contact_columns() -> list[Column[Any]]:
    """Every column that holds a contact's id: a foreign key to contacts.id, or a copy
    named contact_id (messages, surveys). The merge record's own column is one of them,
    so the merges a contact absorbed follow it into another."""
    # Every table, whichever modules this process imported so far: a table missing here
    # would keep the absorbed contact's rows, and its deletion would cascade to them.
    from puente.db.models import Base

    contacts_id = Base.metadata.tables["contacts"].c.id
    found: list[Column[Any]] = []
    for table in Base.metadata.sorted_tables:
        if table.name == "contacts":
            continue
        for column in table.columns:
            fks = [fk for fk in column.foreign_keys if fk.column is contacts_id]
            if fks or column.name == "contact_id":
                found.append(column)
    return found


def column_key(column: Column[Any]) -> str:
    return f"{column.table.name}.{column.name}"


def unique_sets(table: Table, column: Column[Any]) -> list[list[str]]:
    """The other columns of each unique constraint or index that includes `column`."""
    sets: list[list[str]] = []
    for constraint in table.constraints:
        names = [c.name for c in getattr(constraint, "columns", [])]
        if constraint.__class__.__name__ == "UniqueConstraint" and column.name in names:
            sets.append([n for n in names if n != column.name])
    for index in table.indexes:
        names = [c.name for c in index.columns]
        if index.unique and column.name in names:
            sets.append([n for n in names if n != column.name])
    return sets


def to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _python_type(column: Column[Any]) -> type | None:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, DateTime):
        return dt.datetime
    if isinstance(kind, Date):
        return dt.date
    return None


def from_json(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in row.items():
        column = table.c[name]
        kind = _python_type(column)
        if isinstance(value, str) and kind is dt.datetime:
            values[name] = dt.datetime.fromisoformat(value)
        elif isinstance(value, str) and kind is dt.date:
            values[name] = dt.date.fromisoformat(value)
        else:
            values[name] = value
    return values


def table_rows(session: Session, table: Table, where: Any) -> list[dict[str, Any]]:
    return [
        {k: to_json(v) for k, v in row.items()}
        for row in session.execute(select(table).where(where)).mappings()
    ]


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])
