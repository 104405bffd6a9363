"""Every stored payload applies through the processors, and applying it again changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from puente.channels.models import ChannelSync
from puente.config import Settings
from puente.contacts.models import Contact, ContactIdentity
from puente.conversations.models import Conversation, Media, Message, StatusEvent
from puente.db.session import Database
from puente.runtime import Runtime
from tests.conformance.replay import all_payload_names, coexistence_channel, replay
from tests.factories import make_workspace


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as session:
        coexistence_channel(session, make_workspace(session))
    return runtime


def _snapshot(db: Database) -> dict[str, Any]:
    with db.read(unscoped="test") as session:
        counts = {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Contact, ContactIdentity, Conversation, Message, StatusEvent, Media)
        }
        messages = session.execute(
            select(
                Message.wamid, Message.type, Message.text, Message.status, Message.edited
            ).order_by(Message.wamid)
        ).all()
        conversations = session.execute(
            select(Conversation.id, Conversation.unread_count, Conversation.status)
        ).all()
        sync = session.execute(select(ChannelSync.history_state, ChannelSync.history_chunks)).all()
        return {"counts": counts, "messages": messages, "conv": conversations, "sync": sync}


def test_every_payload_applies_and_is_idempotent(runtime: Runtime, db: Database) -> None:
    names = [n for n in all_payload_names() if not n.startswith("account_")]
    replay(runtime, *names)
    first = _snapshot(db)
    assert first["counts"]["Message"] > 30
    replay(runtime, *names)
    assert _snapshot(db) == first
