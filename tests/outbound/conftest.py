"""Fixtures for the outbox: Puente's Meta sandbox as the Graph API, a runtime pointed at it,
a number (known to both) with customers whose service window is open in Puente, and a running
outbox worker.

The sandbox has no webhook callback here, so the statuses it emits after a send stay with it;
it reports a closed window the way Meta does, in a failed status, unless a test asks for the
refusal in the answer (policy_errors_sync)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.contacts.models import ContactSource
from puente.contacts.service import get_or_create_contact
from puente.conversations.models import Conversation, Message
from puente.conversations.service import get_or_create_conversation
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.models import OutboxItem
from puente.outbound.outbox.lanes import RetryPolicy
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from tests.factories import make_channel, make_workspace
from tests.graph_sandbox import TOKEN, GraphSandbox, start_graph_sandbox

FAST_RETRIES = RetryPolicy(
    base_seconds=0.05, max_seconds=0.5, max_attempts=5, pair_seconds=0.3, ambiguous_seconds=0.3
)


@pytest.fixture
def graph(live_server_factory: Any) -> GraphSandbox:
    return start_graph_sandbox(live_server_factory)


@pytest.fixture
def runtime(settings: Settings, db: Database, graph: GraphSandbox) -> Runtime:
    return Runtime.from_settings(settings.model_copy(update={"graph_base_url": graph.url}), db)


@dataclass
class Shop:
    workspace_id: int
    channel_id: int
    conversations: list[int]  # open service windows, one per customer
    wa_ids: list[str]


def make_shop(
    runtime: Runtime,
    *,
    customers: int = 2,
    mode: ChannelMode = ChannelMode.CLOUD_API,
    window_open: bool = True,
) -> Shop:
    # The sandbox the runtime sends to learns the number first, with Meta's throughput for it.
    number = GraphSandbox(runtime.settings.graph_base_url).add_number(
        coexistence=mode is ChannelMode.COEXISTENCE
    )
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        channel = make_channel(
            session,
            ws,
            mode=mode,
            phone_number_id=number["id"],
            waba_id=number["waba_id"],
            display_phone_number=number["display_phone_number"],
        )
        channel.access_token_encrypted = runtime.secrets.encrypt(TOKEN)
        conversations, wa_ids = [], []
        for i in range(customers):
            wa_id = f"5215512{channel.id:03d}{i:03d}"
            contact, _ = get_or_create_contact(
                session, workspace_id=ws.id, wa_id=wa_id, source=ContactSource.WHATSAPP.value
            )
            conversation, _ = get_or_create_conversation(
                session, workspace_id=ws.id, channel_id=channel.id, contact_id=contact.id
            )
            if window_open:
                conversation.last_inbound_at = utcnow() - dt.timedelta(hours=1)
                conversation.window_expires_at = utcnow() + dt.timedelta(hours=23)
            conversations.append(conversation.id)
            wa_ids.append(wa_id)
        session.flush()
        return Shop(ws.id, channel.id, conversations, wa_ids)


@pytest.fixture
def shop(runtime: Runtime) -> Shop:
    return make_shop(runtime)


@pytest.fixture
def start_worker(runtime: Runtime) -> Iterator[Callable[..., OutboxWorker]]:
    started: list[OutboxWorker] = []

    def start(**kwargs: Any) -> OutboxWorker:
        kwargs.setdefault("poll_seconds", 0.05)
        kwargs.setdefault("policy", FAST_RETRIES)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("stop_grace", 5.0)
        worker = OutboxWorker(runtime, **kwargs)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        worker.join()


def message_row(db: Database, message_id: int) -> Message:
    with db.read(unscoped="test") as session:
        message = session.get(Message, message_id)
        assert message is not None
        session.expunge(message)
        return message


def item_of(db: Database, message_id: int) -> OutboxItem:
    with db.read(unscoped="test") as session:
        item = session.scalar(select(OutboxItem).where(OutboxItem.message_id == message_id))
        assert item is not None
        session.expunge(item)
        return item


def set_channel(db: Database, channel_id: int, **values: Any) -> None:
    with db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        for key, value in values.items():
            setattr(channel, key, value)


def close_window(db: Database, conversation_id: int) -> None:
    with db.unit_of_work(unscoped="test") as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.window_expires_at = utcnow() - dt.timedelta(hours=2)
