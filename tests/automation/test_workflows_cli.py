"""`puente workflows ...` run as a real command: import a file, publish it (or see each
problem named), switch it on and off, list, export and the runs; a bad file or an unknown
id fails with one line and status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.automation.workflows.models import Workflow, WorkflowRun
from puente.automation.workflows.service import do_start_manual_run
from puente.config import Settings
from puente.db.session import Database
from tests.command import Ran, environment, run_puente
from tests.factories import make_channel, make_contact, make_conversation, make_workspace

SHOP = "Tienda La Esquina"


def puente(settings: Settings, *args: str) -> Ran:
    return run_puente(environment(settings), *args)


DOCUMENT: dict[str, Any] = {
    "format": "puente.workflow",
    "version": 1,
    "name": "Bienvenida",
    "description": "Saluda",
    "definition": {
        "version": 1,
        "trigger": {"type": "api"},
        "steps": [{"id": "hola", "type": "send_message", "text": "Hola {contact.name|}"}],
    },
}


@pytest.fixture
def shop(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        return make_workspace(session, SHOP).id


def write(tmp_path: Path, data: Any, name: str = "workflow.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def workflows_of(db: Database, workspace_id: int) -> list[tuple[str, bool, bool]]:
    with db.read(scope=workspace_id) as session:
        return [
            (w.name, w.published_version_id is not None, w.enabled)
            for w in session.scalars(select(Workflow).order_by(Workflow.id))
        ]


def test_import_publish_switch_on_list_and_export(
    settings: Settings, db: Database, shop: int, tmp_path: Path
) -> None:
    assert puente(settings, "workflows", "list", "-w", SHOP).stdout == "no workflows\n"
    imported = puente(settings, "workflows", "import", str(write(tmp_path, DOCUMENT)), "-w", SHOP)
    assert imported.returncode == 0, imported.stderr
    workflow_id = imported.stdout.split()[1]
    assert imported.stdout == f"workflow {workflow_id} “Bienvenida” imported as a draft\n"

    published = puente(settings, "workflows", "publish", workflow_id, "-w", SHOP)
    assert published.stdout == f"workflow {workflow_id} published as version 1\n"
    enabled = puente(settings, "workflows", "enable", workflow_id, "--workspace", SHOP)
    assert enabled.stdout == f"workflow {workflow_id} is on\n"
    assert workflows_of(db, shop) == [("Bienvenida", True, True)]

    listed = puente(settings, "workflows", "list", "-w", SHOP).stdout.split()
    assert listed[:4] == [workflow_id, "on", "v1", "api"]
    assert "Bienvenida" in listed

    exported = puente(settings, "workflows", "export", workflow_id, "-w", SHOP)
    assert json.loads(exported.stdout) == DOCUMENT
    target = tmp_path / "out.json"
    to_file = puente(settings, "workflows", "export", workflow_id, "-w", SHOP, "-o", str(target))
    assert to_file.returncode == 0 and f"written to {target}" in to_file.stderr
    assert json.loads(target.read_text(encoding="utf-8")) == DOCUMENT

    disabled = puente(settings, "workflows", "disable", workflow_id, "-w", SHOP)
    assert disabled.stdout == f"workflow {workflow_id} is off\n"
    assert workflows_of(db, shop) == [("Bienvenida", True, False)]


def test_publish_names_each_problem(
    settings: Settings, db: Database, shop: int, tmp_path: Path
) -> None:
    broken = {
        **DOCUMENT,
        "definition": {
            "trigger": {"type": "manual"},
            "steps": [
                {"id": "asignar", "type": "assign", "next": "fin"},
                {"id": "hola", "type": "send_message"},
            ],
        },
    }
    imported = puente(settings, "workflows", "import", str(write(tmp_path, broken)), "-w", SHOP)
    workflow_id = imported.stdout.split()[1]
    refused = puente(settings, "workflows", "publish", workflow_id, "-w", SHOP)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "puente: error: the workflow cannot be published:",
        "  steps.asignar: It goes to “fin”, which is not a step.",
        "  steps.asignar.agent_id: Choose an agent or a team.",
        "  steps.hola.text: Write the text to send.",
    ]
    not_published = puente(settings, "workflows", "enable", workflow_id, "-w", SHOP)
    assert not_published.returncode == 2
    assert not_published.stderr == ("puente: error: Publish the workflow before switching it on.\n")
    assert workflows_of(db, shop) == [("Bienvenida", False, False)]


def test_runs_lists_the_newest_first_with_their_state(
    settings: Settings, db: Database, shop: int, tmp_path: Path
) -> None:
    imported = puente(settings, "workflows", "import", str(write(tmp_path, DOCUMENT)), "-w", SHOP)
    workflow_id = int(imported.stdout.split()[1])
    puente(settings, "workflows", "publish", str(workflow_id), "-w", SHOP)
    puente(settings, "workflows", "enable", str(workflow_id), "-w", SHOP)
    assert puente(settings, "workflows", "runs", str(workflow_id), "-w", SHOP).stdout == (
        "no runs\n"
    )
    with db.unit_of_work(scope=shop) as session:
        workspace = session.get(Workspace, shop)
        workflow = session.get(Workflow, workflow_id)
        assert workspace is not None and workflow is not None
        contact = make_contact(session, workspace)
        conversation = make_conversation(session, make_channel(session, workspace), contact)
        first = do_start_manual_run(
            session, workflow, contact=contact, conversation=conversation, key="one"
        )
        second = do_start_manual_run(
            session, workflow, contact=contact, conversation=conversation, key="two"
        )
        first.status, first.error = "failed", "The template was paused."
        ids, contact_id = (first.id, second.id), contact.id

    runs = puente(settings, "workflows", "runs", str(workflow_id), "-w", SHOP)
    lines = runs.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["run", str(ids[1]), "ready"],
        ["run", str(ids[0]), "failed"],
    ]
    assert lines[1].endswith(f"contact {contact_id}  step hola  The template was paused.")
    failed = puente(
        settings, "workflows", "runs", str(workflow_id), "-w", SHOP, "--status", "failed"
    )
    assert len(failed.stdout.splitlines()) == 1
    bad = puente(settings, "workflows", "runs", str(workflow_id), "-w", SHOP, "--status", "odd")
    assert bad.returncode == 2 and bad.stderr.startswith("puente: error: unknown status 'odd'")
    with db.read(scope=shop) as session:
        assert len(session.scalars(select(WorkflowRun.id)).all()) == 2


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ({**DOCUMENT, "owner": "x"}, "puente: error: Unknown field in the workflow file: owner."),
        (
            {**DOCUMENT, "version": 2},
            "puente: error: This workflow file is version 2; this Puente reads version 1.",
        ),
        (
            {**DOCUMENT, "definition": {**DOCUMENT["definition"], "colour": "red"}},
            "puente: error: The workflow is not valid: colour: unknown field",
        ),
        ("not json", "not JSON"),
    ],
)
def test_a_bad_file_is_refused_with_one_line(
    settings: Settings, db: Database, shop: int, tmp_path: Path, content: Any, said: str
) -> None:
    done = puente(settings, "workflows", "import", str(write(tmp_path, content)), "-w", SHOP)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and said in done.stderr
    assert workflows_of(db, shop) == []


def test_another_workspaces_workflow_is_not_found(
    settings: Settings, db: Database, shop: int, tmp_path: Path
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Sucursal Norte")
    imported = puente(settings, "workflows", "import", str(write(tmp_path, DOCUMENT)), "-w", SHOP)
    workflow_id = imported.stdout.split()[1]
    for command in ("publish", "export", "runs"):
        done = puente(settings, "workflows", command, workflow_id, "-w", "Sucursal Norte")
        assert done.returncode == 2, command
        assert done.stderr == "puente: error: There is no such workflow in this workspace.\n"
