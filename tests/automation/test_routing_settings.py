"""Routing settings through the web UI and the REST API: a supervisor sets a team's
strategy and capacity on the teams page (the members stay the admins'), the idle time
before agents are away, and a number's default team on its page; the team's queue links
to the inbox filtered to it; agents can do none of it; refusals say why."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import AuditEntry, Workspace
from puente.app import create_app
from puente.automation.routing.models import TeamRouting
from puente.channels.models import Channel
from puente.config import Settings
from puente.db.session import Database
from tests.factories import (
    PASSWORD,
    make_channel,
    make_team,
    make_token,
    make_user,
    make_workspace,
)
from tests.inbox.conftest import NOW
from tests.inbox.helpers import add_conversation
from tests.webclient import WebClient

SUPERVISOR, AGENT, ADMIN = "sofia@acme.example", "beto@acme.example", "alba@acme.example"


@pytest.fixture
def ids(db: Database) -> dict[str, int]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="admin", email=ADMIN, name="Alba")
        make_user(session, ws, role="supervisor", email=SUPERVISOR, name="Sofía")
        beto = make_user(session, ws, role="agent", email=AGENT, name="Beto")
        team = make_team(session, ws, "Soporte", [beto])
        channel = make_channel(session, ws)
        waiting = add_conversation(session, ws.id, channel.id, "Lucía", at=NOW, team_id=team.id)
        return {
            "workspace": ws.id,
            "team": team.id,
            "channel": channel.id,
            "waiting": waiting.id,
        }


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


def as_(app: FastAPI, email: str) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def _routing(db: Database, team_id: int) -> tuple[str, int | None] | None:
    with db.read(unscoped="test") as session:
        row = session.get(TeamRouting, team_id)
        return (row.strategy, row.capacity) if row else None


def _audited(db: Database, action: str) -> list[dict[str, object]]:
    with db.read(unscoped="test") as session:
        return [
            e.details
            for e in session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        ]


def test_a_supervisor_sets_a_teams_strategy_and_capacity_on_the_teams_page(
    app: FastAPI, db: Database, ids: dict[str, int]
) -> None:
    web = as_(app, SUPERVISOR)
    page = web.get("/settings/teams")
    assert page.status_code == 200
    assert 'data-testid="routing-Soporte"' in page.text
    assert "1 conversation waits in the team's queue." in page.text
    assert f'href="/inbox?tab=unassigned&amp;team={ids["team"]}"' in page.text
    # Members and deleting stay with the admins.
    assert f'action="/settings/teams/{ids["team"]}/members"' not in page.text
    assert "Beto" in page.text

    saved = web.htmx(
        "POST",
        f"/settings/teams/{ids['team']}/routing",
        data={"strategy": "least_busy", "capacity": "4"},
    )
    assert saved.status_code == 200
    assert 'data-testid="routing-saved"' in saved.text
    assert '<option value="least_busy" selected>' in saved.text
    assert _routing(db, ids["team"]) == ("least_busy", 4)
    assert _audited(db, "team.routing_changed") == [{"strategy": "least_busy", "capacity": 4}]

    # An empty capacity is no limit; nonsense is refused, and nothing changes.
    web.htmx("POST", f"/settings/teams/{ids['team']}/routing", data={"strategy": "round_robin"})
    assert _routing(db, ids["team"]) == ("round_robin", None)
    refused = web.htmx(
        "POST",
        f"/settings/teams/{ids['team']}/routing",
        data={"strategy": "least_busy", "capacity": "0"},
    )
    assert refused.status_code == 422
    assert "from 1 to 1000" in refused.text
    refused = web.htmx(
        "POST", f"/settings/teams/{ids['team']}/routing", data={"strategy": "whoever"}
    )
    assert refused.status_code == 422
    assert "Choose how the team" in refused.text
    assert _routing(db, ids["team"]) == ("round_robin", None)


def test_the_queue_link_opens_the_inbox_on_the_teams_waiting_conversations(
    app: FastAPI, ids: dict[str, int]
) -> None:
    web = as_(app, SUPERVISOR)
    listing = web.get(f"/inbox?tab=unassigned&team={ids['team']}")
    assert listing.status_code == 200
    assert f'href="/inbox/c/{ids["waiting"]}' in listing.text


def test_an_admin_still_runs_the_members_beside_the_routing(
    app: FastAPI, ids: dict[str, int]
) -> None:
    page = as_(app, ADMIN).get("/settings/teams")
    assert f'action="/settings/teams/{ids["team"]}/members"' in page.text
    assert f'action="/settings/teams/{ids["team"]}/routing"' in page.text


def test_the_idle_time_before_agents_are_away_is_a_workspace_setting(
    app: FastAPI, db: Database, ids: dict[str, int]
) -> None:
    web = as_(app, SUPERVISOR)
    assert 'name="away_after_minutes"' in web.get("/settings/teams").text
    saved = web.htmx("POST", "/settings/availability", data={"away_after_minutes": "25"})
    assert saved.status_code == 200 and 'value="25"' in saved.text
    refused = web.htmx("POST", "/settings/availability", data={"away_after_minutes": "1"})
    assert refused.status_code == 422
    assert "from 2 to 1440 minutes" in refused.text
    with db.read(unscoped="test") as session:
        ws = session.get(Workspace, ids["workspace"])
        assert ws is not None and ws.settings["away_after_minutes"] == 25
    assert _audited(db, "settings.changed") == [{"away_after_minutes": 25}]


def test_a_numbers_page_sends_its_new_conversations_to_a_team(
    app: FastAPI, db: Database, ids: dict[str, int]
) -> None:
    web = as_(app, ADMIN)
    page = web.get(f"/channels/{ids['channel']}")
    assert f'hx-get="/channels/{ids["channel"]}/routing"' in page.text
    section = web.htmx("GET", f"/channels/{ids['channel']}/routing")
    assert section.status_code == 200
    assert 'data-testid="default-team"' in section.text and "Soporte" in section.text

    saved = web.htmx("POST", f"/channels/{ids['channel']}/routing", data={"team_id": ids["team"]})
    assert saved.status_code == 200
    assert f'<option value="{ids["team"]}" selected>' in saved.text
    with db.read(unscoped="test") as session:
        channel = session.get(Channel, ids["channel"])
        assert channel is not None and channel.default_team_id == ids["team"]

    # Deleting the team leaves the number sending to no team.
    web.post(f"/settings/teams/{ids['team']}/delete", data={})
    with db.read(unscoped="test") as session:
        channel = session.get(Channel, ids["channel"])
        assert channel is not None and channel.default_team_id is None


def test_agents_set_no_routing(app: FastAPI, db: Database, ids: dict[str, int]) -> None:
    web = as_(app, AGENT)
    assert web.get("/settings/teams").status_code == 403
    team = f"/settings/teams/{ids['team']}/routing"
    assert web.post(team, data={"strategy": "round_robin"}).status_code == 403
    assert web.post("/settings/availability", data={"away_after_minutes": "3"}).status_code == 403
    assert (
        web.post(f"/channels/{ids['channel']}/routing", data={"team_id": ids["team"]}).status_code
        == 403
    )
    assert _routing(db, ids["team"]) is None


def test_the_api_reads_and_sets_team_routing_and_a_numbers_default_team(
    app: FastAPI, db: Database, ids: dict[str, int]
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, ids["workspace"])
        assert ws is not None
        token = make_token(session, ws, ["automation:read", "automation:write"])
        read_only = make_token(session, ws, ["automation:read"])
        other = make_workspace(session, "Otra")
        foreign = make_team(session, other, "Ajeno", []).id
    with TestClient(
        app, base_url="http://testserver/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as api:
        teams = api.get("/teams").json()
        assert teams == [
            {
                "team_id": ids["team"],
                "name": "Soporte",
                "strategy": "manual",
                "capacity": None,
                "queued": 1,
                "members": [
                    {"id": teams[0]["members"][0]["id"], "name": "Beto", "availability": "offline"}
                ],
            }
        ]
        res = api.put(
            f"/teams/{ids['team']}/routing", json={"strategy": "round_robin", "capacity": 3}
        )
        assert res.status_code == 200, res.text
        assert (res.json()["strategy"], res.json()["capacity"]) == ("round_robin", 3)
        assert _routing(db, ids["team"]) == ("round_robin", 3)

        bad = api.put(f"/teams/{ids['team']}/routing", json={"strategy": "random"})
        assert bad.status_code == 422
        assert api.put(f"/teams/{foreign}/routing", json={"strategy": "manual"}).status_code == 404

        res = api.put(f"/channels/{ids['channel']}/routing", json={"default_team_id": ids["team"]})
        assert res.json() == {"channel_id": ids["channel"], "default_team_id": ids["team"]}
        assert (
            api.get(f"/channels/{ids['channel']}/routing").json()["default_team_id"] == ids["team"]
        )
        gone = api.put(f"/channels/{ids['channel']}/routing", json={"default_team_id": foreign})
        assert gone.status_code == 404

        denied = api.put(
            f"/teams/{ids['team']}/routing",
            json={"strategy": "manual"},
            headers={"Authorization": f"Bearer {read_only}"},
        )
        assert denied.status_code == 403
        spec = api.get("/openapi.json").json()
        assert {"/teams", "/teams/{team_id}/routing", "/channels/{channel_id}/routing"} <= set(
            spec["paths"]
        )
        assert "routing" in [
            t for op in spec["paths"]["/teams/{team_id}/routing"].values() for t in op["tags"]
        ]
