"""The API answers a request with a body only after the token checks out, and never reads
more than its limit (an unauthenticated client could make the server hold gigabytes)."""

from __future__ import annotations

import socket

import httpx
import pytest

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.api.conftest import make_tenant
from tests.conftest import LiveServer


def _answer_while_sending(server: LiveServer, token: str, declared: int) -> str:
    """Send the headers and a few bytes of a body of `declared` bytes, then wait for the
    answer without sending the rest: a server that reads the body first never answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        head = (
            "POST /api/v1/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"name": "')
        try:
            return sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            return "no answer: the server waited for the body"


@pytest.fixture
def server(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> LiveServer:
    app = create_app(settings.model_copy(update={"max_api_body_bytes": 50_000}), db)
    return live_server_factory(app).start()


def test_a_wrong_token_is_refused_before_the_body_is_read(server: LiveServer) -> None:
    answer = _answer_while_sending(server, "pnt_not_a_real_token", declared=40_000)
    assert answer.startswith("HTTP/1.1 401"), answer
    assert '"invalid_token"' in answer


def test_a_body_over_the_limit_is_refused_unread(server: LiveServer, db: Database) -> None:
    tenant = make_tenant(db, "Acme")
    answer = _answer_while_sending(server, tenant.token, declared=200 * 1024 * 1024)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"payload_too_large"' in answer


def test_a_body_without_a_length_is_counted_as_it_arrives(server: LiveServer, db: Database) -> None:
    tenant = make_tenant(db, "Acme")

    def chunks() -> object:
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    res = httpx.post(
        f"{server.url}/api/v1/contacts", content=chunks(), headers=tenant.auth, timeout=20
    )
    assert res.status_code == 413
    assert res.json()["error"]["code"] == "payload_too_large"


def test_a_body_within_the_limit_still_works(server: LiveServer, db: Database) -> None:
    tenant = make_tenant(db, "Acme")
    res = httpx.post(
        f"{server.url}/api/v1/contacts",
        json={"phone": "+34 612 345 678", "name": "Ana"},
        headers=tenant.auth,
    )
    assert res.status_code == 201, res.text
