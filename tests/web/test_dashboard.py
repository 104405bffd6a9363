"""The supervisor's dashboard over HTTP: its figures for a small world (now, the longest
waiting, the team, today beside the same weekday last week up to the same time of day),
who gets it as their start page and who does not get it at all, what a viewer limited to
their teams sees, and the figures drawn again after a conversation closes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from puente.accounts.models import Membership, User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.reports.facts import Fact, Kind, record
from puente.web.routes.dashboard import duration
from tests.factories import PASSWORD, make_channel, make_team, make_user, make_workspace
from tests.inbox.helpers import add_conversation
from tests.statements import counting
from tests.webclient import WebClient

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SCRIPT = {"x-inbox": "1"}


def midday_zone(now: dt.datetime) -> str:
    """A fixed-offset time zone in which `now` falls at midday, so that earlier today and
    later in the day both exist whenever the test runs (Etc/GMT-5 is UTC+5)."""
    offset = 12 - now.hour  # -11 to +12 hours
    if offset == 0:
        return "UTC"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class World:
    workspace_id: int
    channel_id: int
    owner: str
    supervisor: str
    agent: str
    ids: dict[str, int]  # contact name -> conversation id


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _ago(**kwargs: float) -> dt.datetime:
    return NOW - dt.timedelta(**kwargs)


@pytest.fixture
def world(db: Database) -> World:
    # The world's times are counted back from when the test runs: the suite takes minutes
    # (a waiting time measured from the module's import would have grown meanwhile).
    global NOW
    NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ids: dict[str, int] = {}
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        ws.timezone = midday_zone(NOW)
        owner = make_user(session, ws, role="owner", name="Olga Dueña", email="olga@t.example")
        sofia = make_user(session, ws, role="supervisor", name="Sofía", email="sofia@t.example")
        ana = make_user(session, ws, role="agent", name="Ana Pérez", email="ana@t.example")
        beto = make_user(session, ws, role="agent", name="Beto Ruiz", email="beto@t.example")
        owner.availability, ana.availability = "online", "online"
        beto.availability, sofia.availability = "away", "offline"
        soporte = make_team(session, ws, "Soporte", [ana])
        ventas = make_team(session, ws, "Ventas", [beto, sofia])
        channel = make_channel(session, ws)

        def add(name: str, **options: object) -> None:
            waited = options.pop("waited", None)
            at = _ago(minutes=waited) if isinstance(waited, int) else _ago(hours=3)
            conversation = add_conversation(
                session,
                ws.id,
                channel.id,
                name,
                at=at,
                source="customer" if waited is not None else "agent",
                **options,  # type: ignore[arg-type]
            )
            ids[name] = conversation.id

        add("Lucía", waited=50)
        add("Marcos", waited=30, assignee_id=ana.id, team_id=soporte.id)
        add("Nora", waited=10, team_id=ventas.id)
        add("Pablo", waited=70, assignee_id=beto.id, team_id=ventas.id, status="pending")
        add("Quique", assignee_id=ana.id)
        add("Rosa", status="resolved")
        add("Sara", waited=5, assignee_id=beto.id, team_id=ventas.id)
        add("Tomás", waited=1)
        # Another workspace's waiting customer is neither counted nor listed.
        other = make_workspace(session, "Otra")
        add_conversation(
            session, other.id, make_channel(session, other).id, "Zoe", at=_ago(hours=5)
        )
        world = World(ws.id, channel.id, owner.email, sofia.email, ana.email, ids)

    week = dt.timedelta(days=7)
    with db.unit_of_work(scope=world.workspace_id) as session:

        def fact(kind: Kind, at: dt.datetime, **dims: object) -> None:
            record(session, Fact(kind=kind, workspace_id=world.workspace_id, at=at, **dims))  # type: ignore[arg-type]

        earlier = _ago(hours=2)  # today, before now
        for at, new, closed, customer, waits in (
            (earlier, 3, 2, 5, (60, 120, 300)),  # today
            (earlier - week, 2, 1, 3, (600,)),  # last week, before this time of day
            (earlier - week + dt.timedelta(hours=4), 4, 3, 10, (30,)),  # later that day
            (earlier - week - dt.timedelta(days=1), 7, 7, 7, (7,)),  # the day before
        ):
            fact(Kind.OPENED, at, label="new", count=new)
            fact(Kind.OPENED, at, label="reopened", source="agent")
            fact(Kind.RESOLVED, at, count=closed)
            fact(Kind.MESSAGE, at, source="customer", label="text", count=customer)
            fact(Kind.MESSAGE, at, source="agent", label="text", count=4)
            for seconds in waits:
                fact(Kind.FIRST_RESPONSE, at, source="agent", seconds=float(seconds))
    return world


def _login(client: TestClient, email: str) -> WebClient:
    web = WebClient(client)
    assert web.login(email, PASSWORD).status_code == 200
    return web


def _value(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert found, f"no {testid} on the page"
    return found.group(1).strip()


def _waiting(html: str) -> list[str]:
    return re.findall(r'data-testid="dash-waiting-name">([^<]*)<', html)


def test_the_dashboard_shows_the_figures_of_the_workspace(client: TestClient, world: World) -> None:
    page = _login(client, world.owner).get("/dashboard")
    assert page.status_code == 200
    html = page.text
    # Now: open (pending and closed apart), open and nobody's, pending; each a way into
    # the inbox filtered the same way.
    assert _value(html, "dash-open-value") == "6"
    assert _value(html, "dash-unassigned-value") == "3"
    assert _value(html, "dash-pending-value") == "1"
    for href in ('href="/inbox"', 'href="/inbox?tab=unassigned"', 'href="/inbox?status=pending"'):
        assert href in html
    # The five longest waiting, longest first, each opening its conversation.
    assert _waiting(html) == ["Pablo", "Lucía", "Marcos", "Nora", "Sara"]
    assert f'href="/inbox/c/{world.ids["Pablo"]}"' in html
    assert _value(html, "dash-waiting-assignee") == "Beto Ruiz"
    assert "1 hr 10 min" in html
    # The team by availability.
    assert _value(html, "dash-online-value") == "2"
    agents = re.search(r'data-testid="dash-agents-online".*?</div>', html, re.S)
    assert agents and "Ana Pérez, Olga Dueña" in agents.group(0)
    away = re.search(r'data-testid="dash-agents-away".*?</div>', html, re.S)
    assert away and "Beto Ruiz" in away.group(0)
    # Today against the same weekday last week up to the same time of day: the facts
    # later that day and on the day before do not count; only customers' messages are
    # messages received; reopened conversations are not new ones.
    assert _value(html, "dash-today-new-value") == "3"
    assert _value(html, "dash-today-resolved-value") == "2"
    assert _value(html, "dash-today-received-value") == "5"
    assert _value(html, "dash-today-first_response-value") == "2 min"
    compare = {
        key: re.sub(r"\s+", " ", _value(html, f"dash-last-week-{key}"))
        for key in ("new", "resolved", "received", "first_response")
    }
    assert compare == {
        "new": "Last week: 2",
        "resolved": "Last week: 1",
        "received": "Last week: 3",
        "first_response": "Last week: 10 min",
    }
    assert "8 min faster" in html
    assert "the same weekday last week, to the same time of day" in html


def test_supervisors_start_on_the_dashboard_and_agents_in_the_inbox(
    client: TestClient, world: World
) -> None:
    for email in (world.owner, world.supervisor):
        web = _login(client, email)
        home = web.get("/", follow_redirects=False)
        assert home.headers["location"] == "/dashboard"
        assert 'href="/dashboard"' in web.get("/dashboard").text
        web.logout()
    agent = _login(client, world.agent)
    assert agent.get("/", follow_redirects=False).headers["location"] == "/inbox"
    assert agent.get("/dashboard").status_code == 403
    assert agent.get("/dashboard/figures", headers={"hx-request": "true"}).status_code == 403
    assert 'href="/dashboard"' not in agent.get("/inbox").text


def test_a_viewer_limited_to_their_teams_sees_only_those_conversations(
    client: TestClient, world: World, db: Database
) -> None:
    with db.unit_of_work(scope=world.workspace_id) as session:
        membership = (
            session.query(Membership)
            .join(User, User.id == Membership.user_id)
            .filter(User.email == world.supervisor)
            .one()
        )
        membership.permissions = {"conversations.scope": "team"}
    html = _login(client, world.supervisor).get("/dashboard").text
    # Ventas's conversations and the ones no team has yet; not Soporte's or Ana's.
    assert _waiting(html) == ["Pablo", "Lucía", "Nora", "Sara", "Tomás"]
    assert _value(html, "dash-open-value") == "4"
    assert _value(html, "dash-unassigned-value") == "3"
    assert _value(html, "dash-pending-value") == "1"
    assert "Marcos" not in html and "Quique" not in html and "Zoe" not in html


def test_the_figures_are_drawn_again_after_a_conversation_closes(
    client: TestClient, world: World
) -> None:
    web = _login(client, world.owner)
    closed = web.post(
        f"/inbox/c/{world.ids['Lucía']}/close",
        {"note": "", "expected_status": "open"},
        headers=SCRIPT,
    )
    assert closed.status_code == 204
    fragment = web.get("/dashboard/figures", headers={"hx-request": "true"})
    assert fragment.status_code == 200
    html = fragment.text
    assert "<html" not in html and 'id="dash-figures"' in html
    assert 'hx-trigger="dashboard:refresh, every 60s"' in html
    assert _value(html, "dash-open-value") == "5"
    assert _value(html, "dash-unassigned-value") == "2"
    assert _waiting(html) == ["Pablo", "Marcos", "Nora", "Sara", "Tomás"]
    # Closing it counted as closed today.
    assert _value(html, "dash-today-resolved-value") == "3"


# Who is signed in, the counts, the longest waiting with their names, the team, and each
# of the two days' facts (their counts, their first responses).
FIGURES_STATEMENTS = 8


def _figures_statements(web: WebClient, db: Database) -> int:
    with counting(db) as statements:
        assert web.get("/dashboard/figures", headers={"hx-request": "true"}).status_code == 200
    return len(statements)


def test_the_figures_take_the_same_statements_for_a_few_or_many_conversations(
    client: TestClient, world: World, db: Database
) -> None:
    web = _login(client, world.owner)
    few = _figures_statements(web, db)
    with db.unit_of_work(scope=world.workspace_id) as session:
        for n in range(40):
            add_conversation(
                session, world.workspace_id, world.channel_id, f"Cliente {n}", at=_ago(minutes=n)
            )
            record(
                session,
                Fact(
                    kind=Kind.FIRST_RESPONSE,
                    workspace_id=world.workspace_id,
                    at=_ago(minutes=n),
                    seconds=n,
                ),
            )
    assert (few, _figures_statements(web, db)) == (FIGURES_STATEMENTS, FIGURES_STATEMENTS)


@pytest.mark.parametrize(
    ("seconds", "english", "spanish"),
    [
        (None, "—", "—"),
        (0, "0 sec", "0 s"),
        (95, "1 min 35 sec", "1 min 35 s"),
        (700, "12 min", "12 min"),
        (3600 + 36 * 60 + 20, "1 hr 36 min", "1 h 36 min"),
        (9 * 86400 + 3600, "9 days 1 hr", "9 d 1 h"),
    ],
)
def test_durations_read_as_a_person_says_them(
    seconds: float | None, english: str, spanish: str
) -> None:
    assert duration(seconds, "en") == english
    assert duration(seconds, "es") == spanish
