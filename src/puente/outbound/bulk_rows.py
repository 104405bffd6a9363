"""Driver-level bulk writes for broadcasts: one prepared INSERT or UPDATE run with
executemany over plain tuples, in the caller's transaction.

A 100,000-recipient broadcast writes 300,000 rows; through the ORM (or even Core's
per-row parameter processing) most of the time went into building and binding each
row. Here values are bound as the driver takes them: JSON serialised by the caller,
timestamps converted once per batch (`db_time`), ids allocated up front (`allocate_ids`)
so nothing needs RETURNING.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, text
from sqlalchemy.orm import Session

from puente.db.base import Base, UTCDateTime


def dumps(value: Any) -> str:
    """JSON as the JSON columns store it (SQLAlchemy's default serialiser is json.dumps)."""
    return json.dumps(value)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def db_time(session: Session, value: dt.datetime) -> Any:
    """A timestamp as the driver expects it for a UTC column (SQLite stores text)."""
    dialect = session.get_bind().dialect
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


def allocate_ids(session: Session, model: type[Base], count: int) -> list[int]:
    """`count` fresh primary keys for `table`, taken before inserting. On PostgreSQL from
    the id sequence; on SQLite after the current maximum, which is safe because every
    write transaction holds the database's write lock from BEGIN IMMEDIATE on."""
    if count <= 0:
        return []
    table = _table(model)
    if _dialect(session) == "postgresql":
        rows = session.execute(
            text(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))"
                " FROM generate_series(1, :n)"
            ),
            {"n": count},
        ).scalars()
        return sorted(int(r) for r in rows)
    start = int(
        session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}")).scalar_one()
    )
    return list(range(start + 1, start + 1 + count))


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _marks(session: Session, table: Table, columns: Sequence[str]) -> list[str]:
    if _dialect(session) == "postgresql":
        return ["%s::jsonb" if isinstance(table.c[c].type, JSON) else "%s" for c in columns]
    return ["?"] * len(columns)


def _unnest(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> tuple[str, tuple[list[Any], ...]]:
    """PostgreSQL: `unnest(%s::type[], ...) AS u(columns)` and one list per column."""
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    arrays: list[str] = []
    for name in columns:
        kind = table.c[name].type
        # JSON travels as text and is cast in the statement; so do bounded strings.
        sql_type = "text" if isinstance(kind, JSON) else kind.compile(dialect=dialect)
        sql_type = "text" if sql_type.startswith("VARCHAR") else sql_type
        arrays.append(f"%s::{sql_type}[]")
    names = ", ".join(quote(c) for c in columns)
    source = f"unnest({', '.join(arrays)}) AS u({names})"
    casts = [
        f"u.{quote(c)}::jsonb" if isinstance(table.c[c].type, JSON) else f"u.{quote(c)}"
        for c in columns
    ]
    source = f"(SELECT {', '.join(casts)} FROM {source}) AS u"
    return source, tuple(list(col) for col in zip(*rows, strict=True))


def insert_rows(
    session: Session,
    model: type[Base],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """INSERT `rows` (tuples in `columns` order, JSON already serialised). With
    `ignore_conflicts`, rows violating a unique constraint are skipped."""
    if not rows:
        return
    table = _table(model)
    quote = session.get_bind().dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(_marks(session, table, columns))
    verb = "INSERT"
    tail = ""
    if ignore_conflicts:
        if _dialect(session) == "postgresql":
            tail = " ON CONFLICT DO NOTHING"
        else:
            verb = "INSERT OR IGNORE"
    if _dialect(session) == "postgresql" and not ignore_conflicts:
        _copy_rows(session, table, names, rows)
        return
    if _dialect(session) == "postgresql":
        # One statement over arrays instead of a round trip per row.
        source, params = _unnest(session, table, columns, rows)
        sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM {source}{tail}"
        session.connection().exec_driver_sql(sql, params)
        return
    sql = f"{verb} INTO {quote(table.name)} ({names}) VALUES ({marks}){tail}"
    session.connection().exec_driver_sql(sql, list(rows))


def _copy_rows(session: Session, table: Table, names: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY FROM STDIN on the session's own connection (same transaction).
    Several times faster than INSERT from unnest arrays, on both sides: psycopg writes
    each row's text directly instead of quoting every array element, and the server
    parses no arrays."""
    quote = session.get_bind().dialect.identifier_preparer.quote
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def update_rows(
    session: Session,
    model: type[Base],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """UPDATE by id: each row is (values of `columns`..., id)."""
    if not rows:
        return
    table = _table(model)
    quote = session.get_bind().dialect.identifier_preparer.quote
    if _dialect(session) == "postgresql":
        source, params = _unnest(session, table, [*columns, "id"], rows)
        sets = ", ".join(f"{quote(c)} = u.{quote(c)}" for c in columns)
        sql = f"UPDATE {quote(table.name)} AS t SET {sets} FROM {source} WHERE t.id = u.id"
        session.connection().exec_driver_sql(sql, params)
        return
    marks = _marks(session, table, [*columns, "id"])
    sets = ", ".join(f"{quote(c)} = {m}" for c, m in zip(columns, marks, strict=False))
    sql = f"UPDATE {quote(table.name)} SET {sets} WHERE id = {marks[-1]}"
    session.connection().exec_driver_sql(sql, list(rows))
