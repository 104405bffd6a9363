"""Statuses: kept once each, applied forward only, in any order, reconciled with the outbox."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from puente.config import Settings
from puente.conversations.models import Message, StatusEvent
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.models import OutboxItem
from puente.runtime import Runtime
from tests.conformance.replay import message, replay, setup_runtime

W = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz"
SENT = W + "SENT01"
ALL = ["status_sent", "status_delivered", "status_read", "status_played"]


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    runtime = setup_runtime(settings, db)
    # An agent's reply Meta accepted: it exists before its statuses arrive.
    replay(runtime, "messages_text")
    return runtime


def _set_wamid(db: Database, wamid: str | None, status: str = "sent") -> int:
    with db.unit_of_work(unscoped="test") as session:
        inbound = session.scalars(select(Message)).first()
        assert inbound is not None
        reply = Message(
            workspace_id=inbound.workspace_id,
            channel_id=inbound.channel_id,
            conversation_id=inbound.conversation_id,
            contact_id=inbound.contact_id,
            wamid=wamid,
            direction="outbound",
            source="agent",
            type="text",
            content={"body": "Sí, la tenemos"},
            text="Sí, la tenemos",
            timestamp=utcnow(),
            status=status,
            history=[],
        )
        session.add(reply)
        session.flush()
        return reply.id


@pytest.mark.parametrize("order", list(itertools.permutations(ALL)))
def test_any_order_ends_at_the_highest_status(
    runtime: Runtime, db: Database, order: tuple[str, ...]
) -> None:
    _set_wamid(db, SENT)
    replay(runtime, *order)
    msg = message(db, SENT)
    assert msg.status == "played"
    assert msg.pricing is not None and msg.pricing["category"] == "marketing"


def test_late_delivered_never_downgrades_read(runtime: Runtime, db: Database) -> None:
    _set_wamid(db, SENT)
    replay(runtime, "status_read", "status_delivered", "status_delivered")
    msg = message(db, SENT)
    assert msg.status == "read"
    assert msg.status_at == dt.datetime.fromtimestamp(1739321024 + 3, dt.UTC)


def test_failed_records_meta_error(runtime: Runtime, db: Database) -> None:
    _set_wamid(db, SENT)
    replay(runtime, "status_sent", "status_failed")
    msg = message(db, SENT)
    assert msg.status == "failed"
    assert msg.error is not None and msg.error["code"] == 131047


def test_status_before_message_waits_and_applies_when_it_appears(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "status_delivered", "status_delivered")
    with db.read(unscoped="test") as session:
        events = list(session.execute(select(StatusEvent.status, StatusEvent.applied)).tuples())
    assert events == [("delivered", False)]
    # The echo path stores outbound messages the same way the outbox does.
    from puente.conversations.statuses import apply_pending_statuses

    _set_wamid(db, SENT)
    with db.unit_of_work(unscoped="test") as session:
        apply_pending_statuses(session, [SENT])
    assert message(db, SENT).status == "delivered"
    with db.read(unscoped="test") as session:
        assert session.scalars(select(StatusEvent.applied)).all() == [True]


def test_outbox_callback_recovers_a_send_whose_commit_was_lost(
    runtime: Runtime, db: Database
) -> None:
    message_id = _set_wamid(db, None, status="sending")
    with db.unit_of_work(unscoped="test") as session:
        reply = session.get(Message, message_id)
        assert reply is not None
        item = OutboxItem(
            workspace_id=reply.workspace_id,
            channel_id=reply.channel_id,
            message_id=reply.id,
            conversation_id=reply.conversation_id,
            state="sending",
            payload={},
        )
        session.add(item)
        session.flush()
        assert item.id == 1  # the fixture's biz_opaque_callback_data is "outbox:1"
    replay(runtime, "status_sent")
    msg = message(db, SENT)
    assert (msg.id, msg.status) == (message_id, "sent")
    with db.read(unscoped="test") as session:
        outbox = session.scalars(select(OutboxItem)).one()
        assert outbox.state == "sent"
