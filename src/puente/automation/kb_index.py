"""The full-text index of the knowledge base's phrasings, which each engine builds its
own way beside the kb_phrasings table (docs/decisions/0009):

- SQLite: an FTS5 table `kb_phrasings_fts` (unicode61 tokenizer, diacritics removed)
  holding each phrasing's stems as Puente's stemmer cuts them (`kb_text.terms`); Puente
  writes the rows (`kb_search.index_phrasings`), a trigger removes them with their
  phrasing, however it is deleted.
- PostgreSQL: a stored generated column `kb_phrasings.search_vector`, the phrasing in
  the `spanish` or `english` text search configuration after its accents are folded
  (`unaccent` when the database allows the extension, else `translate` of the usual
  accented letters), computed by the function `puente_kb_vector`, and its GIN index.

Created with the table (`Base.metadata.create_all`, as the tests build their databases)
and by migration 0007, which repeats these statements because migrations import no
application code.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_phrasings_fts USING fts5("
    "workspace_id, terms, tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS kb_phrasings_fts_ad AFTER DELETE ON kb_phrasings BEGIN "
    "DELETE FROM kb_phrasings_fts WHERE rowid = old.id; END",
)
SQLITE_DROP = ("DROP TABLE IF EXISTS kb_phrasings_fts",)

# Accents are folded before stemming, since people type without them; but the Spanish
# stemmer knows "-ción" only with its accent (it cuts "devolución" to "devolu" and leaves
# "devolucion" whole), so that ending gets its accent back, plural or not, and
# "devolucion", "devolución" and "devoluciones" all meet on "devolu".
_ES_SUFFIX = r"regexp_replace({text}, '([cs])ion(es)?\M', '\1ión', 'gi')"
_TRANSLATE = "translate(lower(body), 'áàâäãéèêëíìîïóòôöõúùûüñç', 'aaaaaeeeeiiiiooooouuuunc')"


def pg_ddl(unaccent_schema: str | None) -> tuple[str, ...]:
    """`unaccent_schema`: where the unaccent extension lives (named in full, since a
    generated column may be computed with any search_path), or None to fold the usual
    accented letters with translate()."""
    folded = (
        f"{unaccent_schema}.unaccent('{unaccent_schema}.unaccent'::regdictionary, body)"
        if unaccent_schema
        else _TRANSLATE
    )
    spanish = _ES_SUFFIX.format(text=folded)
    return (
        # IMMUTABLE so that a generated column may use it; the search runs the same
        # function on the customer's words.
        "CREATE OR REPLACE FUNCTION puente_kb_vector(language text, body text) "
        "RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE "
        f"WHEN language = 'en' THEN to_tsvector('pg_catalog.english', {folded}) "
        f"ELSE to_tsvector('pg_catalog.spanish', {spanish}) END $$",
        "ALTER TABLE kb_phrasings ADD COLUMN IF NOT EXISTS search_vector tsvector "
        "GENERATED ALWAYS AS (puente_kb_vector(language, text)) STORED",
        "CREATE INDEX IF NOT EXISTS ix_kb_phrasings_search_vector ON kb_phrasings "
        "USING gin (search_vector)",
    )


def pg_unaccent(conn: Connection) -> str | None:
    """The schema of the unaccent extension, created if the database lets us (it is
    trusted: a database owner may); None, logged, when it may not."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
    except DBAPIError as exc:
        log.warning("PostgreSQL extension unaccent not available: %s", exc)
        return None
    schema = conn.exec_driver_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'"
    ).scalar_one()
    return str(schema)


def create_search_index(_table: Table, conn: Connection, **_kw: Any) -> None:
    if conn.dialect.name == "sqlite":
        statements: tuple[str, ...] = SQLITE_DDL
    elif conn.dialect.name == "postgresql":
        statements = pg_ddl(pg_unaccent(conn))
    else:
        return
    for statement in statements:
        conn.exec_driver_sql(statement)


def drop_search_index(_table: Table, conn: Connection, **_kw: Any) -> None:
    # On PostgreSQL the column and index go with the table; the configurations and the
    # function stay for the next create.
    if conn.dialect.name == "sqlite":
        for statement in SQLITE_DROP:
            conn.exec_driver_sql(statement)
