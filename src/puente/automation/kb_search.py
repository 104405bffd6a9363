"""Finding the knowledge-base entry a customer's question is about, with the database's
own full-text search (the index is described in kb_index.py): the index finds the
phrasings that share a word with the question and orders them (bm25 on SQLite, ts_rank
on PostgreSQL); each entry among them is then scored from 0 to 1 from the terms alone,
the same way on both engines, so a threshold means the same on both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from puente.automation.kb_models import KbLanguage, KbPhrasing
from puente.automation.kb_text import likeness, terms

# How many phrasings the index hands over for scoring: the best by its own order.
CANDIDATES = 30
LANGUAGES = tuple(lang.value for lang in KbLanguage)


@dataclass(frozen=True)
class Match:
    entry_id: int
    phrasing: str  # the entry's phrasing closest to the question
    score: float


# (entry id, phrasing, the question's terms in the phrasing's language, the phrasing's)
Candidate = tuple[int, str, Sequence[str], Sequence[str]]


def index_phrasings(session: Session, phrasings: Sequence[KbPhrasing]) -> None:
    """Write flushed phrasings into SQLite's index (PostgreSQL's column follows by itself).
    A phrasing's old row goes with it (the trigger), so only new ones come here."""
    if session.get_bind().dialect.name != "sqlite" or not phrasings:
        return
    session.execute(
        text("INSERT INTO kb_phrasings_fts(rowid, workspace_id, terms) VALUES (:id, :ws, :terms)"),
        [
            {"id": p.id, "ws": str(p.workspace_id), "terms": " ".join(terms(p.text, p.language))}
            for p in phrasings
        ],
    )


def best_matches(session: Session, workspace_id: int, question: str, limit: int = 5) -> list[Match]:
    """The enabled entries the question may be about, best first, one match each."""
    if session.get_bind().dialect.name == "postgresql":
        candidates = _pg_candidates(session, workspace_id, question)
    else:
        candidates = _sqlite_candidates(session, workspace_id, question)
    by_entry: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        by_entry.setdefault(candidate[0], []).append(candidate)
    found = [_scored(entry_id, rows) for entry_id, rows in by_entry.items()]
    # Stable: among equal scores the index's own order (its rank) stands.
    return sorted(found, key=lambda m: -m.score)[:limit]


def _scored(entry_id: int, rows: list[Candidate]) -> Match:
    """Half how alike the question and the entry's closest phrasing are, half how much of
    the question the entry's phrasings cover between them: "¿Aceptan Nequi?" belongs with
    the entry asking "¿Qué medios de pago aceptan?" and "¿Puedo pagar con Nequi?" rather
    than with "¿Aceptan cambios?", closer as that one phrasing is. The same words in any
    order score 1."""
    closest = max(rows, key=lambda r: likeness(r[2], r[3]))
    asked = set(closest[2])
    covered = {t for r in rows for t in set(r[2]) & set(r[3])}
    coverage = len(covered) / len(asked) if asked else 0.0
    score = (likeness(closest[2], closest[3]) + coverage) / 2
    return Match(entry_id, closest[1], round(score, 3))


def _sqlite_candidates(session: Session, workspace_id: int, question: str) -> list[Candidate]:
    asked = {lang: terms(question, lang) for lang in LANGUAGES}
    words = sorted({t for found in asked.values() for t in found})
    if not words:
        return []
    # Quoted terms only: nothing the customer wrote reaches FTS5 as syntax.
    match = (
        f'workspace_id : "{workspace_id}" AND terms : ('
        + " OR ".join(f'"{w}"' for w in words)
        + ")"
    )
    rows = session.execute(
        text(
            "SELECT p.entry_id, p.text, p.language, f.terms FROM kb_phrasings_fts f "
            "JOIN kb_phrasings p ON p.id = f.rowid JOIN kb_entries e ON e.id = p.entry_id "
            "WHERE kb_phrasings_fts MATCH :match AND p.workspace_id = :ws AND e.enabled "
            "ORDER BY bm25(kb_phrasings_fts, 0.0, 1.0) LIMIT :n"
        ),
        {"match": match, "ws": workspace_id, "n": CANDIDATES},
    )
    return [
        (entry_id, phrasing, asked.get(language, []), found.split())
        for entry_id, phrasing, language, found in rows
    ]


def _tsquery(lexemes: Sequence[str]) -> str:
    """Any of the lexemes, quoted so that PostgreSQL takes each as it is."""
    return " | ".join("'" + lex.replace("\\", "\\\\").replace("'", "''") + "'" for lex in lexemes)


def _pg_candidates(session: Session, workspace_id: int, question: str) -> list[Candidate]:
    # The question in each language's configuration, exactly as the phrasings were.
    found = session.execute(
        text(
            "SELECT tsvector_to_array(puente_kb_vector('es', :q)), "
            "tsvector_to_array(puente_kb_vector('en', :q))"
        ),
        {"q": question},
    ).one()
    asked: dict[str, list[str]] = {"es": list(found[0] or []), "en": list(found[1] or [])}
    conditions: list[str] = []
    params: dict[str, Any] = {"ws": workspace_id, "n": CANDIDATES}
    for lang, lexemes in asked.items():
        if lexemes:
            conditions.append(
                f"(p.language = '{lang}' AND p.search_vector @@ CAST(:q_{lang} AS tsquery))"
            )
            params[f"q_{lang}"] = _tsquery(lexemes)
    if not conditions:
        return []
    rank = " + ".join(
        f"ts_rank(p.search_vector, CAST(:q_{lang} AS tsquery))" for lang in asked if asked[lang]
    )
    rows: Any = session.execute(
        text(
            "SELECT p.entry_id, p.text, p.language, tsvector_to_array(p.search_vector) "
            "FROM kb_phrasings p JOIN kb_entries e ON e.id = p.entry_id "
            f"WHERE p.workspace_id = :ws AND e.enabled AND ({' OR '.join(conditions)}) "
            f"ORDER BY {rank} DESC LIMIT :n"
        ),
        params,
    )
    return [
        (entry_id, phrasing, asked.get(language, []), lexemes)
        for entry_id, phrasing, language, lexemes in rows
    ]
