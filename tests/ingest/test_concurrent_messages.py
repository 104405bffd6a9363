"""Two ingest workers at once on messages of the same few customers (several `puente
worker` processes on PostgreSQL): every message is counted unread exactly once and no
batch deadlocks. Before, workers read and rewrote the conversation's unread count, losing
increments, and their row locks deadlocked."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from puente.config import Settings
from puente.conversations.models import Conversation, Message
from puente.db.session import Database
from puente.ingest.models import EventState, WebhookChange, WebhookEvent
from puente.ingest.store import do_commit_webhooks
from puente.ingest.worker import IngestProcessor
from tests.conformance.replay import setup_runtime
from tests.ingest.helpers import dumps, envelope, messages_change, text_message

CUSTOMERS = ["16505550001", "16505550002", "16505550003"]
POSTS = 120  # of 3 messages each: 360 messages over 3 customers


def _bodies() -> list[bytes]:
    bodies = []
    for n in range(POSTS):
        # Each post names the customers in another order, as Meta's batches do.
        order = CUSTOMERS[n % 3 :] + CUSTOMERS[: n % 3]
        messages = [
            text_message(f"wamid.C{n:04d}{k}", f"Mensaje {n}-{k}", sender=who)
            for k, who in enumerate(order)
        ]
        change = messages_change(messages, sender=order[0])
        change["value"]["contacts"] = [{"profile": {"name": w}, "wa_id": w} for w in order]
        bodies.append(dumps(envelope(change)))
    return bodies


def test_two_workers_on_the_same_customers_lose_no_unread_count_and_never_deadlock(
    settings: Settings, db: Database
) -> None:
    runtime = setup_runtime(settings, db)
    raw = db.engine.raw_connection()
    try:
        do_commit_webhooks(raw, db.engine.dialect, _bodies())
    finally:
        raw.close()

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(timeout=30)
            processor = IngestProcessor(runtime, batch_size=10)
            while processor.step():
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors

    with db.read(unscoped="test") as session:
        unread = dict(
            session.execute(select(Conversation.id, Conversation.unread_count)).tuples().all()
        )
        stored = session.scalar(select(func.count()).select_from(Message))
        requeued = session.execute(select(WebhookChange.state, WebhookChange.error)).all()
        states = set(session.scalars(select(WebhookEvent.state)))
    assert stored == 3 * POSTS
    assert len(unread) == 3
    assert sorted(unread.values()) == [POSTS, POSTS, POSTS]  # not one increment lost
    assert requeued == []  # no change had to wait for another turn (a deadlock re-queues)
    assert states == {EventState.DONE.value}
