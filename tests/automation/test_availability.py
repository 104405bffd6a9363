"""Automatic availability over real HTTP: an open tab's event stream keeps its person
seen, the browser's activity reports keep them online, and the sweep (as a worker runs
it, given a later clock) turns the idle away and those whose last tab closed offline;
what a person chose themselves is left alone. Colleagues' streams hear each change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from puente.accounts.models import User, Workspace
from puente.accounts.presence import IDLE_SETTING, OFFLINE_AFTER
from puente.app import create_app
from puente.automation.routing.worker import sweep_step
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.factories import PASSWORD, make_user, make_workspace
from tests.inbox.test_realtime import Stream
from tests.waiting import wait_until
from tests.webclient import WebClient

ANA, BETO = "ana@esquina.example", "beto@esquina.example"


class Browser:
    """One person's browser: signed in, with as many tabs (event streams) as opened."""

    def __init__(self, server: LiveServer, email: str) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=httpx.Timeout(20.0))
        self.web = WebClient(self.http)
        assert self.web.login(email, PASSWORD).status_code == 200
        self.tabs: list[tuple[Stream, AbstractContextManager[Any]]] = []

    def open_tab(self) -> Stream:
        cm = self.http.stream("GET", "/inbox/events", headers={"accept": "text/event-stream"})
        response = cm.__enter__()
        assert response.status_code == 200
        stream = Stream(response)
        stream.wait_connected()
        self.tabs.append((stream, cm))
        return stream

    def close_tab(self) -> None:
        _stream, cm = self.tabs.pop()
        cm.__exit__(None, None, None)

    def active(self) -> None:
        """What static/presence.js sends when its person touches the page."""
        res = self.http.post("/me/active", headers={"x-csrf-token": self.web.csrf or ""})
        assert res.status_code == 204, res.text

    def close(self) -> None:
        while self.tabs:
            self.close_tab()
        self.http.close()


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def server(app: FastAPI, live_server_factory: type[LiveServer]) -> LiveServer:
    return live_server_factory(app).start()


@pytest.fixture
def people(db: Database) -> dict[str, int]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        ana = make_user(session, ws, name="Ana Pérez", email=ANA)
        beto = make_user(session, ws, name="Beto Ruiz", email=BETO)
        return {"workspace": ws.id, "ana": ana.id, "beto": beto.id}


@pytest.fixture
def browsers(server: LiveServer) -> Iterator[dict[str, Browser]]:
    opened: dict[str, Browser] = {}
    yield opened
    for browser in opened.values():
        browser.close()


def _availability(db: Database, user_id: int) -> str:
    with db.read(unscoped="test") as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.availability


def _later(db: Database, ahead: float | dt.timedelta, *user_ids: int) -> dt.datetime:
    """A clock `ahead` (minutes, or a timedelta) as the sweep would read it then, with the
    open tabs of `user_ids` having gone on beating until that moment (streams beat every
    30 s)."""
    delta = ahead if isinstance(ahead, dt.timedelta) else dt.timedelta(minutes=ahead)
    when = utcnow() + delta
    with db.unit_of_work(unscoped="test") as session:
        for user_id in user_ids:
            user = session.get(User, user_id)
            assert user is not None
            user.last_seen_at = when
    return when


def _no_tabs(app: FastAPI) -> bool:
    return bool(app.state.inbox_hub.subscriber_count() == 0)


def _presence_events(stream: Stream, user_id: int, n: int) -> list[str]:
    seen = []
    while len(seen) < n:
        event = stream.next_event()
        if event["kind"] == "presence.changed" and event["data"]["user_id"] == user_id:
            seen.append(event["data"]["availability"])
    return seen


def test_idle_turns_away_and_activity_brings_them_back(
    server: LiveServer, db: Database, people: dict[str, int], browsers: dict[str, Browser]
) -> None:
    ana = browsers["ana"] = Browser(server, ANA)
    beto = browsers["beto"] = Browser(server, BETO)
    ana.open_tab()
    watching = beto.open_tab()
    ana.active()
    assert _availability(db, people["ana"]) == "online"

    # Nine minutes later, tabs still open, she is still online (the workspace says ten)...
    assert sweep_step(db, _later(db, 9, people["ana"], people["beto"])) == 0
    assert _availability(db, people["ana"]) == "online"
    # ...and at eleven both are away (Beto sat idle too), and his open tab hears of her.
    assert sweep_step(db, _later(db, 11, people["ana"], people["beto"])) == 2
    assert _availability(db, people["ana"]) == "away"
    assert _presence_events(watching, people["ana"], 1) == ["away"]

    # She moves her mouse: online again at once.
    ana.active()
    assert _availability(db, people["ana"]) == "online"
    assert _presence_events(watching, people["ana"], 1) == ["online"]


def test_the_workspaces_idle_time_decides_and_zero_means_never(
    server: LiveServer, db: Database, people: dict[str, int], browsers: dict[str, Browser]
) -> None:
    ana = browsers["ana"] = Browser(server, ANA)
    ana.open_tab()
    ana.active()
    for minutes, after, expected in ((30, 20, "online"), (30, 31, "away"), (0, 600, "online")):
        with db.unit_of_work(unscoped="test") as session:
            ws = session.get(Workspace, people["workspace"])
            user = session.get(User, people["ana"])
            assert ws is not None and user is not None
            ws.settings = {**ws.settings, IDLE_SETTING: minutes}
            user.availability = "online"
        sweep_step(db, _later(db, after, people["ana"]))
        assert _availability(db, people["ana"]) == expected, (minutes, after)


def test_closing_the_last_tab_turns_offline_and_a_reload_never_does(
    app: FastAPI,
    server: LiveServer,
    db: Database,
    people: dict[str, int],
    browsers: dict[str, Browser],
) -> None:
    ana = browsers["ana"] = Browser(server, ANA)
    beto = browsers["beto"] = Browser(server, BETO)
    watching = beto.open_tab()
    ana.open_tab()
    ana.open_tab()
    assert _availability(db, people["ana"]) == "online"

    # One of her two tabs closes, then the other reloads (closes and opens again): within
    # the grace period nothing changes.
    ana.close_tab()
    ana.close_tab()
    ana.open_tab()
    grace = OFFLINE_AFTER - dt.timedelta(seconds=5)
    assert sweep_step(db, _later(db, grace, people["beto"])) == 0
    assert _availability(db, people["ana"]) == "online"

    # Her last tab closes: once the grace period is over, she is offline.
    ana.close_tab()
    wait_until(lambda: app.state.inbox_hub.subscriber_count() == 1, what="her stream to end")
    after = OFFLINE_AFTER + dt.timedelta(seconds=1)
    assert sweep_step(db, _later(db, after, people["beto"])) == 1
    assert _availability(db, people["ana"]) == "offline"
    assert _presence_events(watching, people["ana"], 1) == ["offline"]

    # Opening Puente again brings her back.
    ana.open_tab()
    assert _availability(db, people["ana"]) == "online"
    assert _presence_events(watching, people["ana"], 1) == ["online"]


def test_a_status_the_person_chose_is_left_alone(
    app: FastAPI,
    server: LiveServer,
    db: Database,
    people: dict[str, int],
    browsers: dict[str, Browser],
) -> None:
    ana = browsers["ana"] = Browser(server, ANA)
    ana.open_tab()
    res = ana.web.post("/me/availability", {"availability": "away"}, follow_redirects=False)
    assert res.status_code in (200, 303), res.text
    ana.active()  # activity does not undo a choice
    assert _availability(db, people["ana"]) == "away"
    ana.close_tab()
    wait_until(lambda: _no_tabs(app), what="her stream to end")
    assert sweep_step(db, utcnow() + dt.timedelta(hours=2)) == 0
    assert _availability(db, people["ana"]) == "away"


def test_two_sweeps_change_each_person_once(
    server: LiveServer, db: Database, people: dict[str, int], browsers: dict[str, Browser]
) -> None:
    for key, email in (("ana", ANA), ("beto", BETO)):
        browsers[key] = Browser(server, email)
        browsers[key].open_tab()
        browsers[key].active()
    later = _later(db, 11, people["ana"], people["beto"])
    assert sweep_step(db, later) == 2
    assert sweep_step(db, later) == 0
    assert _availability(db, people["ana"]) == _availability(db, people["beto"]) == "away"
