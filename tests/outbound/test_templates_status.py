"""Template review lifecycle from signed `message_template_status_update` webhooks
(protocol §9): PENDING -> APPROVED, REJECTED with reason, PAUSED, DISABLED, out of order,
unknown WABAs parked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.events import TemplateStatusChanged, bus
from puente.ingest.models import WebhookChange
from puente.ingest.worker import run_until_idle
from puente.outbound.models import MessageTemplate
from puente.runtime import Runtime
from tests.conftest import LiveServer
from tests.factories import make_channel, make_workspace
from tests.ingest.helpers import dumps, signed

WABA = "102290129340398"
META_ID = 594425479261596


@pytest.fixture
def server(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> LiveServer:
    return live_server_factory(create_app(settings, db, run_workers=False)).start()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def runtime_of(server: LiveServer) -> Runtime:
    runtime: Runtime = server.server.config.app.state.runtime  # type: ignore[attr-defined]
    return runtime


@pytest.fixture
def workspace_id(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        make_channel(session, ws, waba_id=WABA)
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id=WABA,
                name="order_shipped",
                language="es_MX",
                category="UTILITY",
                status="PENDING",
                meta_id=str(META_ID),
                components=[{"type": "BODY", "text": "Tu pedido va en camino."}],
            )
        )
        return ws.id


def status_change(event: str, *, template_id: int = META_ID, **extra: Any) -> dict[str, Any]:
    value = {
        "event": event,
        "message_template_id": template_id,
        "message_template_name": "order_shipped",
        "message_template_language": "es_MX",
        "message_template_category": "UTILITY",
        "reason": extra.pop("reason", "NONE"),
        **extra,
    }
    return {"field": "message_template_status_update", "value": value}


def deliver(
    client: httpx.Client, server: LiveServer, change: dict[str, Any], *, time: int, waba: str = WABA
) -> None:
    body = dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba, "time": time, "changes": [change]}],
        }
    )
    r = client.post("/webhooks/whatsapp", content=body, headers=signed(body))
    assert r.status_code == 200
    run_until_idle(runtime_of(server))


def template(db: Database, name: str = "order_shipped") -> MessageTemplate:
    with db.read(unscoped="test") as session:
        row = session.scalars(select(MessageTemplate).where(MessageTemplate.name == name)).one()
        session.expunge(row)
        return row


T0 = 1_763_700_000


def test_pending_template_is_approved(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    seen: list[TemplateStatusChanged] = []
    unsubscribe = bus.subscribe(TemplateStatusChanged, seen.append)
    try:
        deliver(client, server, status_change("APPROVED"), time=T0)
    finally:
        unsubscribe()
    t = template(db)
    assert t.status == "APPROVED"
    assert t.status_reason is None
    assert t.status_changed_at is not None and int(t.status_changed_at.timestamp()) == T0
    assert [(e.workspace_id, e.status) for e in seen] == [(workspace_id, "APPROVED")]


def test_rejection_keeps_metas_reason(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    change = status_change(
        "REJECTED",
        reason="INVALID_FORMAT",
        rejection_info={
            "reason": "INVALID_FORMAT",
            "recommendation": "Remove the variable at the end of the body.",
        },
    )
    deliver(client, server, change, time=T0)
    t = template(db)
    assert t.status == "REJECTED"
    assert t.status_reason == "INVALID_FORMAT: Remove the variable at the end of the body."


def test_approved_then_paused_then_disabled(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    deliver(client, server, status_change("APPROVED"), time=T0)
    paused = status_change(
        "PAUSED",
        other_info={"title": "FIRST_PAUSE", "description": "Paused for low quality for 3 hours."},
    )
    deliver(client, server, paused, time=T0 + 60)
    t = template(db)
    assert t.status == "PAUSED"
    assert t.status_reason == "FIRST_PAUSE: Paused for low quality for 3 hours."

    disabled = status_change(
        "DISABLED", reason="Low quality", disable_info={"disable_date": "1763800000"}
    )
    deliver(client, server, disabled, time=T0 + 120)
    t = template(db)
    assert t.status == "DISABLED"
    assert t.status_reason is not None and t.status_reason.startswith("Low quality")

    reinstated = status_change("REINSTATED")
    deliver(client, server, reinstated, time=T0 + 180)
    assert template(db).status == "APPROVED"


def test_a_late_older_event_does_not_undo_a_newer_one(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    deliver(client, server, status_change("PAUSED"), time=T0 + 100)
    deliver(client, server, status_change("APPROVED"), time=T0)  # Meta's retry, delivered late
    assert template(db).status == "PAUSED"
    deliver(client, server, status_change("PAUSED"), time=T0 + 100)  # duplicate
    assert template(db).status == "PAUSED"


def test_template_made_in_whatsapp_manager_appears(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    change = status_change("APPROVED", template_id=777)
    change["value"]["message_template_name"] = "hecha_en_manager"
    change["value"]["message_template_category"] = "MARKETING"
    deliver(client, server, change, time=T0)
    t = template(db, "hecha_en_manager")
    assert (t.status, t.category, t.meta_id, t.workspace_id) == (
        "APPROVED",
        "MARKETING",
        "777",
        workspace_id,
    )


def test_status_for_an_unknown_waba_is_parked_not_lost(
    db: Database, server: LiveServer, client: httpx.Client, workspace_id: int
) -> None:
    deliver(client, server, status_change("APPROVED"), time=T0, waba="5550001")
    with db.read(unscoped="test") as session:
        states = session.scalars(select(WebhookChange.state)).all()
    assert states == ["parked"]
    assert template(db).status == "PENDING"
