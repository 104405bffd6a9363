"""The outbox worker against Puente's Meta sandbox over real HTTP: sending, pacing,
retries, order, pausing."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from puente.channels.events import publish_channel_updated
from puente.channels.models import Channel, ChannelMode, ConnectionState
from puente.conversations.models import Message, MessageSource
from puente.outbound.models import OutboxState
from puente.outbound.outbox.service import do_queue_message
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from tests.graph_sandbox import GraphSandbox
from tests.outbound.conftest import (
    Shop,
    item_of,
    make_shop,
    message_row,
    set_channel,
)
from tests.waiting import wait_until


def queue_text(runtime: Runtime, shop: Shop, body: str, conversation: int = 0, **kw: object) -> int:
    with runtime.db.unit_of_work(unscoped="test") as session:
        message = do_queue_message(
            session,
            workspace_id=shop.workspace_id,
            conversation_id=shop.conversations[conversation],
            message_type="text",
            content={"body": body},
            source=MessageSource.AGENT,
            **kw,  # type: ignore[arg-type]
        )
        return message.id


def count_sent(runtime: Runtime, ids: list[int]) -> int:
    time.sleep(0.1)  # poll gently: the server's clock is what is measured here
    with runtime.db.read(unscoped="test") as session:
        return len(
            session.scalars(
                select(Message.id).where(Message.id.in_(ids), Message.status == "sent")
            ).all()
        )


def sent_bodies(graph: GraphSandbox) -> list[str]:
    return [b["text"]["body"] for b in graph.accepted() if b["type"] == "text"]


def test_queued_message_is_sent_once_with_its_wamid(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    message_id = queue_text(runtime, shop, "Tu pedido está listo", reply_to="wamid.CUSTOMER1")
    assert message_row(runtime.db, message_id).status == "queued"
    start_worker()

    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).status == "sent" and m,
        what="the message to be sent",
    )
    (sent,) = graph.sent()
    body = sent["request"]
    item = item_of(runtime.db, message_id)
    assert message.wamid == sent["id"]
    assert item.state == OutboxState.SENT.value
    assert item.attempts == 1
    assert item.sent_at is not None
    if not runtime.db.is_postgres:
        # Stored in the same text form as every other time, so SQLite compares and sorts
        # them as times (a "+00:00" suffix would sort apart).
        with runtime.db.engine.connect() as conn:
            sent_at, created_at = conn.exec_driver_sql(
                "SELECT sent_at, created_at FROM outbox WHERE id = ?", (item.id,)
            ).one()
        assert len(sent_at) == len(created_at) and "+" not in sent_at
    # Meta's exact request: the recipient, the quoted message and the outbox id to reconcile.
    assert body["messaging_product"] == "whatsapp"
    assert body["to"] == "+" + shop.wa_ids[0]
    assert body["text"] == {"body": "Tu pedido está listo"}
    assert body["context"] == {"message_id": "wamid.CUSTOMER1"}
    assert body["biz_opaque_callback_data"] == f"outbox:{item.id}"


def test_sending_never_exceeds_the_numbers_throughput_in_any_second(
    runtime: Runtime, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    # A coexistence number: Meta allows 20 messages per second.
    shop = make_shop(runtime, customers=50, mode=ChannelMode.COEXISTENCE)
    ids = [queue_text(runtime, shop, f"aviso {i}", conversation=i) for i in range(50)]
    start_worker()
    wait_until(lambda: count_sent(runtime, ids) == 50, seconds=30, what="all 50 sends")
    assert len(graph.sent()) == 50
    # Every send that reached Meta counts, refused or not.
    arrivals = sorted(r["time"] for r in graph.send_requests())
    # Count sends in every one-second window that starts at a send, as Meta would.
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= 20
    # How close to 20/s the lane gets is a speed figure, measured by bench/outbound.py pace,
    # not asserted here: on a loaded machine it would make this test fail for the wrong reason.


def test_rate_limit_and_server_error_are_retried_until_sent(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    graph.fail_next(130429, message="(#130429) Rate limit hit")
    graph.fail_next(1, status=500, message="An unknown error occurred")
    message_id = queue_text(runtime, shop, "¿Sigues ahí?")
    start_worker()

    wait_until(lambda: message_row(runtime.db, message_id).status == "sent", what="the retry")
    item = item_of(runtime.db, message_id)
    assert item.attempts == 3
    assert item.state == OutboxState.SENT.value
    assert item.last_error is None
    assert [r["status"] for r in graph.send_requests()] == [400, 500, 200]
    assert len(graph.sent()) == 1


def test_closed_window_from_meta_fails_at_once_with_the_reason(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    # The customer never wrote to the number at Meta; Meta says so in its answer.
    graph.configure(policy_errors_sync=True)
    message_id = queue_text(runtime, shop, "¿Hola?")
    start_worker()

    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).status == "failed" and m,
        what="the failure",
    )
    item = item_of(runtime.db, message_id)
    assert item.state == OutboxState.FAILED.value
    assert item.attempts == 1
    assert item.error_code == 131047
    assert "only a template can be sent" in (item.last_error or "")
    assert message.error is not None
    assert message.error["code"] == 131047
    assert "only a template can be sent" in message.error["reason"]
    assert message.wamid is None
    assert len(graph.send_requests()) == 1


def test_retries_give_up_after_the_last_attempt(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    graph.fail_next(131057, times=10, status=503, message="(#131057) Maintenance")
    message_id = queue_text(runtime, shop, "hola")
    start_worker()
    wait_until(lambda: message_row(runtime.db, message_id).status == "failed", what="giving up")
    item = item_of(runtime.db, message_id)
    assert item.attempts == 5  # FAST_RETRIES.max_attempts
    assert (item.last_error or "").startswith("gave up after 5 attempts")
    assert graph.accepted() == []


def test_a_conversation_keeps_its_order_while_others_go_ahead(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    first = shop.wa_ids[0]
    # The first message to customer 0 hits the pair limit; the next two must wait for it.
    graph.fail_next(131056, to=first, message="(#131056) Pair rate limit hit")
    ids = [queue_text(runtime, shop, f"A{i}", conversation=0) for i in range(1, 4)]
    other = queue_text(runtime, shop, "B1", conversation=1)
    start_worker()

    wait_until(
        lambda: all(message_row(runtime.db, i).status == "sent" for i in [*ids, other]),
        what="all four messages",
    )
    bodies = sent_bodies(graph)
    assert [b for b in bodies if b.startswith("A")] == ["A1", "A2", "A3"]
    # Customer 1 was not held back by customer 0's pair limit.
    assert bodies.index("B1") < bodies.index("A1")
    assert item_of(runtime.db, ids[0]).attempts == 2


def test_paused_number_holds_messages_until_it_reconnects(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    held = queue_text(runtime, shop, "espera")
    set_channel(runtime.db, shop.channel_id, connection_state=ConnectionState.OFFBOARDED.value)
    elsewhere = make_shop(runtime, customers=1)
    start_worker()

    # Another number keeps sending, which proves the worker ran past the paused one.
    other = queue_text(runtime, elsewhere, "sigo")
    wait_until(lambda: message_row(runtime.db, other).status == "sent", what="the other number")
    assert message_row(runtime.db, held).status == "queued"
    assert sent_bodies(graph) == ["sigo"]

    set_channel(runtime.db, shop.channel_id, connection_state=ConnectionState.RECONNECTED.value)
    with runtime.db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, shop.channel_id)
        assert channel is not None
        publish_channel_updated(session, channel)
    wait_until(lambda: message_row(runtime.db, held).status == "sent", what="the resumed send")
    assert sent_bodies(graph) == ["sigo", "espera"]


def test_expired_token_fails_with_a_reason_to_reconnect(
    runtime: Runtime, shop: Shop, graph: GraphSandbox, start_worker: Callable[..., OutboxWorker]
) -> None:
    set_channel(runtime.db, shop.channel_id, access_token_encrypted=runtime.secrets.encrypt("old"))
    message_id = queue_text(runtime, shop, "hola")
    start_worker()
    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).status == "failed" and m,
        what="the auth failure",
    )
    assert message.error is not None
    assert message.error["code"] == 190
    assert "reconnect the number" in message.error["reason"]
