"""Whether the database holds the schema this version of Puente expects: checked when
`puente serve` and `puente worker` start, and by `GET /readyz`."""

from __future__ import annotations

import enum
import logging
import re
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from puente.db.session import Database
from puente.startup import NotReady

log = logging.getLogger(__name__)

NOT_CURRENT = "the database schema is not current: run `puente migrate`"
# SQLite and PostgreSQL's words for a table or column the schema lacks.
_MISSING_SCHEMA = re.compile(r"no such (table|column)|(relation|column) \S+ does not exist")
_MISSING_SCHEMA_ERRORS = {"UndefinedTable", "UndefinedColumn"}


class SchemaState(enum.Enum):
    CURRENT = "current"
    EMPTY = "empty"  # not a single table: a database nobody has migrated yet
    NOT_CURRENT = "not current"


class SchemaNotCurrent(NotReady):
    def __init__(self) -> None:
        super().__init__(NOT_CURRENT)


class DatabaseUnreachable(NotReady):
    pass


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from puente.db.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def schema_state(engine: sa.Engine) -> SchemaState:
    from alembic.runtime.migration import MigrationContext

    from puente.db.models import Base

    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        if not tables:
            return SchemaState.EMPTY
        if "alembic_version" in tables:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
            if current != head_revisions():
                return SchemaState.NOT_CURRENT
    # A database without Alembic's revision but with every table (the test suite builds
    # its databases from the models) holds the schema too.
    missing = set(Base.metadata.tables) - tables
    return SchemaState.NOT_CURRENT if missing else SchemaState.CURRENT


def prepare_schema(db: Database) -> bool:
    """At start-up: migrate a new SQLite database (no tables at all), refuse any other
    database whose schema is not current. Returns True when it migrated.

    PostgreSQL is never migrated here: several processes start against it, and its
    migration is a release step (`puente migrate`, once) that must not race."""
    try:
        state = schema_state(db.read_engine)
    except SQLAlchemyError as exc:
        raise DatabaseUnreachable(f"cannot reach the database: {_first_line(exc)}") from exc
    if state is SchemaState.CURRENT:
        return False
    if state is SchemaState.EMPTY and db.is_sqlite:
        from puente.db.migrate import upgrade

        upgrade(db.url)
        return True
    raise SchemaNotCurrent()


def readiness_problem(db: Database) -> str | None:
    """Why this process cannot serve yet (for load balancers), or None when it can."""
    try:
        state = schema_state(db.read_engine)
    except SQLAlchemyError:
        log.warning("readiness: the database cannot be reached", exc_info=True)
        return "the database cannot be reached"
    return None if state is SchemaState.CURRENT else NOT_CURRENT


def is_missing_schema(exc: BaseException) -> bool:
    """A database error that means a table or column is missing: not migrated."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return type(exc.orig).__name__ in _MISSING_SCHEMA_ERRORS or bool(
        _MISSING_SCHEMA.search(str(exc.orig))
    )


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
