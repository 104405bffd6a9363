"""Managing the knowledge-base bot: the Bot page (settings, entries, the test box) signed
in through the real form, the REST API with a token, and `puente kb export|import` run as
a real command. Supervisors and admins configure it; agents never."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.automation.kb import bot_settings, list_entries
from puente.config import Settings
from puente.db.session import Database
from tests.conftest import SECRET_KEY
from tests.factories import PASSWORD, make_token, make_user, make_workspace
from tests.webclient import WebClient

ENTRY = {
    "language": "es",
    "phrasings": "¿A qué hora abren?\n¿Cuál es el horario?",
    "answer": "De 8 a 20.",
    "enabled": "yes",
}


@pytest.fixture
def shop(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        return make_workspace(session, "Tienda La Esquina").id


def signed_in(
    settings: Settings, db: Database, workspace_id: int, role: str
) -> Iterator[WebClient]:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, workspace_id)
        assert workspace is not None
        email = make_user(session, workspace, role=role).email
    with TestClient(create_app(settings, db)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web


@pytest.fixture
def web(settings: Settings, db: Database, shop: int) -> Iterator[WebClient]:
    yield from signed_in(settings, db, shop, "supervisor")


def entries_of(db: Database, workspace_id: int) -> list[tuple[list[str], str, bool]]:
    with db.read(scope=workspace_id) as session:
        return [
            (v.phrasings, v.entry.answer, v.entry.enabled)
            for v in list_entries(session, workspace_id)
        ]


# -- the page ----------------------------------------------------------------------------------


def test_a_supervisor_adds_edits_and_deletes_an_entry(
    web: WebClient, db: Database, shop: int
) -> None:
    page = web.get("/bot")
    assert page.status_code == 200
    assert 'href="/bot"' in page.text  # in the navigation bar
    added = web.post("/bot/entries/new", ENTRY, follow_redirects=False)
    assert added.status_code == 303
    assert entries_of(db, shop) == [
        (["¿A qué hora abren?", "¿Cuál es el horario?"], "De 8 a 20.", True)
    ]
    listed = web.get(added.headers["location"])
    assert "Entry added." in listed.text and "¿A qué hora abren?" in listed.text

    entry_id = int(listed.text.split('data-entry="')[1].split('"')[0])
    form = web.get(f"/bot/entries/{entry_id}")
    assert "¿Cuál es el horario?" in form.text
    changed = {**ENTRY, "answer": "De 9 a 19.", "enabled": ""}
    assert web.post(f"/bot/entries/{entry_id}", changed, follow_redirects=False).status_code == 303
    assert entries_of(db, shop)[0][1:] == ("De 9 a 19.", False)

    assert web.post(f"/bot/entries/{entry_id}/delete", follow_redirects=False).status_code == 303
    assert entries_of(db, shop) == []


def test_an_entry_without_phrasings_or_answer_is_refused_with_the_reason(
    web: WebClient, db: Database, shop: int
) -> None:
    empty = web.post("/bot/entries/new", {**ENTRY, "phrasings": "  \n "})
    assert empty.status_code == 422
    assert "Write at least one way of asking the question." in empty.text
    no_answer = web.post("/bot/entries/new", {**ENTRY, "answer": ""})
    assert "Write the answer the bot sends." in no_answer.text
    assert entries_of(db, shop) == []


def test_settings_are_saved_and_a_bad_threshold_refused(
    web: WebClient, db: Database, shop: int
) -> None:
    form = {
        "enabled": "yes",
        "threshold": "0.7",
        "max_unanswered": "3",
        "handoff_es": "Ya viene alguien.",
        "handoff_en": "",
    }
    assert web.post("/bot/settings", form, follow_redirects=False).status_code == 303
    with db.read(scope=shop) as session:
        workspace = session.get(Workspace, shop)
        assert workspace is not None
        saved = bot_settings(workspace)
    assert (saved.enabled, saved.threshold, saved.max_unanswered) == (True, 0.7, 3)
    assert saved.handoff_es == "Ya viene alguien." and saved.handoff_en.startswith("I'm passing")

    refused = web.post("/bot/settings", {**form, "threshold": "1.5"})
    assert refused.status_code == 422
    assert "The confidence threshold is a number from 0 to 1." in refused.text


def test_the_test_box_shows_the_match_its_score_and_the_verdict(web: WebClient) -> None:
    web.post("/bot/entries/new", ENTRY)
    web.post("/bot/settings", {"enabled": "yes", "threshold": "0.5", "max_unanswered": "2"})

    answered = web.htmx("POST", "/bot/test", data={"question": "horario"})
    assert answered.status_code == 200
    assert 'data-action="answer"' in answered.text
    assert "De 8 a 20." in answered.text
    assert 'data-score="1.0"' in answered.text and "¿Cuál es el horario?" in answered.text

    handoff = web.htmx("POST", "/bot/test", data={"question": "quiero hablar con una persona"})
    assert 'data-action="handoff"' in handoff.text
    unknown = web.htmx("POST", "/bot/test", data={"question": "¿venden celulares?"})
    assert 'data-action="wait"' in unknown.text

    # Without scripts the whole page comes back with the result in it.
    page = web.post("/bot/test", {"question": "horario"})
    assert "<h1>" in page.text and 'data-action="answer"' in page.text


def test_agents_neither_see_nor_reach_the_bot_page(
    settings: Settings, db: Database, shop: int
) -> None:
    for agent in signed_in(settings, db, shop, "agent"):
        assert 'href="/bot"' not in agent.get("/inbox").text
        assert agent.get("/bot").status_code == 403
        assert agent.post("/bot/entries/new", ENTRY).status_code == 403


# -- the REST API ------------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings, db: Database, shop: int) -> Iterator[TestClient]:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, shop)
        assert workspace is not None
        token = make_token(session, workspace)
    with TestClient(create_app(settings, db), base_url="http://testserver/api/v1") as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_entries_through_the_api(api: TestClient) -> None:
    created = api.post("/kb/entries", json={"phrasings": ["¿Hacen envíos?"], "answer": "Sí."})
    assert created.status_code == 201, created.text
    entry = created.json()
    assert (entry["language"], entry["phrasings"], entry["enabled"]) == (
        "es",
        ["¿Hacen envíos?"],
        True,
    )

    changed = api.patch(f"/kb/entries/{entry['id']}", json={"enabled": False, "answer": "No."})
    assert changed.status_code == 200
    assert (changed.json()["answer"], changed.json()["enabled"], changed.json()["phrasings"]) == (
        "No.",
        False,
        ["¿Hacen envíos?"],
    )
    assert [e["id"] for e in api.get("/kb/entries").json()["items"]] == [entry["id"]]
    assert api.delete(f"/kb/entries/{entry['id']}").status_code == 204
    assert api.get(f"/kb/entries/{entry['id']}").status_code == 404
    assert "/kb/entries" in api.get("/openapi.json").json()["paths"]


def test_the_api_refuses_bad_entries_and_settings_naming_the_field(api: TestClient) -> None:
    bad = api.post("/kb/entries", json={"language": "fr", "phrasings": ["x"], "answer": "y"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "language"
    long = api.post("/kb/entries", json={"phrasings": ["x" * 501], "answer": "y"})
    assert long.json()["error"]["details"][0]["field"] == "phrasings"
    unknown = api.post("/kb/entries", json={"phrasings": ["x"], "answer": "y", "tags": []})
    assert unknown.status_code == 422

    settings = api.get("/kb/settings").json()
    assert settings["enabled"] is False
    refused = api.put("/kb/settings", json={**settings, "max_unanswered": 0})
    assert refused.json()["error"]["details"][0]["field"] == "max_unanswered"
    on = api.put("/kb/settings", json={**settings, "enabled": True})
    assert on.status_code == 200 and api.get("/kb/settings").json()["enabled"] is True


def test_a_token_without_the_automation_scope_is_refused(
    settings: Settings, db: Database, shop: int
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, shop)
        assert workspace is not None
        token = make_token(session, workspace, scopes=["automation:read"])
    with TestClient(create_app(settings, db), base_url="http://testserver/api/v1") as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.get("/kb/entries").status_code == 200
        refused = client.post("/kb/entries", json={"phrasings": ["x"], "answer": "y"})
        assert refused.status_code == 403


# -- the command line --------------------------------------------------------------------------


def puente(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUENTE_DATA_DIR": str(settings.data_dir), "PUENTE_SECRET_KEY": SECRET_KEY}
    if settings.database_url:
        env["PUENTE_DATABASE_URL"] = settings.database_url
    else:
        env.pop("PUENTE_DATABASE_URL", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "puente"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_export_and_import_carry_the_entries_to_another_workspace(
    settings: Settings, db: Database, shop: int, tmp_path: Path
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Sucursal Norte")
    source = tmp_path / "kb.json"
    source.write_text(
        json.dumps(
            {
                "version": 1,
                "entries": [
                    {"language": "es", "phrasings": ["¿Abren hoy?"], "answer": "Sí."},
                    {
                        "language": "en",
                        "phrasings": ["Open today?"],
                        "answer": "Yes.",
                        "enabled": False,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    done = puente(
        settings, "kb", "import", "--workspace", "Tienda La Esquina", "--file", str(source)
    )
    assert done.returncode == 0, done.stderr
    assert "2 entries added, 0 updated" in done.stdout
    again = puente(
        settings, "kb", "import", "--workspace", "Tienda La Esquina", "--file", str(source)
    )
    assert "0 entries added, 2 updated" in again.stdout

    exported = puente(settings, "kb", "export", "--workspace", "Tienda La Esquina")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data == json.loads(source.read_text()) | {
        "entries": [
            {"language": "es", "phrasings": ["¿Abren hoy?"], "answer": "Sí.", "enabled": True},
            {"language": "en", "phrasings": ["Open today?"], "answer": "Yes.", "enabled": False},
        ]
    }
    copy = tmp_path / "copy.json"
    copy.write_text(exported.stdout, encoding="utf-8")
    moved = puente(settings, "kb", "import", "-w", "Sucursal Norte", "-f", str(copy), "--replace")
    assert moved.returncode == 0, moved.stderr
    with db.read(unscoped="test") as session:
        from sqlalchemy import select

        north = session.scalars(
            select(Workspace.id).where(Workspace.name == "Sucursal Norte")
        ).one()
    assert [e[0] for e in entries_of(db, north)] == [["¿Abren hoy?"], ["Open today?"]]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            '{"version": 2, "entries": []}',
            "version: This file is version 2; Puente reads version 1.",
        ),
        ('{"version": 1, "entries": [], "owner": "x"}', "owner: Unknown field owner."),
        (
            '{"version": 1, "entries": [{"language": "es", "phrasings": ["a"], "answer": "b", "x": 1}]}',
            "entries.0.x: Unknown field x.",
        ),
        (
            '{"version": 1, "entries": [{"language": "es", "phrasings": [], "answer": "b"}]}',
            "entries.0.phrasings: Write at least one way of asking the question.",
        ),
        ("not json", "not JSON"),
    ],
)
def test_a_bad_file_is_refused_whole_with_its_problem_named(
    settings: Settings, db: Database, shop: int, tmp_path: Path, content: str, said: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    done = puente(settings, "kb", "import", "--workspace", "Tienda La Esquina", "--file", str(bad))
    assert done.returncode == 2
    assert said in done.stderr
    assert entries_of(db, shop) == []
