"""the knowledge-base bot

Its entries, their phrasings and what the bot remembers of each conversation; and the
phrasings' full-text index, which each engine builds its own way and no model describes
(automation/kb_index.py holds the same statements, for databases built from the models;
docs/decisions/0009 says why): an FTS5 table on SQLite, a generated tsvector column in the
spanish/english configurations, accents folded, on PostgreSQL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_phrasings_fts USING fts5("
    "workspace_id, terms, tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS kb_phrasings_fts_ad AFTER DELETE ON kb_phrasings BEGIN "
    "DELETE FROM kb_phrasings_fts WHERE rowid = old.id; END",
)
# Accents are folded before stemming, since people type without them; but the Spanish
# stemmer knows "-ción" only with its accent (it cuts "devolución" to "devolu" and leaves
# "devolucion" whole), so that ending gets its accent back, plural or not, and
# "devolucion", "devolución" and "devoluciones" all meet on "devolu".
_ES_SUFFIX = r"regexp_replace({text}, '([cs])ion(es)?\M', '\1ión', 'gi')"
_TRANSLATE = "translate(lower(body), 'áàâäãéèêëíìîïóòôöõúùûüñç', 'aaaaaeeeeiiiiooooouuuunc')"


def _pg_ddl(unaccent_schema: str | None) -> tuple[str, ...]:
    folded = (
        f"{unaccent_schema}.unaccent('{unaccent_schema}.unaccent'::regdictionary, body)"
        if unaccent_schema
        else _TRANSLATE
    )
    spanish = _ES_SUFFIX.format(text=folded)
    return (
        "CREATE OR REPLACE FUNCTION puente_kb_vector(language text, body text) "
        "RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE "
        f"WHEN language = 'en' THEN to_tsvector('pg_catalog.english', {folded}) "
        f"ELSE to_tsvector('pg_catalog.spanish', {spanish}) END $$",
        "ALTER TABLE kb_phrasings ADD COLUMN IF NOT EXISTS search_vector tsvector "
        "GENERATED ALWAYS AS (puente_kb_vector(language, text)) STORED",
        "CREATE INDEX IF NOT EXISTS ix_kb_phrasings_search_vector ON kb_phrasings "
        "USING gin (search_vector)",
    )


def _pg_unaccent(bind: sa.Connection) -> str | None:
    # Trusted, so a database owner may create it; if this role may not, accents are
    # folded with translate() instead.
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
    except sa.exc.DBAPIError:
        return None
    return str(
        bind.exec_driver_sql(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'"
        ).scalar_one()
    )


def upgrade() -> None:
    op.create_table(
        "kb_entries",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_kb_entries_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_entries")),
    )
    with op.batch_alter_table("kb_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_kb_entries_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "kb_phrasings",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["kb_entries.id"],
            name=op.f("fk_kb_phrasings_entry_id_kb_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_phrasings")),
    )
    with op.batch_alter_table("kb_phrasings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kb_phrasings_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "kb_conversations",
        sa.Column("conversation_id", ID, autoincrement=False, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("unanswered", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_kb_conversations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_kb_conversations")),
    )
    with op.batch_alter_table("kb_conversations", schema=None) as batch_op:
        batch_op.create_index("ix_kb_conversations_workspace", ["workspace_id"], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        statements: tuple[str, ...] = SQLITE_DDL
    elif bind.dialect.name == "postgresql":
        statements = _pg_ddl(_pg_unaccent(bind))
    else:
        statements = ()
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    # The index goes with its table on PostgreSQL (the column) and by name on SQLite; the
    # function goes last, once nothing uses it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_phrasings_fts")
    with op.batch_alter_table("kb_conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_kb_conversations_workspace")
    op.drop_table("kb_conversations")
    with op.batch_alter_table("kb_phrasings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kb_phrasings_entry_id"))
    op.drop_table("kb_phrasings")
    with op.batch_alter_table("kb_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kb_entries_workspace_id"))
    op.drop_table("kb_entries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS puente_kb_vector(text, text)")
