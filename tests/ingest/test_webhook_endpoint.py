"""GET/POST /webhooks/whatsapp over real HTTP: handshake, signature, size limits, storage."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import httpx
import pytest

from puente.config import Settings
from puente.db.session import Database
from tests.conftest import VERIFY_TOKEN
from tests.ingest.conftest import stored_events
from tests.ingest.helpers import dumps, envelope, messages_change, signed, text_message

URL = "/webhooks/whatsapp"


def test_handshake_echoes_the_challenge_for_the_right_token(client: httpx.Client) -> None:
    response = client.get(
        URL,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


def test_handshake_accepts_underscored_keys(client: httpx.Client) -> None:
    response = client.get(
        URL,
        params={"hub_mode": "subscribe", "hub_verify_token": VERIFY_TOKEN, "hub_challenge": "42"},
    )
    assert response.status_code == 200
    assert response.text == "42"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses_anything_else(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get(URL, params=params)
    assert response.status_code == 403
    assert "1" not in response.text.split('"message"')[0]  # the challenge is not echoed


def test_signed_post_is_stored_raw_before_the_200(client: httpx.Client, db: Database) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.A1")])))
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    [event] = stored_events(db)
    assert event.body == body
    assert event.dedupe_key == hashlib.sha256(body).digest()[:16]
    assert event.state == "new"
    assert event.received_at.tzinfo is not None


def test_missing_signature_is_401_logged_and_not_stored(
    client: httpx.Client, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.A2")])))
    with caplog.at_level(logging.WARNING, logger="puente.ingest"):
        response = client.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_signature"
    assert stored_events(db) == []
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,
        "sha1=abcdef",
        "sha256=",
        "garbage",
        "sha256=ñ" + "a" * 63,  # non-ASCII bytes in the header
    ],
)
def test_wrong_signature_is_403_logged_and_not_stored(
    client: httpx.Client, db: Database, caplog: pytest.LogCaptureFixture, signature: str
) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.A3")])))
    with caplog.at_level(logging.WARNING, logger="puente.ingest"):
        response = client.post(
            URL, content=body, headers={"X-Hub-Signature-256": signature.encode()}
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert stored_events(db) == []
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.1" in messages
    assert "wamid" not in messages  # bodies are never logged


def test_signature_from_another_secret_is_refused(client: httpx.Client, db: Database) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.A4")])))
    response = client.post(URL, content=body, headers=signed(body, secret="someone-else"))
    assert response.status_code == 403
    assert stored_events(db) == []


def test_a_changed_body_no_longer_matches_its_signature(client: httpx.Client, db: Database) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.A5", "pay 10")])))
    tampered = body.replace(b"pay 10", b"pay 99")
    response = client.post(URL, content=tampered, headers=signed(body))
    assert response.status_code == 403
    assert stored_events(db) == []


def test_four_megabyte_body_is_413_and_not_stored(client: httpx.Client, db: Database) -> None:
    body = b'{"object":"whatsapp_business_account","pad":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stored_events(db) == []


def test_oversized_chunked_body_is_cut_off_at_the_limit(
    client: httpx.Client, db: Database, settings: Settings
) -> None:
    # No Content-Length: the limit is enforced while reading.
    chunk = b"y" * 65536
    count = settings.max_webhook_bytes // len(chunk) + 2
    body = chunk * count

    def stream() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    response = client.post(URL, content=stream(), headers=signed(body))
    assert response.status_code == 413
    assert stored_events(db) == []


def test_exactly_three_megabytes_signed_is_accepted(
    client: httpx.Client, db: Database, settings: Settings
) -> None:
    assert settings.max_webhook_bytes == 3 * 1024 * 1024
    head = dumps(envelope(messages_change([text_message("wamid.big", "")])))
    padding = settings.max_webhook_bytes - len(head)
    body = head.replace(b'"body":""', b'"body":"' + b"a" * padding + b'"')
    assert len(body) == settings.max_webhook_bytes
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    [event] = stored_events(db)
    assert event.body == body


def test_a_thousand_updates_in_one_post_are_stored_once(client: httpx.Client, db: Database) -> None:
    messages = [text_message(f"wamid.T{i:04d}", f"message {i}") for i in range(1000)]
    body = dumps(envelope(messages_change(messages)))
    first = client.post(URL, content=body, headers=signed(body))
    again = client.post(URL, content=body, headers=signed(body))
    assert (first.status_code, again.status_code) == (200, 200)
    [event] = stored_events(db)
    assert event.body == body


def test_meta_retry_of_the_same_body_is_stored_once(client: httpx.Client, db: Database) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.R1")])))
    other = dumps(envelope(messages_change([text_message("wamid.R2")])))
    codes = [
        client.post(URL, content=b, headers=signed(b)).status_code for b in (body, body, other)
    ]
    assert codes == [200, 200, 200]
    assert [e.body for e in stored_events(db)] == [body, other]


def test_a_body_that_could_not_be_stored_is_not_acknowledged(
    client: httpx.Client, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    body = dumps(envelope(messages_change([text_message("wamid.U1")])))
    # The table is out of reach, as in a database that refuses writes: no 200 may go out.
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE webhook_events RENAME TO webhook_events_away")
    try:
        with caplog.at_level(logging.ERROR, logger="puente.ingest.worker"):
            refused = client.post(URL, content=body, headers=signed(body))
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE webhook_events_away RENAME TO webhook_events")
    assert refused.status_code == 503
    assert "storing 1 webhook events failed" in caplog.text
    assert stored_events(db) == []
    # Meta delivers it again later; once the database is back it is stored, once.
    retried = client.post(URL, content=body, headers=signed(body))
    assert retried.status_code == 200
    assert [e.body for e in stored_events(db)] == [body]


def test_signed_garbage_is_still_acknowledged_and_kept(client: httpx.Client, db: Database) -> None:
    for body in (b"{not json", b"", b"[1,2,3]", "ñ".encode("latin-1")):
        response = client.post(URL, content=body, headers=signed(body))
        assert response.status_code == 200
    assert len(stored_events(db)) == 4


def test_unconfigured_app_secret_refuses_every_post(
    settings: Settings, db: Database, live_server_factory: type
) -> None:
    from pydantic import SecretStr

    from puente.app import create_app

    bare = settings.model_copy(update={"meta_app_secret": SecretStr("")})
    server = live_server_factory(create_app(bare, db, run_workers=False)).start()
    body = b"{}"
    response = httpx.post(server.url + URL, content=body, headers=signed(body, secret=""))
    assert response.status_code == 403
    assert stored_events(db) == []
