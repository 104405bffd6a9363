"""A processing transaction is bounded by bytes as well as by count, so a large history
chunk never shares (and lengthens) the transaction of ordinary message webhooks."""

from __future__ import annotations

from sqlalchemy import func, select

from puente.channels.models import ChannelMode
from puente.config import Settings
from puente.conversations.models import Message
from puente.db.session import Database
from puente.ingest.models import EventState, WebhookEvent
from puente.ingest.process import BATCH_BYTES, do_process_new_events
from puente.ingest.store import do_store_webhooks
from puente.runtime import Runtime
from tests.factories import make_channel, make_workspace
from tests.ingest.helpers import PHONE_NUMBER_ID, dumps, envelope, messages_change, text_message


def _states(db: Database) -> list[str]:
    with db.read(unscoped="test") as session:
        return list(session.scalars(select(WebhookEvent.state).order_by(WebhookEvent.id)))


def test_a_big_event_gets_a_transaction_of_its_own(settings: Settings, db: Database) -> None:
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID, mode=ChannelMode.CLOUD_API)
    small_1 = dumps(envelope(messages_change([text_message("wamid.s1")])))
    # About 300 KB of messages in one webhook, as a history chunk or a burst can be.
    big_messages = [text_message(f"wamid.b{i}", "x" * 1000) for i in range(300)]
    big = dumps(envelope(messages_change(big_messages)))
    small_2 = dumps(envelope(messages_change([text_message("wamid.s2")])))
    assert len(big) > BATCH_BYTES
    with db.unit_of_work(unscoped="test") as session:
        do_store_webhooks(session, [small_1, big, small_2])

    processed = []
    for _ in range(3):
        with db.unit_of_work(unscoped="test") as session:
            processed.append(do_process_new_events(session, runtime, limit=50))
    # The small event first, then the big one alone, then the other small one.
    assert processed == [1, 1, 1]
    assert _states(db) == [EventState.DONE.value] * 3
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 302


def test_small_events_still_share_a_transaction(settings: Settings, db: Database) -> None:
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID)
    bodies = [dumps(envelope(messages_change([text_message(f"wamid.{i}")]))) for i in range(20)]
    with db.unit_of_work(unscoped="test") as session:
        do_store_webhooks(session, bodies)
    with db.unit_of_work(unscoped="test") as session:
        assert do_process_new_events(session, runtime, limit=50) == 20
    assert _states(db) == [EventState.DONE.value] * 20
