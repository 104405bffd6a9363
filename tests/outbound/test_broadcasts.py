"""Broadcasts over the REST API against the Meta sandbox (real HTTP both ways): audiences
by tags and CSV with a per-row report, per-contact values with fallbacks, opted-out
contacts skipped with the reason, pause/resume/cancel, the messaging-limit tier, export,
and every recipient getting exactly one message."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.app import create_app
from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.contacts.models import Contact, ContactConsent, ContactTag, Tag
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.broadcasts.service import do_note_reply
from puente.outbound.broadcasts.worker import BroadcastWorker
from puente.outbound.models import MessageTemplate
from puente.outbound.outbox.worker import OutboxWorker
from puente.sandbox.app import create_sandbox_app
from puente.sandbox.config import SandboxConfig
from puente.sandbox.seed import DEMO_NUMBER, DEMO_WABA
from tests.factories import make_token, make_workspace
from tests.outbound.conftest import FAST_RETRIES
from tests.waiting import wait_until


@dataclass
class World:
    api: TestClient
    sandbox: str
    db: Database
    workspace_id: int
    channel_id: int
    auth: dict[str, str]
    runtime: Any

    def sent(self) -> list[dict[str, Any]]:
        return list(
            httpx.get(
                f"{self.sandbox}/_sandbox/api/sent",
                params={"number_id": DEMO_NUMBER, "limit": 5000},
            ).json()
        )

    def create(self, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = self.api.post("/broadcasts", json=body, headers=self.auth)
        assert response.status_code == status, response.text
        return dict(response.json())

    def get(self, broadcast_id: int) -> dict[str, Any]:
        return dict(self.api.get(f"/broadcasts/{broadcast_id}", headers=self.auth).json())

    def recipients(self, broadcast_id: int, **params: Any) -> list[dict[str, Any]]:
        r = self.api.get(
            f"/broadcasts/{broadcast_id}/recipients",
            params={"limit": 100, **params},
            headers=self.auth,
        )
        assert r.status_code == 200, r.text
        return list(r.json())


CUSTOMERS: list[tuple[str, str | None]] = [
    ("573001112233", "Lucía Gómez"),
    ("5215512345678", "Carlos Pérez"),
    ("34612345678", "Marta Ruiz"),
    ("16505551234", None),
]


@pytest.fixture
def world(settings: Settings, db: Database, live_server_factory: Any) -> Iterator[World]:
    sandbox = live_server_factory(create_sandbox_app(SandboxConfig())).start()
    settings = settings.model_copy(update={"graph_base_url": sandbox.url})
    app = create_app(settings, db, run_workers=False)
    runtime = app.state.runtime
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        channel = Channel(
            workspace_id=ws.id,
            name="Tienda La Esquina",
            phone_number_id=DEMO_NUMBER,
            waba_id=DEMO_WABA,
            display_phone_number="15550783881",
            mode=ChannelMode.COEXISTENCE.value,
            throughput_mps=20,
            access_token_encrypted=runtime.secrets.encrypt(SandboxConfig().access_token),
            settings={},
        )
        session.add(channel)
        for tname, category, text in [
            ("pedido_confirmado", "UTILITY", "Hola {{1}}, tu pedido {{2}} está confirmado."),
            ("promo_mensual", "MARKETING", "¡{{1}}, este mes tienes {{2}} de descuento!"),
        ]:
            components: list[dict[str, Any]] = [{"type": "BODY", "text": text}]
            if tname == "promo_mensual":
                components.insert(0, {"type": "HEADER", "format": "IMAGE"})
            session.add(
                MessageTemplate(
                    workspace_id=ws.id,
                    waba_id=DEMO_WABA,
                    name=tname,
                    language="es",
                    category=category,
                    status="APPROVED",
                    components=components,
                    meta_id=tname,
                )
            )
        tag = Tag(workspace_id=ws.id, name="clientes")
        session.add(tag)
        session.flush()
        for wa_id, name in CUSTOMERS:
            contact = Contact(
                workspace_id=ws.id,
                wa_id=wa_id,
                phone_e164="+" + wa_id,
                name=name,
                sources=["manual"],
                custom_fields={"pedido": f"A-{wa_id[-3:]}"} if name else {},
            )
            session.add(contact)
            session.flush()
            session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=tag.id))
        token = make_token(session, ws)
        ids = (ws.id, channel.id)
    workers = [
        OutboxWorker(runtime, poll_seconds=0.05, policy=FAST_RETRIES, timeout=5, stop_grace=5),
        BroadcastWorker(runtime, poll_seconds=0.05),
    ]
    for w in workers:
        w.start()
    with TestClient(app, base_url="http://testserver/api/v1") as api:
        yield World(
            api, sandbox.url, db, ids[0], ids[1], {"Authorization": f"Bearer {token}"}, runtime
        )
    for w in workers:
        w.stop()
    for w in workers:
        w.join()


def _by_phone(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["phone"]: r for r in rows}


def test_broadcast_to_tags_fills_values_with_fallbacks_and_sends_each_once(world: World) -> None:
    created = world.create(
        {
            "name": "Pedidos",
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"body.1": "{first_name|cliente}", "body.2": "{custom.pedido|sin número}"},
            "audience": {"kind": "tags", "tags": ["clientes"]},
        }
    )
    assert created["total"] == 4
    assert created["estimate"]["messages"] == 4
    assert created["estimate"]["category"] == "utility"
    assert {c["country"] for c in created["estimate"]["countries"]} == {"CO", "MX", "ES", "US/CA"}
    broadcast_id = created["id"]
    wait_until(
        lambda: world.get(broadcast_id)["state"] == "completed", what="the broadcast to finish"
    )
    sent = world.sent()
    assert sorted(m["customer"].lstrip("+") for m in sent) == sorted(w for w, _ in CUSTOMERS)
    bodies = {
        m["customer"].lstrip("+"): [
            p["text"] for p in m["request"]["template"]["components"][0]["parameters"]
        ]
        for m in sent
    }
    assert bodies["5215512345678"] == ["Carlos", "A-678"]
    assert bodies["16505551234"] == ["cliente", "sin número"]  # both fallbacks
    assert all(m["biz_opaque_callback_data"].startswith("outbox:") for m in sent)
    states = {r["state"] for r in world.recipients(broadcast_id)}
    assert states <= {"sent", "delivered", "read"}, states


def _sent_field(message: dict[str, Any], key: str) -> Any:
    return message.get(key) or message.get("request", {}).get(key)


def test_opted_out_contact_is_skipped_with_the_reason(world: World) -> None:
    with world.db.unit_of_work(unscoped="test") as session:
        marta = session.query(Contact).filter_by(wa_id="34612345678").one()
        session.add(
            ContactConsent(
                workspace_id=world.workspace_id,
                contact_id=marta.id,
                scope="marketing",
                state="opt_out",
                since=utcnow(),
                source="keyword",
            )
        )
    created = world.create(
        {
            "template": {"name": "promo_mensual", "language": "es"},
            "variables": {
                "header.image": "https://example.com/promo.jpg",
                "body.1": "{first_name|amigo}",
                "body.2": "20 %",
            },
            "audience": {"kind": "tags", "tags": ["clientes"]},
        }
    )
    wait_until(lambda: world.get(created["id"])["state"] == "completed", what="completion")
    rows = _by_phone(world.recipients(created["id"]))
    assert rows["+34612345678"]["state"] == "skipped"
    assert rows["+34612345678"]["reason"] == "opted out of marketing messages"
    assert "34612345678" not in {m["customer"].lstrip("+") for m in world.sent()}
    assert len(world.sent()) == 3
    assert created["estimate"]["messages"] == 3  # the skipped one costs nothing


def test_csv_audience_reports_every_bad_row_by_line(world: World) -> None:
    text = (
        "telefono,nombre,pedido\n"
        "+57 300 111 2233,Lucía,A-1\n"
        "not-a-number,Nadie,A-2\n"
        "+5215512345678,Carlos,A-3\n"
        "+525512345678,Carlos otra vez,A-4\n"  # the same person without Mexico's "1"
        "+34612345678,Marta,\n"  # no value for {csv.pedido} and no fallback
        "+5511987654321,Brasil,A-6\n"
    )
    body = {
        "template": {"name": "pedido_confirmado", "language": "es"},
        "variables": {"body.1": "{name}", "body.2": "{csv.pedido}"},
        "audience": {"kind": "csv", "csv": text},
    }
    dry = world.create({**body, "dry_run": True})
    assert dry["id"] is None
    assert [(p["line"], p["problem"]) for p in dry["problems"]] == [
        (3, "not a valid phone number"),
        (5, "duplicate of line 4"),
        (6, "missing value for body.2 ({csv.pedido} is empty and has no fallback)"),
    ]
    assert dry["estimate"]["messages"] == 3
    assert world.api.get("/broadcasts", headers=world.auth).json() == []  # nothing saved
    created = world.create(body)
    wait_until(lambda: world.get(created["id"])["state"] == "completed", what="completion")
    sent = {m["customer"].lstrip("+"): m for m in world.sent()}
    assert set(sent) == {"573001112233", "5215512345678", "5511987654321"}
    rows = world.recipients(created["id"])
    assert sorted(r["csv_line"] for r in rows) == [2, 4, 7]


def test_unknown_contact_fails_clearly_and_bad_variables_are_refused(world: World) -> None:
    refused = world.create(
        {
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"body.1": "{name}"},
            "audience": {"kind": "all"},
        },
        status=422,
    )
    assert "variables.body.2" in refused["error"]["message"]
    created = world.create(
        {
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"body.1": "{name|cliente}", "body.2": "X"},
            "audience": {"kind": "contacts", "contact_ids": [999999]},
        }
    )
    rows = world.recipients(created["id"])
    assert [(r["state"], r["reason"]) for r in rows] == [("skipped", "unknown contact 999999")]


def test_pause_resume_cancel_and_export(world: World) -> None:
    world.api.put(
        f"/channels/{world.channel_id}/messaging-limit", json={"tier": "250"}, headers=world.auth
    )
    created = world.create(
        {
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"body.1": "{name|cliente}", "body.2": "X"},
            "audience": {"kind": "all"},
            "scheduled_at": "2099-01-01T09:00:00",
        }
    )
    assert created["state"] == "scheduled"
    bid = created["id"]
    paused = world.api.post(f"/broadcasts/{bid}/pause", headers=world.auth)
    assert paused.json()["state"] == "paused"
    again = world.api.post(f"/broadcasts/{bid}/pause", headers=world.auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "broadcast_state"
    resumed = world.api.post(f"/broadcasts/{bid}/resume", headers=world.auth)
    assert resumed.json()["state"] == "sending"
    wait_until(lambda: world.get(bid)["state"] == "completed", what="completion")
    assert len(world.sent()) == 4
    export = world.api.get(f"/broadcasts/{bid}/export", headers=world.auth)
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 4 and all(r["wamid"] for r in rows)
    cancelled = world.api.post(f"/broadcasts/{bid}/cancel", headers=world.auth)
    assert cancelled.status_code == 409  # a completed broadcast is past cancelling


def test_tier_holds_sends_beyond_the_limit(world: World) -> None:
    from puente.outbound.broadcasts import tiers

    tiers.TIERS["2"] = 2  # a tiny tier so the test stays small
    try:
        r = world.api.put(
            f"/channels/{world.channel_id}/messaging-limit", json={"tier": "2"}, headers=world.auth
        )
        assert r.status_code == 200, r.text
        created = world.create(
            {
                "template": {"name": "pedido_confirmado", "language": "es"},
                "variables": {"body.1": "{name|cliente}", "body.2": "X"},
                "audience": {"kind": "all"},
            }
        )
        bid = created["id"]
        wait_until(lambda: len(world.sent()) == 2, what="two sends")
        shown = world.get(bid)
        assert shown["state"] == "sending"
        assert "messaging limit reached" in shown["progress"]["waiting_reason"]
        assert shown["progress"]["counts"]["queued"] == 2
        limit = world.api.get(
            f"/channels/{world.channel_id}/messaging-limit", headers=world.auth
        ).json()
        assert limit["reached_24h"] == 2 and limit["left"] == 0
    finally:
        tiers.TIERS.pop("2", None)


def test_a_reply_marks_the_recipient_replied_and_publishes_the_hook(world: World) -> None:
    from puente.events import BroadcastReplied, bus

    seen: list[BroadcastReplied] = []
    unsubscribe = bus.subscribe(BroadcastReplied, seen.append)
    try:
        created = world.create(
            {
                "template": {"name": "pedido_confirmado", "language": "es"},
                "variables": {"body.1": "{name|cliente}", "body.2": "X"},
                "audience": {"kind": "tags", "tags": ["clientes"]},
            }
        )
        wait_until(lambda: world.get(created["id"])["state"] == "completed", what="completion")
        with world.db.unit_of_work(unscoped="test") as session:
            carlos = session.query(Contact).filter_by(wa_id="5215512345678").one()
            assert do_note_reply(session, world.workspace_id, carlos.id, utcnow()) == 1
        rows = _by_phone(world.recipients(created["id"]))
        assert rows["+5215512345678"]["state"] == "replied"
        assert [e.broadcast_id for e in seen] == [created["id"]]
    finally:
        unsubscribe()


def test_single_template_sends_respect_the_tier_too(world: World) -> None:
    from puente.outbound.broadcasts import tiers

    tiers.TIERS["2"] = 2
    try:
        world.api.put(
            f"/channels/{world.channel_id}/messaging-limit", json={"tier": "2"}, headers=world.auth
        )
        with world.db.read(unscoped="test") as session:
            ids = dict(
                session.execute(
                    select(Contact.wa_id, Contact.id).where(
                        Contact.workspace_id == world.workspace_id
                    )
                )
                .tuples()
                .all()
            )

        def send(wa_id: str) -> Any:
            return world.api.post(
                "/messages",
                json={
                    "contact_id": ids[wa_id],
                    "type": "template",
                    "template": {
                        "name": "pedido_confirmado",
                        "language": {"code": "es"},
                        "components": [
                            {
                                "type": "body",
                                "parameters": [
                                    {"type": "text", "text": "Ana"},
                                    {"type": "text", "text": "A-1"},
                                ],
                            }
                        ],
                    },
                },
                headers=world.auth,
            )

        assert send("573001112233").status_code == 202
        assert send("5215512345678").status_code == 202
        refused = send("34612345678")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "messaging_limit"
        assert "messaging limit reached" in refused.json()["error"]["message"]
        # Someone already reached today may get another template.
        assert send("573001112233").status_code == 202
        wait_until(lambda: len(world.sent()) == 3, what="three sends")
        assert {m["customer"] for m in world.sent()} == {"573001112233", "5215512345678"}
    finally:
        tiers.TIERS.pop("2", None)
