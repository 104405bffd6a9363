"""The rules a workflow is checked and run by, one at a time: what publishing refuses
(each problem named by its place), how keywords and conditions compare (accents and case
ignored, numbers as numbers, tags as a list), when a "wait until 09:00" wakes in the
number's time zone, and that a definition file with an unknown field or another format
version gets a clear error."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from puente.automation.workflows.checks import problems
from puente.automation.workflows.context import compare
from puente.automation.workflows.definition import Trigger, parse_definition
from puente.automation.workflows.engine import next_time_of_day
from puente.automation.workflows.service import parse_workflow_file
from puente.automation.workflows.triggers import keyword_matches
from puente.db.session import Database
from puente.errors import InvalidInput
from tests.factories import make_workspace


def _problems(db: Database, definition: dict[str, Any]) -> list[tuple[str, str]]:
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session)
        found = problems(session, workspace.id, parse_definition(definition))
        return [(p.where, p.message) for p in found]


def test_publishing_names_each_problem_by_its_place(db: Database) -> None:
    found = _problems(
        db,
        {
            "trigger": {"type": "message_received", "match": "keyword", "keywords": [" "]},
            "steps": [
                {"id": "ask", "type": "question", "text": "¿Qué buscas?", "options": []},
                {"id": "go", "type": "jump", "target": "nowhere"},
                {"id": "who", "type": "assign"},
                {
                    "id": "tpl",
                    "type": "send_template",
                    "template": {"name": "no_such", "language": "es"},
                },
            ],
        },
    )
    where = {w for w, _ in found}
    assert where == {
        "trigger.keywords",
        "steps.ask.options",
        "steps.go",
        "steps.who.agent_id",
        "steps.tpl.template",
    }
    assert ("steps.go", "It goes to “nowhere”, which is not a step.") in found
    assert any("does not exist" in m for w, m in found if w == "steps.tpl.template")


def test_a_loop_without_a_wait_is_refused_and_one_with_a_wait_is_not(db: Database) -> None:
    spinning = {
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "a", "type": "add_tag", "tag": "x", "next": "b"},
            {"id": "b", "type": "jump", "target": "a"},
        ],
    }
    assert _problems(db, spinning) == [
        ("steps.a", "Steps loop back to “a” without a wait or a question.")
    ]
    waiting = {
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "a", "type": "add_tag", "tag": "x", "next": "w"},
            {"id": "w", "type": "wait", "minutes": 60, "next": "b"},
            {"id": "b", "type": "jump", "target": "a"},
        ],
    }
    assert _problems(db, waiting) == []


def test_a_file_with_an_unknown_field_or_another_version_gets_a_clear_error() -> None:
    good = {
        "format": "puente.workflow",
        "version": 1,
        "name": "Menú",
        "definition": {"trigger": {"type": "manual"}, "steps": []},
    }
    assert parse_workflow_file(good)[0] == "Menú"
    with pytest.raises(InvalidInput, match="Unknown field in the workflow file: colour"):
        parse_workflow_file({**good, "colour": "red"})
    with pytest.raises(InvalidInput, match="version 2; this Puente reads version 1"):
        parse_workflow_file({**good, "version": 2})
    typo = {
        **good,
        "definition": {
            "trigger": {"type": "manual"},
            "steps": [{"id": "a", "type": "end", "nxt": "b"}],
        },
    }
    with pytest.raises(InvalidInput, match=r"steps\.0\.nxt: unknown field"):
        parse_workflow_file(typo)
    with pytest.raises(InvalidInput, match=r"trigger\.type"):
        parse_workflow_file({**good, "definition": {"trigger": {"type": "sometimes"}}})


@pytest.mark.parametrize(
    ("text", "mode", "matches"),
    [
        ("¿Cuál es el PRECIO?", "contains", True),
        ("precios", "contains", False),  # whole words only
        ("quiero ver el catálogo de zapatos", "contains", True),  # a phrase
        ("Catalogo de Zapatos!!", "contains", True),
        ("precio", "exact", True),
        ("el precio", "exact", False),
    ],
)
def test_keywords_ignore_accents_case_and_punctuation(text: str, mode: str, matches: bool) -> None:
    trigger = Trigger.model_validate(
        {
            "type": "message_received",
            "match": "keyword",
            "keywords": ["precio", "catálogo de zapatos"],
            "keyword_mode": mode,
        }
    )
    assert keyword_matches(trigger, text) is matches


@pytest.mark.parametrize(
    ("actual", "op", "expected", "holds"),
    [
        ("Bogotá", "eq", "bogota", True),
        ("Bogotá", "ne", "Medellín", True),
        (["vip", "mayorista"], "contains", "VIP", True),
        (["vip"], "not_contains", "mayorista", True),
        ("12", "gt", "9", True),  # numbers compare as numbers, not as text
        ("08:30", "lt", "09:00", True),
        ("zapatos", "in", "ropa, zapatos", True),
        (None, "exists", None, False),
        ("", "not_exists", None, True),
        (None, "gt", "3", False),
    ],
)
def test_conditions_compare_as_a_person_would(
    actual: Any, op: str, expected: Any, holds: bool
) -> None:
    assert compare(actual, op, expected) is holds


def test_waiting_until_a_time_of_day_wakes_at_the_next_one_in_the_numbers_time_zone() -> None:
    # 10:00 in Bogotá (UTC-5): 09:00 has passed today, so tomorrow's.
    now = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)
    assert next_time_of_day("09:00", "America/Bogota", now) == dt.datetime(
        2026, 12, 8, 14, 0, tzinfo=dt.UTC
    )
    assert next_time_of_day("18:30", "America/Bogota", now) == dt.datetime(
        2026, 12, 7, 23, 30, tzinfo=dt.UTC
    )
