"""/settings/teams: an admin creates a team, chooses its members and deletes it; a second
team with the same name is refused with the reason on the page; an agent cannot reach it."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import Team, TeamMember, User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient

# How the pages look and read runs on one leg: what they change is checked on both engines
# through the API and the domain tests (see the one_leg marker in tests/conftest.py).
pytestmark = pytest.mark.one_leg


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="admin", email="admin@example.com", name="Alba")
        make_user(session, ws, role="agent", email="agent@example.com", name="Beto")
    return create_app(settings, db, run_workers=False)


def as_(app: FastAPI, email: str) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def members(db: Database, team: str) -> list[str]:
    with db.read(unscoped="test") as session:
        return sorted(
            session.scalars(
                select(User.name)
                .join(TeamMember, TeamMember.user_id == User.id)
                .join(Team, Team.id == TeamMember.team_id)
                .where(Team.name == team)
            )
        )


def test_an_admin_runs_a_team_from_the_settings_page(app: FastAPI, db: Database) -> None:
    web = as_(app, "admin@example.com")
    created = web.post("/settings/teams", data={"name": "  Ventas "})
    assert created.status_code == 200
    assert "Team created." in created.text
    assert 'data-testid="team-Ventas"' in created.text

    again = web.post("/settings/teams", data={"name": "Ventas"})
    assert again.status_code == 409
    assert "a team called &#39;Ventas&#39; exists already" in again.text

    with db.read(unscoped="test") as session:
        team_id = session.scalar(select(Team.id).where(Team.name == "Ventas"))
        beto = session.scalar(select(User.id).where(User.name == "Beto"))
    saved = web.post(f"/settings/teams/{team_id}/members", data={"user_ids": [str(beto)]})
    assert "Team members saved." in saved.text
    assert members(db, "Ventas") == ["Beto"]
    checked = re.search(rf'value="{beto}" checked', saved.text)
    assert checked is not None  # the page shows who is in it

    deleted = web.post(f"/settings/teams/{team_id}/delete", data={})
    assert "Team deleted." in deleted.text
    assert "No teams yet." in deleted.text


def test_an_agent_cannot_change_teams(app: FastAPI, db: Database) -> None:
    web = as_(app, "agent@example.com")
    assert web.post("/settings/teams", data={"name": "Soporte"}).status_code == 403
    with db.read(unscoped="test") as session:
        assert session.scalar(select(Team.id).where(Team.name == "Soporte")) is None
