"""A worker that dies after Meta accepted a send, but before recording it, never causes a
second send: the item waits in SENDING until the status webhook (carrying the outbox id
in biz_opaque_callback_data) reconciles it, or a person resends it explicitly."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.channels.models import Channel
from puente.config import Settings
from puente.db.base import utcnow
from puente.outbound.models import OutboxItem, OutboxState
from puente.outbound.outbox.lanes import CLAIM_LEASE, claim, hand
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from puente.whatsapp.signature import compute_signature
from tests.conftest import APP_SECRET, LiveServer
from tests.factories import make_token
from tests.graph_sandbox import GraphSandbox
from tests.outbound.conftest import Shop, item_of, message_row
from tests.outbound.test_outbox import queue_text
from tests.waiting import wait_until


def status_webhook(runtime: Runtime, shop: Shop, wamid: str, status: str, callback: str) -> bytes:
    with runtime.db.read(unscoped="test") as session:
        channel = session.get(Channel, shop.channel_id)
        assert channel is not None
        pnid, waba, display = channel.phone_number_id, channel.waba_id, channel.display_phone_number
    body: dict[str, Any] = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display,
                                "phone_number_id": pnid,
                            },
                            "statuses": [
                                {
                                    "id": wamid,
                                    "status": status,
                                    "timestamp": str(int(time.time())),
                                    "recipient_id": shop.wa_ids[0],
                                    "biz_opaque_callback_data": callback,
                                    "pricing": {
                                        "billable": False,
                                        "pricing_model": "PMP",
                                        "type": "free_customer_service",
                                        "category": "service",
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(body).encode()


@pytest.fixture
def start_puente(
    settings: Settings, runtime: Runtime, live_server_factory: type[LiveServer]
) -> Callable[[], LiveServer]:
    """Puente itself, with its workers (webhook processing and outbox) running."""

    def start() -> LiveServer:
        app = create_app(runtime.settings, runtime.db, run_workers=True)
        return live_server_factory(app).start()

    return start


def post_webhook(server: LiveServer, body: bytes) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": compute_signature(APP_SECRET.encode(), body),
    }
    response = httpx.post(f"{server.url}/webhooks/whatsapp", content=body, headers=headers)
    assert response.status_code == 200


def crash_mid_send(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> tuple[int, str]:
    """Queue a message, let Meta accept it, and kill the worker before it records that."""
    graph.hold_sends()
    message_id = queue_text(runtime, shop, "¿Confirmas tu cita?")
    worker = start_worker()
    wait_until(lambda: len(graph.sent()) == 1, what="Meta to accept the send")
    worker.stop(grace=0)
    worker.join()
    graph.release_sends()
    return message_id, graph.sent()[0]["id"]


def test_no_second_send_after_a_crash_and_the_status_webhook_reconciles(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    start_worker: Callable[..., OutboxWorker],
    start_puente: Callable[[], LiveServer],
) -> None:
    message_id, wamid = crash_mid_send(runtime, shop, graph, start_worker)
    puente = start_puente()
    item = item_of(runtime.db, message_id)
    assert item.state == OutboxState.SENDING.value
    assert message_row(runtime.db, message_id).wamid is None

    # A new worker (the live app's) sends other messages but never this one again.
    other = queue_text(runtime, shop, "Otro cliente", conversation=1)
    wait_until(lambda: message_row(runtime.db, other).status == "sent", what="the next send")
    assert [b["text"]["body"] for b in graph.accepted()] == ["¿Confirmas tu cita?", "Otro cliente"]
    assert item_of(runtime.db, message_id).state == OutboxState.SENDING.value

    # Meta's status webhook names the outbox item: the message gets its wamid and ticks.
    post_webhook(puente, status_webhook(runtime, shop, wamid, "delivered", f"outbox:{item.id}"))
    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).wamid == wamid and m,
        what="the reconciliation",
    )
    assert message.status == "delivered"
    assert item_of(runtime.db, message_id).state == OutboxState.SENT.value
    assert len(graph.accepted()) == 2


def test_unknown_send_is_shown_and_resent_only_when_a_person_asks(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    start_worker: Callable[..., OutboxWorker],
    start_puente: Callable[[], LiveServer],
) -> None:
    message_id, _ = crash_mid_send(runtime, shop, graph, start_worker)
    puente = start_puente()
    item_id = item_of(runtime.db, message_id).id
    with runtime.db.unit_of_work(unscoped="test") as session:
        # Long enough ago that no status webhook is coming: Meta never got it, say.
        row = session.get(OutboxItem, item_id)
        assert row is not None
        row.handed_at = utcnow() - dt.timedelta(minutes=10)
        token = make_token(session, _workspace(session, shop))
    auth = {"Authorization": f"Bearer {token}"}
    api = f"{puente.url}/api/v1"

    listed = httpx.get(f"{api}/outbox", params={"state": "unknown"}, headers=auth)
    assert listed.status_code == 200
    assert [(i["id"], i["state"]) for i in listed.json()] == [(item_id, "unknown")]

    resent = httpx.post(f"{api}/outbox/{item_id}/resend", headers=auth)
    assert resent.status_code == 200
    assert resent.json()["state"] == "queued"
    wait_until(lambda: message_row(runtime.db, message_id).status == "sent", what="the resend")
    assert len(graph.accepted()) == 2  # the first (lost) attempt and the explicit resend

    again = httpx.post(f"{api}/outbox/{item_id}/resend", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_resendable"


def test_a_status_that_beats_the_send_answer_is_not_downgraded(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    start_puente: Callable[[], LiveServer],
) -> None:
    puente = start_puente()
    # Meta's "read" webhook can arrive before Puente has recorded the send's answer.
    graph.hold_sends()
    message_id = queue_text(runtime, shop, "Gracias")
    wait_until(lambda: len(graph.sent()) == 1, what="Meta to accept the send")
    wamid = graph.sent()[0]["id"]
    item_id = item_of(runtime.db, message_id).id
    post_webhook(puente, status_webhook(runtime, shop, wamid, "read", f"outbox:{item_id}"))
    wait_until(lambda: message_row(runtime.db, message_id).status == "read", what="the read tick")
    graph.release_sends()
    # The conversation's next message leaves only once the first send is fully recorded.
    after = queue_text(runtime, shop, "Hasta pronto")
    wait_until(lambda: message_row(runtime.db, after).status == "sent", what="the next send")
    assert item_of(runtime.db, message_id).state == OutboxState.SENT.value
    message = message_row(runtime.db, message_id)
    assert message.status == "read"
    assert message.wamid == wamid
    assert len(graph.accepted()) == 2


def test_a_claim_never_handed_to_http_goes_back_to_the_queue_and_leaves_once(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    message_id = queue_text(runtime, shop, "Tu pedido salió")
    # A lane claims the item and dies before handing it to HTTP.
    with runtime.db.unit_of_work(unscoped="test") as session:
        [stale] = claim(session, shop.channel_id, limit=5)
    assert item_of(runtime.db, message_id).state == OutboxState.SENDING.value

    # The next owner of the lane (started for the next message) puts it back and sends
    # it; nobody has to resend it.
    other = queue_text(runtime, shop, "Otro cliente", conversation=1)
    start_worker()
    wait_until(lambda: message_row(runtime.db, message_id).status == "sent", what="the send")
    wait_until(lambda: message_row(runtime.db, other).status == "sent", what="the next send")
    assert sorted(b["text"]["body"] for b in graph.accepted()) == [
        "Otro cliente",
        "Tu pedido salió",
    ]
    # The dead claimant, were it only stalled, may no longer hand (so never send) it.
    with runtime.db.unit_of_work(unscoped="test") as session:
        assert hand(session, [stale]) == set()
    assert len(graph.accepted()) == 2


def test_a_lapsed_claim_wakes_its_lane_with_nothing_else_queued(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    message_id = queue_text(runtime, shop, "Recordatorio")
    with runtime.db.unit_of_work(unscoped="test") as session:
        claim(session, shop.channel_id, limit=5)
    with runtime.db.unit_of_work(unscoped="test") as session:
        row = session.get(OutboxItem, item_of(runtime.db, message_id).id)
        assert row is not None
        row.next_attempt_at = utcnow() - CLAIM_LEASE - dt.timedelta(seconds=1)
    start_worker()
    wait_until(lambda: message_row(runtime.db, message_id).status == "sent", what="the send")
    assert [b["text"]["body"] for b in graph.accepted()] == ["Recordatorio"]


def _workspace(session: Any, shop: Shop) -> Workspace:
    ws = session.get(Workspace, shop.workspace_id)
    assert ws is not None
    return ws
