"""Driver-level bulk writes (broadcasts, report rollups), in the caller's transaction: on
SQLite one prepared INSERT or UPDATE run with executemany over plain tuples; on PostgreSQL COPY,
straight into the table or into a temporary table followed by one INSERT … SELECT or
joined UPDATE.

A 100,000-recipient broadcast writes 300,000 rows; through the ORM (or even Core's
per-row parameter processing) most of the time went into building and binding each
row. Here values are bound as the driver takes them: JSON serialised by the caller,
timestamps converted once per batch (`db_time`), ids allocated up front (`allocate_ids`)
so nothing needs RETURNING.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, ColumnElement, Table, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from puente.db.base import Base, UTCDateTime


def dumps(value: Any) -> str:
    """JSON as the JSON columns store it (SQLAlchemy's default serialiser is json.dumps)."""
    return json.dumps(value)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def db_time(session: Session, value: dt.datetime) -> Any:
    """A timestamp as the driver expects it for a UTC column (SQLite stores text). On
    PostgreSQL the rows go through COPY, where the server reads the ISO text: psycopg
    writes a string as it is, and took 1.4 us to write each timezone-aware datetime."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        return value.astimezone(dt.UTC).isoformat()
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
        # The sequence looked up once: as nextval's argument, pg_get_serial_sequence ran
        # for every id (0.5 s of the server's time for 100,000, against 0.07 s).
        rows = session.execute(
            text(
                "WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id')"
                " AS regclass) AS seq) SELECT nextval(s.seq) FROM s, generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        ).scalars()
        return sorted(int(r) for r in rows)
    start = int(
        session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}")).scalar_one()
    )
    return list(range(start + 1, start + 1 + count))


def ids_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL `column = ANY(array)`, the ids one parameter. An
    IN list of thousands of ids costs a bound parameter each, to render and bind on the
    client and to parse on the server (SQLite's planner, without statistics, would read a
    JSON array's ids worse than a list's, and binding them there costs little)."""
    if _dialect(session) == "postgresql":
        return cast(
            ColumnElement[bool],
            column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger))),
        )
    return cast(ColumnElement[bool], column.in_(ids))


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _marks(session: Session, table: Table, columns: Sequence[str]) -> list[str]:
    if _dialect(session) == "postgresql":
        return ["%s::jsonb" if isinstance(table.c[c].type, JSON) else "%s" for c in columns]
    return ["?"] * len(columns)


def insert_rows(
    session: Session,
    model: type[Base],
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT `rows` (tuples in `columns` order, JSON already serialised). With
    `ignore_conflicts`, rows violating a unique constraint are skipped. `returning`
    (with `ignore_conflicts`): those columns of the rows actually inserted; on SQLite
    only when all were (and the columns are among `columns`), else nothing. `rows` may
    be an iterator: on PostgreSQL without `ignore_conflicts` each row is then built
    while COPY sends the ones before."""
    table = _table(model)
    quote = session.get_bind().dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if _dialect(session) == "postgresql" and not ignore_conflicts:
        _copy_rows(session, quote(table.name), names, rows)
        return []
    rows = rows if isinstance(rows, Sequence) else list(rows)
    if not rows:
        return []
    marks = ", ".join(_marks(session, table, columns))
    if _dialect(session) == "postgresql":
        # COPY into a temporary table, then one INSERT … SELECT: no array parameters to
        # quote on the client or parse on the server.
        staged = _stage(session, table, names, rows)
        tail = " ON CONFLICT DO NOTHING"
        if returning:
            tail += " RETURNING " + ", ".join(quote(c) for c in returning)
        result = session.connection().exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({names}) SELECT {names} FROM {staged}{tail}"
        )
        return [tuple(r) for r in result] if returning else []
    verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
    sql = f"{verb} INTO {quote(table.name)} ({names}) VALUES ({marks})"
    result = session.connection().exec_driver_sql(sql, list(rows))
    # executemany returns no rows here; when every row went in, the columns asked for
    # are those given (which is why callers pass the ids they allocated).
    if returning and result.rowcount == len(rows) and set(returning) <= set(columns):
        at = [list(columns).index(c) for c in returning]
        return [tuple(row[i] for i in at) for row in rows]
    return []


def _stage(session: Session, table: Table, names: str, rows: Sequence[tuple[Any, ...]]) -> str:
    """PostgreSQL: `rows` copied into a temporary table with `table`'s columns `names`
    (dropped at the end of the transaction, or by the next call for the same table)."""
    quote = session.get_bind().dialect.identifier_preparer.quote
    staged = quote(f"bulk_{table.name}")
    connection = session.connection()
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {staged}")
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staged} ON COMMIT DROP AS"
        f" SELECT {names} FROM {quote(table.name)} WITH NO DATA"
    )
    _copy_rows(session, staged, names, rows)
    return staged


def _copy_rows(session: Session, table: str, names: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY FROM STDIN on the session's own connection (same transaction).
    Several times faster than INSERT from unnest arrays, on both sides: psycopg writes
    each row's text directly instead of quoting every array element, and the server
    parses no arrays."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
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
        # COPY into a temporary table, then one joined UPDATE.
        staged = _stage(session, table, ", ".join(quote(c) for c in [*columns, "id"]), rows)
        sets = ", ".join(f"{quote(c)} = u.{quote(c)}" for c in columns)
        sql = f"UPDATE {quote(table.name)} AS t SET {sets} FROM {staged} AS u WHERE t.id = u.id"
        session.connection().exec_driver_sql(sql)
        return
    marks = _marks(session, table, [*columns, "id"])
    sets = ", ".join(f"{quote(c)} = {m}" for c, m in zip(columns, marks, strict=False))
    sql = f"UPDATE {quote(table.name)} SET {sets} WHERE id = {marks[-1]}"
    session.connection().exec_driver_sql(sql, list(rows))
