"""The ready-made workflows: each of the nine installs as a draft that can be published at
once in a workspace with a team and an agent; without them, publishing names the step
that needs one; the customer reads them in Spanish or English."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.workflows.checks import problems
from puente.automation.workflows.library import BY_KEY, LIBRARY, do_install, targets_of
from puente.automation.workflows.service import PublishRefused, do_publish, draft_of
from puente.db.session import Database
from puente.errors import InvalidInput, NotFound
from tests.factories import make_team, make_user, make_workspace

NINE = [
    "close_and_bot_on",
    "assign_to_agent",
    "auto_assign_sales",
    "auto_assign_support",
    "auto_assign_high_volume",
    "message_on_assignment",
    "out_of_hours",
    "agents_busy",
    "menu_routing",
]


def staffed(session: Session) -> Workspace:
    workspace = make_workspace(session, "Tienda La Esquina")
    make_user(session, workspace, role="admin")
    agent = make_user(session, workspace, role="agent")
    make_team(session, workspace, "Ventas", [agent])
    return workspace


def test_the_library_holds_the_nine_classic_workflows() -> None:
    assert [item.key for item in LIBRARY] == NINE
    assert len({item.name for item in LIBRARY}) == 9
    assert all(item.description.endswith(".") for item in LIBRARY)


@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("key", NINE)
def test_each_installs_as_a_draft_that_passes_the_checks(
    db: Database, key: str, language: str
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = staffed(session)
        targets = targets_of(session, workspace.id)
        assert targets.team_id is not None and targets.agent_id is not None
        workflow = do_install(session, workspace.id, key, "test", language=language)
        assert (workflow.name, workflow.template_key, workflow.enabled) == (
            BY_KEY[key].name,
            key,
            False,
        )
        assert workflow.description == BY_KEY[key].description
        assert problems(session, workspace.id, draft_of(workflow)) == []
        assert do_publish(session, workflow).number == 1


def test_assign_steps_name_the_first_team_and_the_first_agent(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = staffed(session)
        targets = targets_of(session, workspace.id)
        menu = draft_of(do_install(session, workspace.id, "menu_routing"))
        by_hand = draft_of(do_install(session, workspace.id, "assign_to_agent"))
    sales = menu.step("assign_sales")
    assert sales is not None and sales.team_id == targets.team_id
    assign = by_hand.step("assign")
    assert assign is not None and assign.agent_id == targets.agent_id
    assert by_hand.trigger.type == "manual"


def test_without_a_team_or_an_agent_publishing_names_the_missing_target(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session, "Nueva")
        make_user(session, workspace, role="admin")  # an admin is not an agent
        refused: dict[str, list[str]] = {}
        for key in NINE:
            workflow = do_install(session, workspace.id, key)
            try:
                do_publish(session, workflow)
            except PublishRefused as exc:
                refused[key] = sorted(d["field"] for d in exc.details)
    assert refused == {
        "assign_to_agent": ["steps.assign.agent_id"],
        "auto_assign_sales": ["steps.assign_team.agent_id"],
        "auto_assign_support": ["steps.assign_team.agent_id"],
        "auto_assign_high_volume": ["steps.assign_team.agent_id"],
        "message_on_assignment": ["steps.assign.agent_id"],
        "menu_routing": ["steps.assign_sales.agent_id", "steps.assign_support.agent_id"],
    }


def test_the_customer_reads_the_workspace_language(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = staffed(session)
        es = draft_of(do_install(session, workspace.id, "out_of_hours", language="es"))
        en = draft_of(do_install(session, workspace.id, "out_of_hours", language="en"))
        menu = draft_of(do_install(session, workspace.id, "menu_routing", language="es"))
        named = do_install(session, workspace.id, "menu_routing", name="Menú de bienvenida")
    assert es.steps[0].text.startswith("Hola {contact.name|}")
    assert "fuera de horario" in es.steps[0].text
    assert en.steps[0].text.startswith("Hi {contact.name|}")
    question = menu.step("menu")
    assert question is not None
    assert [o.title for o in question.options] == ["Ventas", "Soporte", "Otro"]
    assert (question.on_invalid, question.on_timeout) == ("not_understood", "assign_support")
    assert named.name == "Menú de bienvenida"


def test_an_unknown_key_or_language_is_refused(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = staffed(session)
        with pytest.raises(NotFound):
            do_install(session, workspace.id, "no_such_workflow")
        with pytest.raises(InvalidInput):
            do_install(session, workspace.id, "out_of_hours", language="fr")
