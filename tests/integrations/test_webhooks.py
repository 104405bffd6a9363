"""Outgoing webhooks through HTTP, against a real receiver in this process (a small
`http.server` on a thread that records each request): a customer's message becomes a
signed delivery the receiver verifies with a Standard Webhooks library; failures worth it
are retried (time is driven by passing `now`, nothing sleeps on a backoff) and the others
fail at once; redirects and huge answers are recorded, never followed or read whole; a
hanging receiver holds up no other; private addresses are refused unless allowed; a
receiver that was down gets each delivery once and in order; an endpoint failing for three
days is switched off and the admins told; another workspace's endpoint hears nothing."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from puente.accounts.gate import member_actor
from puente.accounts.models import Membership, User, Workspace
from puente.app import create_app
from puente.channels.models import Channel, ConnectionState
from puente.channels.sync import do_set_connection_state
from puente.config import Settings
from puente.conversations import collab
from puente.conversations.models import Conversation, Notification
from puente.db.session import Database
from puente.ingest.worker import run_until_idle
from puente.integrations.webhooks import service as hooks
from puente.integrations.webhooks.deliveries import enqueue
from puente.integrations.webhooks.models import WebhookDelivery, WebhookEndpoint
from puente.integrations.webhooks.worker import WebhookSender, deliver_due
from puente.runtime import Runtime
from tests.command import Ran, environment, run_puente
from tests.conftest import free_port
from tests.factories import PASSWORD, make_channel, make_token, make_user, make_workspace
from tests.ingest.helpers import (
    PHONE_NUMBER_ID,
    dumps,
    envelope,
    messages_change,
    signed,
    text_message,
)
from tests.waiting import wait_until
from tests.webclient import WebClient

HUGE = 20 * 1024 * 1024


# -- the receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """Answers each path as told: a list of statuses taken in turn (the last one stays),
    "redirect", "huge" (a 20 MB answer) or "hang" (until `release` is set)."""

    port: int
    plans: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def next_plan(self, path: str) -> Any:
        with self.lock:
            plan = self.plans.get(path, [200])
            return plan.pop(0) if len(plan) > 1 else plan[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            plan = receiver.next_plan(self.path)
            status = 302 if plan == "redirect" else 200 if plan in ("huge", "hang") else plan
            with receiver.lock:
                receiver.requests.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                    )
                )
            if plan == "hang":
                receiver.release.wait(30)
            self.send_response(status)
            if plan == "redirect":
                self.send_header("location", f"{receiver.url}/elsewhere")
            if plan == "huge":
                self.send_header("content-length", str(HUGE))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(HUGE // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the client hung up after its kilobyte, as it should
                return
            answer = b'{"ok":true}'
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


def start_receiver(port: int | None = None) -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver(port or free_port())
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), _handler(receiver))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found, server = start_receiver()
    yield found
    found.release.set()
    server.shutdown()
    server.server_close()


# -- Puente ---------------------------------------------------------------------------------


@dataclass
class World:
    db: Database
    runtime: Runtime
    client: TestClient
    workspace_id: int
    token: str
    owner_email: str

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"authorization": f"Bearer {self.token}"}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def endpoint(self, url: str, events: list[str] | None = None) -> tuple[int, str]:
        response = self.api(
            "POST", "/webhooks", json={"url": url, "events": events or ["message.created"]}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["secret"]

    def deliveries(self, endpoint_id: int) -> list[WebhookDelivery]:
        with self.db.read(unscoped="test") as session:
            rows = list(
                session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.endpoint_id == endpoint_id)
                    .order_by(WebhookDelivery.id)
                )
            )
            session.expunge_all()
            return rows

    def enqueue(self, count: int, conversation_id: int | None = None) -> None:
        with self.db.unit_of_work(scope=self.workspace_id) as session:
            for n in range(count):
                enqueue(
                    session,
                    workspace_id=self.workspace_id,
                    event_type="message.created",
                    data={"n": n, "conversation": conversation_id},
                    conversation_id=conversation_id,
                )


def _world(
    settings: Settings, db: Database, *, number: str | None = PHONE_NUMBER_ID, **changes: Any
) -> Iterator[World]:
    app = create_app(settings.model_copy(update=changes), db, run_workers=False)
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session, f"Tienda {free_port()}")
        make_channel(session, workspace, phone_number_id=number)
        owner = make_user(session, workspace, role="owner")
        token = make_token(session, workspace, ["settings:write"])
        workspace_id, owner_email = workspace.id, owner.email
    with TestClient(app) as client:
        yield World(db, app.state.runtime, client, workspace_id, token, owner_email)


@pytest.fixture
def world(settings: Settings, db: Database) -> Iterator[World]:
    yield from _world(settings, db, webhooks_allow_private=True)


def _verified(secret: str, request: Received) -> dict[str, Any]:
    found: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return found


# -- the tests --------------------------------------------------------------------------------


def test_a_customer_message_reaches_the_receiver_signed(
    world: World, receiver: Receiver, settings: Settings, db: Database
) -> None:
    events = ["message.created", "conversation.created", "contact.created"]
    endpoint_id, secret = world.endpoint(f"{receiver.url}/shop", events)
    # Another workspace's endpoint, subscribed to the same events, hears nothing of ours.
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Otra")
    with db.unit_of_work(scope=other.id) as session:
        hooks.create_endpoint(session, url=f"{receiver.url}/other", events=events)

    body = dumps(
        envelope(messages_change([text_message("wamid.WH1", "¿Tienen envío?")], name="Lucía"))
    )
    assert world.client.post("/webhooks/whatsapp", content=body, headers=signed(body)).is_success
    run_until_idle(world.runtime)
    assert deliver_due(db) == 3

    got = {r.payload["type"]: _verified(secret, r) for r in receiver.at("/shop")}
    assert sorted(got) == sorted(events)
    message = got["message.created"]
    assert message["workspace_id"] == world.workspace_id
    assert message["data"]["text"] == "¿Tienen envío?"
    assert message["data"]["direction"] == "inbound"
    assert message["data"]["wamid"] == "wamid.WH1"
    assert message["data"]["contact"]["name"] == "Lucía"
    assert message["data"]["contact"]["phone"] == "+16505551234"
    # The conversation's deliveries are numbered in the order they were written.
    conversation = got["conversation.created"]
    assert (conversation["sequence"], message["sequence"]) == (1, 2)
    assert got["contact.created"]["sequence"] is None
    assert receiver.at("/other") == []

    listed = world.api("GET", f"/webhooks/{endpoint_id}/deliveries").json()["items"]
    assert {d["state"] for d in listed} == {"delivered"}
    detail = world.api("GET", f"/webhooks/{endpoint_id}/deliveries/{listed[0]['id']}").json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [200]
    assert detail["attempt_log"][0]["response_excerpt"] == '{"ok":true}'
    # The secret is shown at creation only.
    assert "secret" not in world.api("GET", f"/webhooks/{endpoint_id}").json()


def test_5xx_and_429_are_retried_with_the_same_webhook_id_until_a_2xx(
    world: World, receiver: Receiver
) -> None:
    receiver.plans["/flaky"] = [503, 429, 200]
    endpoint_id, secret = world.endpoint(f"{receiver.url}/flaky")
    world.enqueue(1, conversation_id=7)
    now = dt.datetime.now(dt.UTC)

    assert deliver_due(world.db, now=now) == 0
    [delivery] = world.deliveries(endpoint_id)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 503)
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > now
    assert deliver_due(world.db, now=now) == 0  # not due yet: nothing is sent
    assert len(receiver.at("/flaky")) == 1

    assert deliver_due(world.db, now=now + dt.timedelta(hours=1)) == 0
    assert deliver_due(world.db, now=now + dt.timedelta(hours=2)) == 1
    [delivery] = world.deliveries(endpoint_id)
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    sent = receiver.at("/flaky")
    assert [r.status for r in sent] == [503, 429, 200]
    assert len({r.headers["webhook-id"] for r in sent}) == 1
    _verified(secret, sent[-1])


def test_a_4xx_fails_at_once_and_is_never_retried(world: World, receiver: Receiver) -> None:
    receiver.plans["/gone"] = [410]
    endpoint_id, _ = world.endpoint(f"{receiver.url}/gone")
    world.enqueue(1)
    now = dt.datetime.now(dt.UTC)
    deliver_due(world.db, now=now)
    deliver_due(world.db, now=now + dt.timedelta(days=1))
    [delivery] = world.deliveries(endpoint_id)
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("failed", 1, "HTTP 410")
    assert len(receiver.at("/gone")) == 1

    # An admin sends it again once the receiver is fixed.
    receiver.plans["/gone"] = [200]
    response = world.api("POST", f"/webhooks/{endpoint_id}/resend-failed")
    assert response.json() == {"queued": 1}
    assert deliver_due(world.db) == 1


def test_a_redirect_is_a_failure_not_followed_and_a_huge_answer_is_not_read(
    world: World, receiver: Receiver
) -> None:
    receiver.plans["/moved"] = ["redirect"]
    receiver.plans["/huge"] = ["huge"]
    moved, _ = world.endpoint(f"{receiver.url}/moved")
    huge, _ = world.endpoint(f"{receiver.url}/huge")
    world.enqueue(1)
    deliver_due(world.db)

    [redirected] = world.deliveries(moved)
    assert redirected.state == "failed"
    assert redirected.last_error == f"redirect to {receiver.url}/elsewhere"
    assert receiver.at("/elsewhere") == []
    [big] = world.deliveries(huge)
    assert big.state == "delivered"
    detail = world.api("GET", f"/webhooks/{huge}/deliveries/{big.id}").json()
    assert len(detail["attempt_log"][0]["response_excerpt"]) == 1024


def test_a_hanging_endpoint_does_not_hold_up_another(world: World, receiver: Receiver) -> None:
    receiver.plans["/hang"] = ["hang"]
    world.endpoint(f"{receiver.url}/hang")
    world.endpoint(f"{receiver.url}/fast")
    world.enqueue(1)
    sender = WebhookSender(world.db, pool_size=4)
    try:
        sender.step()
        wait_until(lambda: receiver.at("/fast"), what="the fast endpoint's delivery")
        assert len(receiver.at("/hang")) == 1  # still waiting for its answer meanwhile
        assert not sender.idle()
    finally:
        receiver.release.set()
        wait_until(sender.idle, what="the hanging batch to end")
        sender.close()


def test_a_private_address_is_refused_with_the_reason_unless_allowed(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    for world in _world(settings, db):
        response = world.api(
            "POST", "/webhooks", json={"url": f"{receiver.url}/x", "events": ["message.created"]}
        )
        assert response.status_code == 422
        assert "127.0.0.1 is a private or local address" in response.json()["error"]["message"]
        assert "PUENTE_WEBHOOKS_ALLOW_PRIVATE" in response.json()["error"]["message"]
    for world in _world(settings, db, number=None, webhooks_allow_private=True):
        endpoint_id, _ = world.endpoint(f"{receiver.url}/x")
    # Checked again at each send: an operator who takes the permission back stops them.
    for _restricted in _world(settings, db, number=None):
        workspace_id = _workspace_of(db, endpoint_id)
        with db.unit_of_work(scope=workspace_id) as session:
            enqueue(session, workspace_id=workspace_id, event_type="message.created", data={})
        deliver_due(db)
    [delivery] = world.deliveries(endpoint_id)
    assert delivery.state == "failed"
    assert "resolves to a private address" in (delivery.last_error or "")
    assert receiver.at("/x") == []


def _workspace_of(db: Database, endpoint_id: int) -> int:
    with db.read(unscoped="test") as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint.workspace_id


def test_a_receiver_down_then_up_gets_each_delivery_once_in_order(world: World) -> None:
    port = free_port()
    endpoint_id, secret = world.endpoint(f"http://127.0.0.1:{port}/late")
    for conversation_id in (11, 12):
        world.enqueue(3, conversation_id=conversation_id)
    now = dt.datetime.now(dt.UTC)
    deliver_due(world.db, now=now)
    deliver_due(world.db, now=now + dt.timedelta(minutes=30))
    assert {d.last_error for d in world.deliveries(endpoint_id) if d.attempts} == {
        "connection refused"
    }

    receiver, server = start_receiver(port)
    try:
        assert deliver_due(world.db, now=now + dt.timedelta(hours=5)) == 6
    finally:
        server.shutdown()
        server.server_close()
    got = [_verified(secret, r) for r in receiver.at("/late")]
    assert len({r.headers["webhook-id"] for r in receiver.at("/late")}) == 6
    for conversation_id in (11, 12):
        sequences = [p["sequence"] for p in got if p["data"]["conversation"] == conversation_id]
        assert sequences == [1, 2, 3]


def test_an_endpoint_failing_for_three_days_is_disabled_and_admins_are_told(
    world: World,
) -> None:
    endpoint_id, _ = world.endpoint(f"http://127.0.0.1:{free_port()}/never")
    world.enqueue(1)
    now = dt.datetime.now(dt.UTC)
    deliver_due(world.db, now=now)
    deliver_due(world.db, now=now + dt.timedelta(days=1))
    assert _endpoint(world, endpoint_id).enabled

    deliver_due(world.db, now=now + dt.timedelta(days=3, minutes=1))
    endpoint = _endpoint(world, endpoint_id)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "failing for 3 days"
    [delivery] = world.deliveries(endpoint_id)
    assert delivery.state == "failed"
    with world.db.read(unscoped="test") as session:
        [text] = session.scalars(
            select(Notification.text).where(Notification.kind == "webhook")
        ).all()
    assert text == endpoint.url
    owner = WebClient(world.client)
    assert owner.login(world.owner_email, PASSWORD).status_code in (200, 303)
    listed = owner.get("/inbox/notifications").text
    assert "A webhook endpoint was disabled after failing for 3 days" in listed
    assert endpoint.url in listed and 'href="/settings/webhooks"' in listed

    # Switched on again by an admin: the streak starts over.
    endpoint_json = world.api("PATCH", f"/webhooks/{endpoint_id}", json={"enabled": True}).json()
    assert endpoint_json["enabled"] and endpoint_json["disabled_reason"] is None


def _endpoint(world: World, endpoint_id: int) -> WebhookEndpoint:
    with world.db.read(unscoped="test") as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        session.expunge(endpoint)
        return endpoint


def test_the_api_manages_endpoints_and_refuses_bad_input(world: World) -> None:
    endpoint_id, secret = world.endpoint("https://hooks.example.com/in")
    rotated = world.api("POST", f"/webhooks/{endpoint_id}/rotate-secret").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    assert world.api("GET", f"/webhooks/{endpoint_id}").json()["secret_hint"] == rotated[-4:]
    bad = world.api("POST", "/webhooks", json={"url": "ftp://x", "events": ["message.created"]})
    assert bad.status_code == 422
    unknown = world.api("POST", "/webhooks", json={"url": "https://x.example", "events": ["x"]})
    assert unknown.status_code == 422
    test = world.api("POST", f"/webhooks/{endpoint_id}/test")
    assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
    assert world.api("DELETE", f"/webhooks/{endpoint_id}").status_code == 204
    assert world.api("GET", f"/webhooks/{endpoint_id}").status_code == 404


def test_the_cli_adds_tests_lists_and_resends_with_one_line_refusals(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Tienda CLI")
    env = environment(settings, PUENTE_WEBHOOKS_ALLOW_PRIVATE="true")

    def puente(*args: str) -> Ran:
        return run_puente(env, "webhooks", *args, "--workspace", "Tienda CLI")

    added = puente("add", f"{receiver.url}/cli", "--event", "message.created")
    assert added.returncode == 0, added.stderr
    endpoint_id = int(added.stdout.split()[1])
    secret = added.stdout.split("secret: ")[1].split()[0]

    tested = puente("test", str(endpoint_id))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "webhook.test" in tested.stdout and "delivered" in tested.stdout
    assert _verified(secret, receiver.at("/cli")[0])["type"] == "webhook.test"
    assert f"{receiver.url}/cli" in puente("list").stdout
    assert "delivered" in puente("deliveries", str(endpoint_id)).stdout
    assert puente("resend", str(endpoint_id), "--failed").stdout.startswith("0 failed")

    refused = run_puente(
        environment(settings),
        *("webhooks", "add", "http://127.0.0.1:9/x", "-e", "message.created"),
        *("--workspace", "Tienda CLI"),
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "private or local address" in refused.stderr
    unknown = puente("add", "https://hooks.example.com/x", "--event", "message.sent")
    assert unknown.returncode != 0 and "Unknown event type: message.sent" in unknown.stderr
    assert puente("remove", str(endpoint_id)).returncode == 0
    assert "no webhook endpoints" in puente("list").stdout


def test_assignment_status_and_erasure_become_their_own_events(
    world: World, receiver: Receiver, db: Database
) -> None:
    events = ["message.created", "conversation.assigned", "conversation.status_changed"]
    endpoint_id, secret = world.endpoint(f"{receiver.url}/crm", [*events, "contact.erased"])
    body = dumps(envelope(messages_change([text_message("wamid.WH2", "Hola")])))
    assert world.client.post("/webhooks/whatsapp", content=body, headers=signed(body)).is_success
    run_until_idle(world.runtime)
    with db.unit_of_work(scope=world.workspace_id) as session:
        owner = session.scalars(select(User).where(User.email == world.owner_email)).one()
        membership = session.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
        actor = member_actor(session, owner, membership, world.workspace_id)
        assert actor is not None
        conversation = session.scalars(select(Conversation)).one()
        collab.do_assign(session, actor, conversation, assignee_id=owner.id)
        collab.do_close(session, actor, conversation)
        contact_id, conversation_id = conversation.contact_id, conversation.id
    deliver_due(db)
    got = [_verified(secret, r) for r in receiver.at("/crm")]
    assert [p["type"] for p in got] == events
    assert [p["sequence"] for p in got] == [1, 2, 3]
    assert got[1]["data"]["assignee_id"] == owner.id
    assert got[2]["data"]["status"] == "resolved"

    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, world.workspace_id)
        assert workspace is not None
        everything = make_token(session, workspace, ["*"])
    erased = world.client.delete(
        f"/api/v1/contacts/{contact_id}", headers={"authorization": f"Bearer {everything}"}
    )
    assert erased.status_code == 200, erased.text
    # What the log held about the person is gone with them; the receiver is told.
    assert [d.event_type for d in world.deliveries(endpoint_id)] == ["contact.erased"]
    deliver_due(db)
    erasure = _verified(secret, receiver.at("/crm")[-1])
    assert erasure["data"] == {"id": contact_id}
    assert all(d.conversation_id != conversation_id for d in world.deliveries(endpoint_id))


def test_a_number_filter_and_a_connection_change(
    world: World, receiver: Receiver, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, world.workspace_id)
        assert workspace is not None
        other = make_channel(session, workspace)
        [mine] = [c for c in session.scalars(select(Channel)) if c.id != other.id]
        mine_id, other_id = mine.id, other.id
    events = ["channel.connection_changed", "message.created"]
    response = world.api(
        "POST",
        "/webhooks",
        json={"url": f"{receiver.url}/other", "events": events, "channel_id": other_id},
    )
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    unknown = world.api(
        "POST", "/webhooks", json={"url": receiver.url, "events": events, "channel_id": 999}
    )
    assert unknown.status_code == 422 and "Unknown number" in unknown.text

    body = dumps(envelope(messages_change([text_message("wamid.WH3", "Hola")])))
    assert world.client.post("/webhooks/whatsapp", content=body, headers=signed(body)).is_success
    run_until_idle(world.runtime)  # a message on the other number: not for this endpoint
    with db.unit_of_work(scope=world.workspace_id) as session:
        for channel_id in (mine_id, other_id):
            channel = session.get(Channel, channel_id)
            assert channel is not None
            do_set_connection_state(
                session,
                channel,
                ConnectionState.DISCONNECTED,
                reason="ACCOUNT_DISCONNECTED",
                at=dt.datetime.now(dt.UTC),
            )
    deliver_due(db)
    [got] = [_verified(secret, r) for r in receiver.at("/other")]
    assert got["type"] == "channel.connection_changed"
    assert got["data"]["channel_id"] == other_id
    assert (got["data"]["previous_state"], got["data"]["connection_state"]) == (
        "connected",
        "disconnected",
    )
