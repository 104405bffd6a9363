"""Live updates: events reach the browsers of people allowed to see them, after
commit, over a real Server-Sent Event stream; on PostgreSQL across processes too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from puente.accounts.models import Team, User, Workspace
from puente.app import create_app
from puente.config import Settings
from puente.conversations.realtime import RealtimeHub
from puente.db.session import Database
from puente.events import Event, EventBus, NoteAdded, NotificationCreated, publish
from tests.conftest import LiveServer
from tests.factories import PASSWORD, make_team
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation
from tests.webclient import WebClient


class Stream:
    """An open /inbox/events stream, read line by line."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next_event(self) -> dict[str, Any]:
        for line in self.lines:
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[len("data: ") :])
                return event
        raise AssertionError("the stream ended")

    def wait_connected(self) -> None:
        for line in self.lines:
            if line.startswith(": connected"):
                return
        raise AssertionError("the stream ended before connecting")


@pytest.fixture
def server(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> LiveServer:
    return live_server_factory(create_app(settings, db, run_workers=False)).start()


def _signed_in(server: LiveServer, email: str) -> httpx.Client:
    http = httpx.Client(base_url=server.url, timeout=httpx.Timeout(20.0))
    web = WebClient(http)
    assert web.login(email, PASSWORD).status_code == 200
    return http


@pytest.fixture
def streams(server: LiveServer) -> Iterator[list[httpx.Client]]:
    clients: list[httpx.Client] = []
    yield clients
    for c in clients:
        c.close()


def _open(server: LiveServer, email: str, clients: list[httpx.Client]) -> tuple[Stream, Any]:
    http = _signed_in(server, email)
    clients.append(http)
    cm = http.stream("GET", "/inbox/events", headers={"accept": "text/event-stream"})
    response = cm.__enter__()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = Stream(response)
    stream.wait_connected()
    return stream, cm


def _publish(db: Database, event: Event) -> None:
    with db.unit_of_work(unscoped="test") as session:
        publish(session, event)


def _note(shop: Shop, conversation_id: int, note_id: int = 1) -> NoteAdded:
    return NoteAdded(
        workspace_id=shop.workspace_id, conversation_id=conversation_id, note_id=note_id
    )


def _notification(shop: Shop, user_id: int, text: str) -> NotificationCreated:
    return NotificationCreated(
        workspace_id=shop.workspace_id,
        to_user_id=user_id,
        notification_id=None,
        notification_kind="mention",
        conversation_id=None,
        text=text,
        in_app=False,
        browser=True,
        unread=0,
    )


def test_events_reach_only_agents_who_may_see_the_conversation(
    server: LiveServer, shop: Shop, db: Database, streams: list[httpx.Client]
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        ws = s.get(Workspace, shop.workspace_id)
        ana = s.get(User, shop.ana_id)
        assert ws is not None and ana is not None
        soporte = make_team(s, ws, "Soporte", [ana])
        ventas = Team(workspace_id=ws.id, name="Ventas")
        s.add(ventas)
        s.flush()
        hidden = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Ventas", at=NOW, team_id=ventas.id
        ).id
        visible = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Soporte", at=NOW, team_id=soporte.id
        ).id
    ana_stream, ana_cm = _open(server, shop.ana_email, streams)
    owner_stream, owner_cm = _open(server, shop.owner_email, streams)
    try:
        for cid in (hidden, visible):
            _publish(db, _note(shop, cid))
        # The owner sees everything, in order. Ana hears the owner sign in (presence goes to
        # the whole workspace), then the one conversation event she may see.
        assert [owner_stream.next_event()["conversation_id"] for _ in range(2)] == [hidden, visible]
        arrived = ana_stream.next_event()
        assert (arrived["kind"], arrived["data"]) == (
            "presence.changed",
            {"user_id": shop.owner_id, "availability": "online"},
        )
        first = ana_stream.next_event()
        assert (first["kind"], first["conversation_id"]) == ("note.created", visible)
        # A notification goes to its user only.
        _publish(db, _notification(shop, shop.owner_id, "hola"))
        _publish(db, _notification(shop, shop.ana_id, "para Ana"))
        assert owner_stream.next_event()["data"]["text"] == "hola"
        assert ana_stream.next_event()["data"]["text"] == "para Ana"
    finally:
        ana_cm.__exit__(None, None, None)
        owner_cm.__exit__(None, None, None)


def test_nothing_is_sent_for_a_rolled_back_change(
    server: LiveServer, shop: Shop, db: Database, streams: list[httpx.Client]
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        cid = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW).id
    stream, cm = _open(server, shop.owner_email, streams)
    try:
        with pytest.raises(RuntimeError), db.unit_of_work(unscoped="test") as session:
            publish(session, _note(shop, cid, note_id=1))
            raise RuntimeError("boom")
        _publish(db, _note(shop, cid, note_id=2))
        assert stream.next_event()["data"]["note_id"] == 2
    finally:
        cm.__exit__(None, None, None)


def test_a_plain_page_request_is_not_kept_open(server: LiveServer, shop: Shop) -> None:
    http = _signed_in(server, shop.owner_email)
    response = http.get("/inbox/events", headers={"accept": "text/html"})
    http.close()
    assert response.status_code == 406


def test_events_cross_processes_through_postgresql(
    settings: Settings, db: Database, shop: Shop
) -> None:
    if not db.is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runs one process")
    from puente.accounts.gate import load_member_actor

    with db.unit_of_work(unscoped="test") as s:
        owner = s.get(User, shop.owner_id)
        assert owner is not None
        actor = load_member_actor(s, owner, shop.workspace_id)
        assert actor is not None
        cid = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW).id
    # Two "processes": each with its own database connections and its own event bus.
    other_db = Database(settings.sqlalchemy_url())
    bus_a, bus_b = EventBus(), EventBus()
    hub_a, hub_b = RealtimeHub(db, bus_a), RealtimeHub(other_db, bus_b)
    hub_a.open()
    hub_b.open()
    loop = asyncio.new_event_loop()
    try:
        sub = hub_b.subscribe(actor, loop)
        # Give B's LISTEN connection time to start; the event is re-sent until it arrives.
        received: dict[str, Any] | None = None
        for _ in range(20):
            bus_a.deliver(_note(shop, cid))
            try:
                payload = loop.run_until_complete(asyncio.wait_for(sub.queue.get(), 1.0))
            except TimeoutError:
                continue
            received = json.loads(payload)
            break
        assert received is not None
        assert (received["kind"], received["conversation_id"]) == ("note.created", cid)
        assert received["data"] == {"conversation_id": cid, "note_id": 1}
    finally:
        hub_a.close()
        hub_b.close()
        loop.close()
        other_db.dispose()
