"""Signed but hostile webhooks: each is refused with a reason that names the problem,
and nothing else of the body is lost or wrongly changed."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Message
from puente.db.session import Database
from puente.ingest.models import EventState
from puente.ingest.worker import run_until_idle
from puente.runtime import Runtime
from tests.conformance.replay import load, message, replay, setup_runtime
from tests.conftest import LiveServer
from tests.ingest.conftest import runtime_of, stored_changes, stored_events
from tests.ingest.helpers import signed

URL = "/webhooks/whatsapp"


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return setup_runtime(settings, db)


def _text_with(**fields: Any) -> dict[str, Any]:
    payload = copy.deepcopy(load("messages_text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0].update(fields)
    if "from" in fields:
        value["contacts"][0]["wa_id"] = fields["from"]
    return payload


def test_a_customer_whose_id_is_markup_never_becomes_a_contact(
    runtime: Runtime, db: Database
) -> None:
    with pytest.raises(ValidationError, match=r"messages\.0\.from"):
        replay(runtime, _text_with(**{"from": "<script>alert(1)</script>", "id": "wamid.XSS1"}))
    with db.read(unscoped="test") as session:
        assert session.scalars(select(Contact)).all() == []
        assert session.scalars(select(Message)).all() == []


@pytest.mark.parametrize("timestamp", ["-5", "10000000000000000", "0"])
def test_a_time_that_is_not_metas_is_refused(
    runtime: Runtime, db: Database, timestamp: str
) -> None:
    with pytest.raises(ValidationError, match=r"messages\.0\.timestamp"):
        replay(runtime, _text_with(timestamp=timestamp, id=f"wamid.T{timestamp}"))
    with db.read(unscoped="test") as session:
        assert session.scalars(select(Message)).all() == []
    # And the same message with a sane time is stored as usual afterwards.
    replay(runtime, "messages_text")
    with db.read(unscoped="test") as session:
        assert len(session.scalars(select(Message)).all()) == 1


def test_a_failed_status_never_marks_a_customers_message(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_text")
    with db.read(unscoped="test") as session:
        inbound = session.scalars(select(Message)).one()
        wamid, before = inbound.wamid, inbound.status
    failed = copy.deepcopy(load("status_failed"))
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    replay(runtime, failed)
    after = message(db, wamid)
    assert after.status == before
    assert after.error is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 1000 + b"]" * 1000, "not JSON Puente can read"),
        (b'{"object": "whatsapp_business_account", "n": ' + b"9" * 5000 + b"}", "not JSON"),
    ],
    ids=["nested-1000-deep", "5000-digit-number"],
)
def test_bodies_past_pythons_limits_fail_with_a_reason(
    client: httpx.Client, server: LiveServer, db: Database, body: bytes, reason: str
) -> None:
    assert client.post(URL, content=body, headers=signed(body)).status_code == 200
    run_until_idle(runtime_of(server))
    [event] = stored_events(db)
    assert event.state == EventState.FAILED
    assert reason in (event.error or "")


def test_a_bad_message_fails_its_change_with_the_field_named(
    client: httpx.Client, server: LiveServer, db: Database
) -> None:
    import json

    body = json.dumps(_text_with(timestamp="-5")).encode()
    assert client.post(URL, content=body, headers=signed(body)).status_code == 200
    run_until_idle(runtime_of(server))
    [change] = stored_changes(db)
    assert change.state == "failed"
    assert "timestamp" in (change.error or "")
