"""Processing failures are recorded with their reason, listed (API and CLI) and retried."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.ingest.process import release_parked
from puente.ingest.store import do_store_webhooks
from puente.ingest.worker import run_until_idle
from tests.conftest import LiveServer
from tests.factories import make_channel, make_token, make_workspace
from tests.ingest.conftest import runtime_of, stored_changes, stored_events
from tests.ingest.helpers import dumps, envelope, messages_change, signed, text_message

URL = "/webhooks/whatsapp"


def _token(db: Database, scopes: list[str] | None = None, name: str | None = None) -> str:
    with db.unit_of_work(unscoped="test") as session:
        return make_token(session, make_workspace(session, name), scopes)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _failed(client: httpx.Client, token: str) -> list[dict[str, object]]:
    response = client.get("/api/v1/events/failed", headers=_auth(token))
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"[1,2,3]", "not a webhook envelope"),
        (b'{"entry":[]}', "object: Field required"),
        (
            b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":"x"}]}',
            "entry.0.changes",
        ),
        (b'{"object":"whatsapp_business_account","entry":[{"changes":[]}]}', "entry.0.id"),
        (b'{"object":"page","entry":[]}', "unexpected object 'page'"),
    ],
)
def test_unusable_signed_body_becomes_a_listed_failed_event(
    client: httpx.Client, server: LiveServer, db: Database, body: bytes, reason: str
) -> None:
    assert client.post(URL, content=body, headers=signed(body)).status_code == 200
    run_until_idle(runtime_of(server))
    [event] = stored_events(db)
    assert event.state == EventState.FAILED
    assert reason in (event.error or "")
    [item] = _failed(client, _token(db, ["events:read"]))
    assert item["kind"] == "event"
    assert item["id"] == event.id
    assert reason in str(item["reason"])


def test_failed_events_api_requires_its_scope(client: httpx.Client, db: Database) -> None:
    assert client.get("/api/v1/events/failed").status_code == 401
    wrong = client.get("/api/v1/events/failed", headers=_auth(_token(db, ["messages:read"])))
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "missing_scope"
    reader = _token(db, ["events:read"])
    assert client.get("/api/v1/events/failed", headers=_auth(reader)).json() == {"items": []}
    refused = client.post("/api/v1/events/1/retry", headers=_auth(reader))
    assert refused.status_code == 403


def test_retry_of_a_failed_event_processes_it_again(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    body = b'{"object":"page"}'
    client.post(URL, content=body, headers=signed(body))
    runtime = runtime_of(server)
    run_until_idle(runtime)
    [event] = stored_events(db)
    token = _token(db, ["events:read", "events:write"])

    retried = client.post(f"/api/v1/events/{event.id}/retry", headers=_auth(token))
    assert retried.status_code == 200
    assert retried.json()["state"] == "new"
    assert _failed(client, token) == []  # queued, no longer listed as failed
    run_until_idle(runtime)
    [again] = stored_events(db)
    assert (again.state, again.attempts) == (EventState.FAILED, 2)

    missing = client.post("/api/v1/events/999999/retry", headers=_auth(token))
    assert missing.status_code == 404


def test_retrying_an_event_that_did_not_fail_is_a_conflict(
    client: httpx.Client, db: Database
) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.C1")])))
    client.post(URL, content=body, headers=signed(body))
    [event] = stored_events(db)  # still new: no worker ran
    response = client.post(f"/api/v1/events/{event.id}/retry", headers=_auth(_token(db)))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_failed"


def _park(db: Database, phone_number_id: str, *, state: str = ChangeState.PARKED) -> int:
    """Store an event with one change kept back, as the worker records it."""
    body = dumps(
        envelope(messages_change([text_message("wamid.P")], phone_number_id=phone_number_id))
    )
    with db.unit_of_work(unscoped="test") as session:
        do_store_webhooks(session, [body])
    with db.unit_of_work(unscoped="test") as session:
        event = session.scalars(select(WebhookEvent).order_by(WebhookEvent.id.desc())).first()
        assert event is not None
        event.state = EventState.PARTIAL
        change = WebhookChange(
            event_id=event.id,
            waba_id="1",
            phone_number_id=phone_number_id,
            field="messages",
            value={"metadata": {"phone_number_id": phone_number_id}},
            state=state,
            error="no channel" if state == ChangeState.PARKED else "ValueError: boom",
            attempts=1,
        )
        session.add(change)
        session.flush()
        return change.id


def test_with_several_workspaces_each_sees_only_its_own_numbers(
    client: httpx.Client, server: LiveServer, db: Database, settings: Settings
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        acme = make_workspace(session, "Acme")
        other = make_workspace(session, "Other")
        make_channel(session, acme, phone_number_id="111")
        make_channel(session, other, phone_number_id="222")
        acme_token = make_token(session, acme, ["events:read", "events:write"])
    mine = _park(db, "111", state=ChangeState.FAILED)
    theirs = _park(db, "222", state=ChangeState.FAILED)
    unclaimed = _park(db, "333")
    body = b"{unreadable"
    client.post(URL, content=body, headers=signed(body))
    run_until_idle(runtime_of(server))
    failed_event = next(e.id for e in stored_events(db) if e.state == EventState.FAILED)

    # Unclaimed items can name another tenant's numbers: with two workspaces, neither sees them.
    seen = {(i["kind"], i["id"]) for i in _failed(client, acme_token)}
    assert seen == {("change", mine)}
    for path in (
        f"/api/v1/events/changes/{theirs}/retry",
        f"/api/v1/events/changes/{unclaimed}/retry",
        f"/api/v1/events/{failed_event}/retry",
    ):
        assert client.post(path, headers=_auth(acme_token)).status_code == 404, path
    # The operator sees everything with the CLI.
    listed = _cli(settings, "events", "failed")
    assert listed.returncode == 0, listed.stderr
    for ref in (f"C{mine}", f"C{theirs}", f"C{unclaimed}", f"E{failed_event}"):
        assert ref in listed.stdout


def test_the_only_workspace_of_an_install_sees_unclaimed_changes(
    client: httpx.Client, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        acme = make_workspace(session, "Acme")
        make_channel(session, acme, phone_number_id="111")
        acme_token = make_token(session, acme, ["events:read", "events:write"])
    unclaimed = _park(db, "333")
    item = next(i for i in _failed(client, acme_token) if i["id"] == unclaimed)
    assert (item["state"], item["phone_number_id"], item["field"]) == ("parked", "333", "messages")
    retried = client.post(f"/api/v1/events/changes/{unclaimed}/retry", headers=_auth(acme_token))
    assert retried.status_code == 200


def test_change_retry_queues_it_and_the_worker_applies_it_again(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    change_id = _park(db, "444", state=ChangeState.FAILED)
    token = _token(db, ["events:read", "events:write"])
    response = client.post(f"/api/v1/events/changes/{change_id}/retry", headers=_auth(token))
    assert response.status_code == 200
    assert response.json()["state"] == "ready"
    again = client.post(f"/api/v1/events/changes/{change_id}/retry", headers=_auth(token))
    assert again.status_code == 409
    run_until_idle(runtime_of(server))
    [change] = stored_changes(db)
    assert change.attempts == 2
    assert change.state != ChangeState.READY


def test_release_parked_queues_only_that_numbers_changes(db: Database) -> None:
    first = _park(db, "555")
    second = _park(db, "555")
    other = _park(db, "666")
    with db.unit_of_work(unscoped="test") as session:
        assert release_parked(session, "555") == 2
    states = {c.id: c.state for c in stored_changes(db)}
    assert states == {first: "ready", second: "ready", other: "parked"}
    with db.unit_of_work(unscoped="test") as session:
        assert release_parked(session, "555") == 0


def test_in_process_worker_wakes_on_a_stored_webhook(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> None:
    # Poll slowly so only the wake-up after the commit can make this quick.
    slow = settings.model_copy(update={"worker_poll_seconds": 30.0})
    server = live_server_factory(create_app(slow, db, run_workers=True)).start()
    body = b"not json at all"
    assert httpx.post(server.url + URL, content=body, headers=signed(body)).status_code == 200
    deadline = time.monotonic() + 20
    while stored_events(db)[0].state == EventState.NEW and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_events(db)[0].state == EventState.FAILED


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PUENTE_DATA_DIR=str(settings.data_dir),
        PUENTE_DATABASE_URL=settings.database_url or "",
        PUENTE_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        COLUMNS="200",
    )
    if not settings.database_url:
        env.pop("PUENTE_DATABASE_URL")
    puente = Path(sys.executable).parent / "puente"
    return subprocess.run([str(puente), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_lists_failures_and_retries_them(
    client: httpx.Client, server: LiveServer, db: Database, settings: Settings
) -> None:
    body = b"{broken"
    client.post(URL, content=body, headers=signed(body))
    run_until_idle(runtime_of(server))
    [event] = stored_events(db)

    listed = _cli(settings, "events", "failed")
    assert listed.returncode == 0, listed.stderr
    assert f"E{event.id}" in listed.stdout
    assert "body is not JSON" in listed.stdout

    bad = _cli(settings, "events", "retry", "12")
    assert bad.returncode != 0
    retried = _cli(settings, "events", "retry", f"E{event.id}")
    assert retried.returncode == 0, retried.stderr
    assert stored_events(db)[0].state == EventState.NEW
    run_until_idle(runtime_of(server))
    assert _cli(settings, "events", "retry", "--all").stdout.startswith("queued 1 events")
    assert "no failed webhook events" in _cli(settings, "events", "failed").stdout


def _run_sql(db: Database, statements: list[str]) -> None:
    with db.engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)


def test_an_event_that_breaks_its_transaction_is_failed_alone(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    # The database refuses to finish one event, so the whole batch's transaction fails.
    if db.is_sqlite:
        create = [
            "CREATE TRIGGER poison_event BEFORE UPDATE ON webhook_events "
            "WHEN NEW.state = 'done' AND instr(CAST(NEW.body AS TEXT), 'poison-event') > 0 "
            "BEGIN SELECT RAISE(ABORT, 'cannot finish this event'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS poison_event"]
    else:
        create = [
            "CREATE FUNCTION poison_event() RETURNS trigger AS $$ BEGIN "
            "IF NEW.state = 'done' AND position('poison-event' in convert_from(NEW.body, 'UTF8')) > 0 "
            "THEN RAISE EXCEPTION 'cannot finish this event'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER poison_event BEFORE UPDATE ON webhook_events "
            "FOR EACH ROW EXECUTE FUNCTION poison_event()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS poison_event ON webhook_events",
            "DROP FUNCTION IF EXISTS poison_event()",
        ]
    _run_sql(db, create)
    try:
        for field in ("before", "poison-event", "after"):
            body = dumps(envelope({"field": field, "value": {}}))
            assert client.post(URL, content=body, headers=signed(body)).status_code == 200
        run_until_idle(runtime_of(server))
    finally:
        _run_sql(db, drop)
    events = stored_events(db)
    assert [e.state for e in events] == ["done", "failed", "done"]
    assert "cannot finish this event" in (events[1].error or "")
