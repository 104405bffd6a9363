"""Signed webhooks over real HTTP, processed by the ingest worker into inbox rows."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.session import Database
from puente.ingest.models import ChangeState, EventState
from puente.ingest.process import release_parked
from puente.ingest.worker import run_until_idle
from tests.conftest import LiveServer
from tests.factories import make_channel, make_token, make_workspace
from tests.ingest.conftest import runtime_of, stored_changes, stored_events
from tests.ingest.helpers import (
    PHONE_NUMBER_ID,
    dumps,
    envelope,
    messages_change,
    signed,
    text_message,
)

URL = "/webhooks/whatsapp"


@pytest.fixture
def workspace_token(db: Database) -> str:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID)
        return make_token(session, ws, ["events:read", "events:write"])


def _post(client: httpx.Client, payload: dict[str, Any]) -> None:
    body = dumps(payload)
    assert client.post(URL, content=body, headers=signed(body)).status_code == 200


def _messages(db: Database) -> list[Message]:
    with db.read(unscoped="test") as session:
        rows = list(session.scalars(select(Message).order_by(Message.wamid)))
        session.expunge_all()
        return rows


def _inbox_snapshot(db: Database) -> tuple[Any, ...]:
    with db.read(unscoped="test") as session:
        messages = session.execute(
            select(Message.wamid, Message.direction, Message.text, Message.timestamp, Contact.wa_id)
            .join(Contact, Contact.id == Message.contact_id)
            .order_by(Message.wamid)
        ).all()
        contacts = session.scalar(select(func.count()).select_from(Contact))
        conversations = session.scalar(select(func.count()).select_from(Conversation))
    return (tuple(tuple(m) for m in messages), contacts, conversations)


def test_signed_text_message_becomes_a_message_row(
    client: httpx.Client, server: LiveServer, db: Database, workspace_token: str
) -> None:
    _post(client, envelope(messages_change([text_message("wamid.E2E1", "¿Tienen envío?")])))
    run_until_idle(runtime_of(server))

    [message] = _messages(db)
    assert message.wamid == "wamid.E2E1"
    assert message.direction == "inbound"
    assert message.type == "text"
    assert message.text == "¿Tienen envío?"
    assert message.timestamp == dt.datetime.fromtimestamp(1749416383, dt.UTC)
    with db.read(unscoped="test") as session:
        contact = session.get(Contact, message.contact_id)
        assert contact is not None
        assert (contact.wa_id, contact.profile_name) == ("16505551234", "Sheena Nelson")
    assert [e.state for e in stored_events(db)] == [EventState.DONE]


def _deliveries() -> list[dict[str, Any]]:
    first = envelope(messages_change([text_message("wamid.O1", "uno")]))
    second = envelope(
        messages_change([text_message("wamid.O2", "dos"), text_message("wamid.O3", "tres")])
    )
    other = envelope(
        messages_change(
            [text_message("wamid.O4", "cuatro", sender="5215512345678")],
            sender="5215512345678",
            name="Ana",
        )
    )
    return [first, second, other]


@pytest.mark.parametrize("order", ["as sent", "reversed and repeated"])
def test_duplicates_and_order_do_not_change_the_result(
    client: httpx.Client, server: LiveServer, db: Database, workspace_token: str, order: str
) -> None:
    deliveries = _deliveries()
    if order == "reversed and repeated":
        # The same POST twice (stored once), then each update again inside another POST
        # with different bytes (as another subscribed app's retry would be).
        deliveries = [*reversed(deliveries), deliveries[0], deliveries[1]]
        deliveries.append(envelope(*[c for d in _deliveries() for c in d["entry"][0]["changes"]]))
    for payload in deliveries:
        _post(client, payload)
        if order == "reversed and repeated":
            run_until_idle(runtime_of(server))  # interleave processing with arrival
    run_until_idle(runtime_of(server))

    messages, contacts, conversations = _inbox_snapshot(db)
    assert [(m[0], m[2], m[4]) for m in messages] == [
        ("wamid.O1", "uno", "16505551234"),
        ("wamid.O2", "dos", "16505551234"),
        ("wamid.O3", "tres", "16505551234"),
        ("wamid.O4", "cuatro", "5215512345678"),
    ]
    assert (contacts, conversations) == (2, 2)
    assert all(e.state == EventState.DONE for e in stored_events(db))


def test_event_for_an_unknown_number_is_parked_then_processed_when_released(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    token = _token_without_channel(db)
    _post(
        client,
        envelope(messages_change([text_message("wamid.PK1", "hola")], phone_number_id="999000111")),
    )
    runtime = runtime_of(server)
    run_until_idle(runtime)

    [change] = stored_changes(db)
    assert (change.state, change.phone_number_id) == (ChangeState.PARKED, "999000111")
    assert [e.state for e in stored_events(db)] == [EventState.PARTIAL]
    listed = client.get("/api/v1/events/failed", headers={"Authorization": f"Bearer {token}"})
    assert [(i["kind"], i["state"]) for i in listed.json()["items"]] == [("change", "parked")]
    assert _messages(db) == []

    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Late")
        make_channel(session, ws, phone_number_id="999000111")
        assert release_parked(session, "999000111") == 1
    run_until_idle(runtime)

    assert [m.text for m in _messages(db)] == ["hola"]
    assert [c.state for c in stored_changes(db)] == [ChangeState.DONE]
    assert [e.state for e in stored_events(db)] == [EventState.DONE]


def test_a_change_parked_after_its_number_was_connected_is_released_by_the_worker(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    # The race: a worker looked the number up just before the channel's commit and parked
    # the change just after the onboarding had released what it could see. Nothing else
    # releases it; the worker's own sweep must.
    _token_without_channel(db)
    _post(
        client,
        envelope(messages_change([text_message("wamid.PK2", "hola")], phone_number_id="999000222")),
    )
    runtime = runtime_of(server)
    run_until_idle(runtime)
    assert [c.state for c in stored_changes(db)] == [ChangeState.PARKED]
    with db.unit_of_work(unscoped="test") as session:
        make_channel(session, make_workspace(session, "Late"), phone_number_id="999000222")
    run_until_idle(runtime)

    assert [m.text for m in _messages(db)] == ["hola"]
    assert [c.state for c in stored_changes(db)] == [ChangeState.DONE]


def _token_without_channel(db: Database) -> str:
    with db.unit_of_work(unscoped="test") as session:
        return make_token(session, make_workspace(session), ["events:read"])


@pytest.fixture
def poison_trigger(db: Database) -> Iterator[None]:
    """A database that refuses one message, as a full disk or a broken constraint would."""
    if db.is_sqlite:
        create = [
            "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'storage refused the row'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS poison"]
    else:
        create = [
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.text = 'poison' THEN "
            "RAISE EXCEPTION 'storage refused the row'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison()",
        ]
        drop = ["DROP TRIGGER IF EXISTS poison ON messages", "DROP FUNCTION IF EXISTS poison()"]

    def run(statements: list[str]) -> None:
        with db.engine.begin() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)

    run(create)
    try:
        yield
    finally:
        run(drop)


def test_a_failing_change_spares_the_others_and_retries_after_the_fix(
    client: httpx.Client,
    server: LiveServer,
    db: Database,
    workspace_token: str,
    poison_trigger: None,
) -> None:
    _post(
        client,
        envelope(
            messages_change([text_message("wamid.F1", "bien")]),
            messages_change([text_message("wamid.F2", "poison")], sender="5215500000000"),
        ),
    )
    runtime = runtime_of(server)
    run_until_idle(runtime)
    assert [m.text for m in _messages(db)] == ["bien"]
    auth = {"Authorization": f"Bearer {workspace_token}"}
    [item] = client.get("/api/v1/events/failed", headers=auth).json()["items"]
    assert (item["kind"], item["state"], item["field"]) == ("change", "failed", "messages")
    assert "storage refused the row" in item["reason"]

    # The fix: the database accepts the row again.
    with db.engine.begin() as conn:
        for sql in (
            ["DROP TRIGGER poison"]
            if db.is_sqlite
            else ["DROP TRIGGER poison ON messages", "DROP FUNCTION poison()"]
        ):
            conn.exec_driver_sql(sql)
    retried = client.post(f"/api/v1/events/changes/{item['id']}/retry", headers=auth)
    assert retried.status_code == 200
    run_until_idle(runtime)

    assert [m.text for m in _messages(db)] == ["bien", "poison"]
    assert client.get("/api/v1/events/failed", headers=auth).json()["items"] == []
    assert [e.state for e in stored_events(db)] == [EventState.DONE]


def test_odd_but_signed_updates_are_processed_or_recorded(
    client: httpx.Client, server: LiveServer, db: Database, workspace_token: str
) -> None:
    unknown_type = {
        "from": "16505551234",
        "id": "wamid.U1",
        "timestamp": "1749416390",
        "type": "hologram",
        "hologram": {"id": "x"},
    }
    missing_fields = {"id": "wamid.U2", "type": "text"}
    status_for_nothing = {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [
                {
                    "id": "wamid.NEVER-SENT",
                    "status": "read",
                    "timestamp": "1749416400",
                    "recipient_id": "16505551234",
                }
            ],
        },
    }
    wrong_types = messages_change([{"from": 5, "id": ["x"], "timestamp": {}, "type": 7}])
    _post(client, envelope(messages_change([unknown_type])))
    _post(client, envelope(messages_change([missing_fields])))
    _post(client, envelope(status_for_nothing))
    _post(client, envelope(wrong_types))
    _post(client, envelope({"field": "some_future_field", "value": {"anything": 1}}))
    run_until_idle(runtime_of(server))

    events = stored_events(db)
    assert [e.state for e in events] == ["done", "partial", "done", "partial", "done"]
    reasons = [c.error or "" for c in stored_changes(db)]
    assert len(reasons) == 2
    assert "messages.0.timestamp: Field required" in reasons[0]
    assert "messages.0.from: Input should be a valid string" in reasons[1]
    assert not any("wamid.U2" in r for r in reasons)  # reasons never quote the body


def test_running_worker_processes_webhooks_without_help(
    settings: Settings, db: Database, live_server_factory: type[LiveServer], workspace_token: str
) -> None:
    server = live_server_factory(create_app(settings, db, run_workers=True)).start()
    body = dumps(envelope(messages_change([text_message("wamid.LIVE", "en vivo")])))
    assert httpx.post(server.url + URL, content=body, headers=signed(body)).status_code == 200
    deadline = time.monotonic() + 20
    while not _messages(db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.text for m in _messages(db)] == ["en vivo"]
