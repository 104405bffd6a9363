"""Alembic environment: the URL comes from the caller (puente.db.migrate) or PUENTE_ settings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy import create_engine, pool

from puente.config import get_settings
from puente.db.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: object, autogen_context: Any) -> str | bool:
    """Write Puente's column types as plain SQLAlchemy ones: migrations import no app code."""
    if type_ != "type":
        return False
    if type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, sa.JSON) and "postgresql" in getattr(obj, "_variant_mapping", {}):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


# What a model says exists beside its table without describing it (a table's
# info["unmodelled"]: full-text indexes each engine builds its own way, created by hand in
# a migration): the comparison with the models leaves these out instead of asking to drop
# them. Tables and indexes are named as they are; columns as "table.column".
UNMODELLED = frozenset(
    name for table in target_metadata.tables.values() for name in table.info.get("unmodelled", ())
)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if not reflected or compare_to is not None:
        return True
    if type_ == "column":
        name = f"{getattr(getattr(obj, 'table', None), 'name', '')}.{name}"
    return name not in UNMODELLED


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url()


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Batch mode lets ALTERs work on SQLite by copying the table.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
