"""PUENTE_LOG_FORMAT=json: one JSON object per line, carrying the request's id (the
proxy's X-Request-ID, echoed in the response) and the workspace the request acted in, or
the id of the webhook event a worker was processing."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.worker import run_until_idle
from puente.logs import make_handler
from tests.factories import PASSWORD, make_user, make_workspace
from tests.ingest.conftest import stored_events
from tests.ingest.helpers import signed
from tests.webclient import WebClient


@contextmanager
def json_lines(logger_name: str) -> Iterator[io.StringIO]:
    """What Puente's JSON handler writes for one logger meanwhile."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_request_s_log_lines_carry_its_id_and_workspace(settings: Settings, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session, "Sol")
        make_user(session, workspace, role="owner", email="owner@sol.example")
        workspace_id = workspace.id
    app = create_app(settings.model_copy(update={"dev_mail": True}), db, run_workers=False)
    owner = WebClient(TestClient(app))
    assert owner.login("owner@sol.example", PASSWORD).status_code == 200

    with json_lines("puente.accounts.mail") as written:
        answer = owner.post(
            "/settings/users/invite",
            {"email": "new@sol.example", "role": "agent"},
            headers={"X-Request-ID": "proxy-7f3a"},
        )
    assert answer.headers["x-request-id"] == "proxy-7f3a"
    [line] = [json.loads(text) for text in written.getvalue().splitlines()]
    assert line["message"] == "mail queued to new@sol.example: You are invited to Sol on Puente"
    assert line["level"] == "INFO" and line["logger"] == "puente.accounts.mail"
    assert line["request_id"] == "proxy-7f3a"
    assert line["workspace_id"] == workspace_id
    assert line["time"].endswith("+00:00")


def test_a_request_without_an_id_gets_one(settings: Settings, db: Database) -> None:
    client = TestClient(create_app(settings, db, run_workers=False))
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz", headers={"X-Request-ID": "bad id\\n"}).headers["x-request-id"]
    assert len(first) == 32 and len(second) == 32 and first != second


def test_a_webhook_event_s_processing_lines_carry_its_id(settings: Settings, db: Database) -> None:
    client = TestClient(create_app(settings, db, run_workers=False))
    body = b'{"object": "not_a_whatsapp_account", "entry": []}'
    assert client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
    [event] = stored_events(db)
    with json_lines("puente.ingest.process") as written:
        run_until_idle(client.app.state.runtime)  # type: ignore[attr-defined]
    [line] = [json.loads(text) for text in written.getvalue().splitlines()]
    assert line["level"] == "WARNING" and line["message"].startswith(f"webhook event {event.id} ")
    assert line["event_id"] == event.id
    assert "request_id" not in line  # a worker's line, not a request's
