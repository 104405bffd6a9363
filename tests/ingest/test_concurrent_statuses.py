"""Two ingest workers processing status webhooks of the same messages at once (several
`puente worker` processes on PostgreSQL) both get through, without a deadlock."""

from __future__ import annotations

import threading

from sqlalchemy import select

from puente.config import Settings
from puente.conversations.models import Message, StatusEvent
from puente.db.base import utcnow
from puente.db.session import Database
from puente.ingest.models import EventState, WebhookChange, WebhookEvent
from puente.ingest.store import do_commit_webhooks
from puente.ingest.worker import IngestProcessor
from tests.conformance.replay import replay, setup_runtime
from tests.ingest.helpers import DISPLAY_NUMBER, PHONE_NUMBER_ID, dumps, envelope

MESSAGES = 40


def _outbound_messages(db: Database, count: int) -> list[str]:
    with db.unit_of_work(unscoped="test") as session:
        inbound = session.scalars(select(Message)).one()
        wamids = [f"wamid.concurrent{i:03d}" for i in range(count)]
        session.add_all(
            Message(
                workspace_id=inbound.workspace_id,
                channel_id=inbound.channel_id,
                conversation_id=inbound.conversation_id,
                contact_id=inbound.contact_id,
                wamid=wamid,
                direction="outbound",
                source="broadcast",
                type="template",
                content={},
                timestamp=utcnow(),
                status="sent",
                history=[],
            )
            for wamid in wamids
        )
    return wamids


def _status_body(wamid: str, status: str) -> bytes:
    change = {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DISPLAY_NUMBER,
                "phone_number_id": PHONE_NUMBER_ID,
            },
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": "1749416400",
                    "recipient_id": "16505551234",
                }
            ],
        },
    }
    return dumps(envelope(change))


def test_two_workers_apply_crossing_status_batches_without_a_deadlock(
    settings: Settings, db: Database
) -> None:
    runtime = setup_runtime(settings, db)
    replay(runtime, "messages_text")  # the conversation the outbound messages belong to
    wamids = _outbound_messages(db, MESSAGES)
    # One batch of `delivered` in message order, then one of `read` in the reverse order:
    # each worker's batch takes the other's messages in the opposite order.
    bodies = [_status_body(w, "delivered") for w in wamids]
    bodies += [_status_body(w, "read") for w in reversed(wamids)]
    raw = db.engine.raw_connection()
    try:
        do_commit_webhooks(raw, db.engine.dialect, bodies)
    finally:
        raw.close()

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def one_batch() -> None:
        try:
            start.wait(timeout=30)
            processor = IngestProcessor(runtime, batch_size=MESSAGES)
            # A worker leaves the events of a customer the other holds for its next step.
            while processor.step():
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_batch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    with db.read(unscoped="test") as session:
        states = session.scalars(select(WebhookEvent.state)).all()
        changes = session.execute(select(WebhookChange.state, WebhookChange.error)).all()
        statuses = dict(
            session.execute(select(Message.wamid, Message.status).where(Message.wamid.in_(wamids)))
            .tuples()
            .all()
        )
        applied = session.scalars(select(StatusEvent.applied)).all()
    # Both batches went through whole: no change failed or had to wait for another turn.
    assert changes == []
    assert states == [EventState.DONE.value] * (2 * MESSAGES)
    assert statuses == dict.fromkeys(wamids, "read")
    assert applied == [True] * (2 * MESSAGES)
