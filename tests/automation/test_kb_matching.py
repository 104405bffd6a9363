"""How well the knowledge base finds the entry a question is about, with each engine's own
full-text search: accents, letter case, plural and singular, word order, English, and
what it must not find (another workspace's entries, disabled ones, unrelated questions)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from puente.automation.kb import access_entry, check_entry, do_create_entry, do_update_entry
from puente.automation.kb_demo import DEMO_ENTRIES, seed_demo_knowledge_base
from puente.automation.kb_models import KbEntry
from puente.automation.kb_search import best_matches
from puente.db.session import Database
from tests.factories import make_workspace

THRESHOLD = 0.5  # the default a workspace starts with


def answer_of(index: int) -> str:
    return DEMO_ENTRIES[index][1]


HOURS, DELIVERY, DELIVERY_COST, PAYMENT, RETURNS, LOCATION = range(6)


@pytest.fixture
def shop(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        seed_demo_knowledge_base(session, ws)
        return ws.id


def best(db: Database, workspace_id: int, question: str) -> tuple[str | None, float]:
    with db.read(scope=workspace_id) as session:
        found = best_matches(session, workspace_id, question)
        if not found:
            return None, 0.0
        view = access_entry(session, workspace_id, found[0].entry_id)
        return view.entry.answer, found[0].score


@pytest.mark.parametrize(
    ("question", "entry"),
    [
        # accents and letter case, either way
        ("a que hora abren", HOURS),
        ("¿DÓNDE ESTÁN UBICADOS?", LOCATION),
        ("donde estan ubicados", LOCATION),
        ("cuanto cuesta el domicilio", DELIVERY_COST),
        # plural and singular
        ("¿hacen envio a domicilio?", DELIVERY),
        ("¿Aceptan tarjetas de crédito?", PAYMENT),
        ("¿Como hago devoluciones?", RETURNS),
        ("¿Cuáles son los horarios de atención?", HOURS),
        # word order
        ("abren a qué hora", HOURS),
        ("el domicilio cuánto cuesta", DELIVERY_COST),
        ("tarjeta de crédito, ¿aceptan?", PAYMENT),
        # words found across an entry's phrasings, not in one of them
        ("¿Aceptan Nequi?", PAYMENT),
        # a longer message around the question
        ("Hola buenas tardes, ¿hasta qué hora están abiertos hoy?", HOURS),
    ],
)
def test_the_right_entry_is_found_above_the_threshold(
    db: Database, shop: int, question: str, entry: int
) -> None:
    answer, score = best(db, shop, question)
    assert answer == answer_of(entry), (question, score)
    assert score >= THRESHOLD, (question, score)


def test_an_unrelated_question_stays_below_the_threshold(db: Database, shop: int) -> None:
    answer, score = best(db, shop, "¿Venden celulares usados?")
    assert score < THRESHOLD, (answer, score)
    assert best(db, shop, "👍") == (None, 0.0)


def test_the_same_words_score_one_whatever_their_order(db: Database, shop: int) -> None:
    assert best(db, shop, "¿A qué hora abren?")[1] == 1.0
    assert best(db, shop, "abren hora")[1] == 1.0


def test_english_entries_are_matched_in_english(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        data = check_entry(
            language="en",
            phrasings=["What are your opening hours?", "When do you open?"],
            answer="We open at 8.",
        )
        do_create_entry(session, ws.id, data)
        workspace_id = ws.id
    for question in ("opening hours?", "What hour do you open", "WHEN DO YOU OPEN"):
        answer, score = best(db, workspace_id, question)
        assert answer == "We open at 8." and score >= THRESHOLD, (question, score)


def test_another_workspace_and_disabled_entries_are_never_found(db: Database, shop: int) -> None:
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Otra tienda")
        other_id = other.id
    assert best(db, other_id, "¿A qué hora abren?") == (None, 0.0)
    with db.unit_of_work(scope=shop) as session:
        session.execute(update(KbEntry).where(KbEntry.workspace_id == shop).values(enabled=False))
    assert best(db, shop, "¿A qué hora abren?") == (None, 0.0)


def test_an_edited_entry_is_found_by_its_new_phrasings_only(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        data = check_entry(language="es", phrasings=["¿Venden helados?"], answer="Sí.")
        view = do_create_entry(session, ws.id, data)
        workspace_id, entry_id = ws.id, view.entry.id
    with db.unit_of_work(scope=workspace_id) as session:
        view = access_entry(session, workspace_id, entry_id)
        data = check_entry(language="es", phrasings=["¿Tienen paletas?"], answer="Sí.")
        do_update_entry(session, view, data)
    assert best(db, workspace_id, "helados") == (None, 0.0)
    assert best(db, workspace_id, "tienen paletas") == ("Sí.", 1.0)
