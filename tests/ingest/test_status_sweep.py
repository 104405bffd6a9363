"""A status stored while its message's wamid was still uncommitted is settled later."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from puente.conversations.models import Message, StatusEvent
from puente.conversations.statuses import do_sweep_pending_statuses
from puente.db.base import utcnow
from puente.db.session import Database
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_workspace,
)


def test_a_waiting_status_is_applied_once_the_message_has_its_wamid(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        channel = make_channel(session, ws)
        contact = make_contact(session, ws)
        conversation = make_conversation(session, channel, contact)
        message = make_message(
            session,
            conversation,
            timestamp=utcnow(),
            direction="outbound",
            source="agent",
            status="sending",
        )
        message.wamid = None
        # The status webhook was processed before the outbox committed the wamid.
        session.add(
            StatusEvent(
                workspace_id=ws.id,
                wamid="wamid.raced",
                status="read",
                timestamp=utcnow() - dt.timedelta(seconds=1),
                applied=False,
            )
        )
    with db.unit_of_work(unscoped="test") as session:
        row = session.get(Message, message.id)
        assert row is not None
        row.wamid = "wamid.raced"
        row.status = "sent"
    with db.unit_of_work(unscoped="test") as session:
        assert do_sweep_pending_statuses(session) == 1
    with db.read(unscoped="test") as session:
        assert session.scalar(select(Message.status).where(Message.id == message.id)) == "read"
        assert session.scalar(select(StatusEvent.applied)) is True
    with db.unit_of_work(unscoped="test") as session:
        assert do_sweep_pending_statuses(session) == 0
