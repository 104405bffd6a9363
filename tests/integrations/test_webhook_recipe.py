"""The verification recipe of docs/webhooks.md, as the repository's examples ship it: a
delivery that Puente's worker really sent (captured off the wire, signed with the secret
that creating the endpoint returned) is accepted by the Python example's `verify` and by
the Node example's (run with `node`), and both refuse it once its body, its id or its
timestamp is changed, or with another secret."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from puente.config import Settings
from puente.db.session import Database
from puente.integrations.webhooks import service
from puente.integrations.webhooks.worker import deliver_due
from puente.secrets import secret_box
from tests.factories import make_workspace
from tests.integrations.receiver import EXAMPLES, example_module

JS_CHECK = """
const { verify } = require(process.argv[1]);
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
try {
  const event = verify(input.secret, Buffer.from(input.body, "base64"), input.headers);
  console.log("accepted " + event.type);
} catch (err) {
  console.log("refused: " + err.message);
  process.exit(1);
}
"""


@dataclass(frozen=True)
class Captured:
    body: bytes
    headers: dict[str, str]


@pytest.fixture
def captured(settings: Settings, db: Database) -> Iterator[tuple[Captured, str]]:
    """One test event as Puente's worker sends it, and the secret the endpoint was made with."""
    seen: list[Captured] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(Captured(body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.configure(db, secrets=secret_box(settings), allow_private=True)
    with db.unit_of_work(unscoped="test") as session:
        workspace_id = make_workspace(session, "Recetas").id
    with db.unit_of_work(scope=workspace_id) as session:
        endpoint, secret = service.create_endpoint(
            session,
            url=f"http://127.0.0.1:{server.server_address[1]}/hook",
            events=["message.created"],
        )
        service.send_test(session, endpoint.id)
    try:
        assert deliver_due(db) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(seen) == 1
    yield seen[0], secret


def python_verify(secret: str, body: bytes, headers: dict[str, str]) -> str:
    try:
        event = example_module().verify(secret, body, headers)
    except WebhookVerificationError as exc:
        return f"refused: {exc}"
    return f"accepted {event['type']}"


def node_verify(secret: str, body: bytes, headers: dict[str, str]) -> str:
    given = {"secret": secret, "body": base64.b64encode(body).decode(), "headers": headers}
    done = subprocess.run(
        ["node", "-e", JS_CHECK, str(EXAMPLES / "webhook_receiver.js")],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == "", done.stderr
    assert done.returncode == (0 if done.stdout.startswith("accepted") else 1)
    return done.stdout.strip()


VERIFIERS = {"python": python_verify, "node": node_verify}


@pytest.mark.parametrize("language", VERIFIERS)
def test_a_delivery_signed_by_puente_verifies(
    captured: tuple[Captured, str], language: str
) -> None:
    delivery, secret = captured
    verify = VERIFIERS[language]
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["webhook-signature"].startswith("v1,")
    assert verify(secret, delivery.body, delivery.headers) == "accepted webhook.test"


@pytest.mark.parametrize("language", VERIFIERS)
def test_a_tampered_delivery_is_refused(captured: tuple[Captured, str], language: str) -> None:
    delivery, secret = captured
    verify = VERIFIERS[language]
    event = json.loads(delivery.body)
    event["data"]["message"] = "Send the refund to another account."
    tampered_body = json.dumps(event).encode()
    assert verify(secret, tampered_body, delivery.headers).startswith("refused")
    # One byte more, even whitespace, is another body.
    assert verify(secret, delivery.body + b" ", delivery.headers).startswith("refused")
    other_id = {**delivery.headers, "webhook-id": "msg_" + "0" * 32}
    assert verify(secret, delivery.body, other_id).startswith("refused")
    later = str(int(delivery.headers["webhook-timestamp"]) + 1)
    assert verify(
        secret, delivery.body, {**delivery.headers, "webhook-timestamp": later}
    ).startswith("refused")
    another_secret = service.new_secret()
    assert verify(another_secret, delivery.body, delivery.headers).startswith("refused")
    unsigned = {k: v for k, v in delivery.headers.items() if k != "webhook-signature"}
    assert verify(secret, delivery.body, unsigned).startswith("refused")


def test_the_example_receiver_answers_401_to_a_bad_signature(
    captured: tuple[Captured, str],
) -> None:
    import httpx

    delivery, secret = captured
    kept: list[dict[str, Any]] = []
    server = example_module().make_server(secret, 0, on_event=lambda e, _h: kept.append(e))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        headers = {k: v for k, v in delivery.headers.items() if k.startswith("webhook-")}
        bad = httpx.post(url, content=delivery.body + b" ", headers=headers)
        assert bad.status_code == 401
        assert kept == []
        good = httpx.post(url, content=delivery.body, headers=headers)
        assert good.status_code == 200
        again = httpx.post(url, content=delivery.body, headers=headers)  # a retry: same id
        assert again.status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert [e["type"] for e in kept] == ["webhook.test"]
