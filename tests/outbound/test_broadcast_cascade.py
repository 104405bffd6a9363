"""Deleting a contact, a number or a workspace takes their queued broadcast messages with
them. Outbox items, messages and recipient rows keep only the foreign keys that are not
implied by another (docs/decisions/0006): these check that the cascades still reach every
row through the ones kept, on both engines."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactTag, Tag
from puente.conversations.models import Conversation, Message
from puente.db.session import Database
from puente.outbound.broadcasts.service import do_create_broadcast
from puente.outbound.models import Broadcast, BroadcastRecipient, MessageTemplate, OutboxItem
from tests.factories import make_channel, make_contact, make_workspace


@dataclass
class Planned:
    workspace_id: int
    channel_id: int
    other_channel_id: int
    contact_ids: list[int]
    broadcast_id: int


def _plan(session: Session) -> Planned:
    """A workspace with two numbers, three tagged contacts, and a broadcast queued to them
    on the first number; the contacts also have a conversation with a message on the
    second number."""
    workspace = make_workspace(session)
    channel = make_channel(session, workspace)
    other = make_channel(session, workspace)
    session.add(
        MessageTemplate(
            workspace_id=workspace.id,
            waba_id=channel.waba_id,
            name="aviso",
            language="es",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Hola {{1}}"}],
        )
    )
    tag = Tag(workspace_id=workspace.id, name="clientes")
    session.add(tag)
    session.flush()
    contacts = [make_contact(session, workspace, name=f"Cliente {i}") for i in range(3)]
    for contact in contacts:
        session.add(ContactTag(workspace_id=workspace.id, contact_id=contact.id, tag_id=tag.id))
    session.flush()
    broadcast = do_create_broadcast(
        session,
        workspace_id=workspace.id,
        channel_id=channel.id,
        name="aviso",
        template_name="aviso",
        language="es",
        variables={"body.1": "{first_name|cliente}"},
        audience={"kind": "tags", "tags": ["clientes"]},
    )
    second = do_create_broadcast(
        session,
        workspace_id=workspace.id,
        channel_id=other.id,
        name="aviso 2",
        template_name="aviso",
        language="es",
        variables={"body.1": "{first_name|cliente}"},
        audience={"kind": "tags", "tags": ["clientes"]},
    )
    assert broadcast.id != second.id
    return Planned(workspace.id, channel.id, other.id, [c.id for c in contacts], broadcast.id)


def _count(session: Session, model: type, *where: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def planned(db: Database) -> tuple[Planned, Planned]:
    with db.unit_of_work(unscoped="test") as session:
        return _plan(session), _plan(session)


def test_the_broadcasts_are_queued(db: Database, planned: tuple[Planned, Planned]) -> None:
    mine, _other = planned
    with db.read(unscoped="test") as session:
        assert _count(session, OutboxItem, OutboxItem.workspace_id == mine.workspace_id) == 6
        assert _count(session, Message, Message.workspace_id == mine.workspace_id) == 6
        assert _count(session, Conversation, Conversation.workspace_id == mine.workspace_id) == 6
        queued = session.scalars(
            select(BroadcastRecipient.message_id).where(
                BroadcastRecipient.broadcast_id == mine.broadcast_id
            )
        ).all()
        assert len(queued) == 3 and None not in queued


def test_deleting_a_contact_removes_its_queued_messages(
    db: Database, planned: tuple[Planned, Planned]
) -> None:
    mine, other = planned
    gone = mine.contact_ids[0]
    with db.unit_of_work(unscoped="test") as session:
        session.execute(delete(Contact).where(Contact.id == gone))
    with db.read(unscoped="test") as session:
        assert _count(session, Conversation, Conversation.contact_id == gone) == 0
        assert _count(session, Message, Message.contact_id == gone) == 0
        items = session.scalars(
            select(OutboxItem.message_id).where(OutboxItem.workspace_id == mine.workspace_id)
        ).all()
        assert len(items) == 4
        assert _count(session, Message, Message.id.in_(items)) == 4
        # The recipient row stays in the broadcast's report, without contact or message.
        rows = session.execute(
            select(BroadcastRecipient.contact_id, BroadcastRecipient.message_id).where(
                BroadcastRecipient.broadcast_id == mine.broadcast_id
            )
        ).all()
        assert len(rows) == 3
        assert sorted(tuple(r) == (None, None) for r in rows) == [False, False, True]
        assert _count(session, OutboxItem, OutboxItem.workspace_id == other.workspace_id) == 6


def test_deleting_a_number_removes_its_conversations_queue_and_broadcasts(
    db: Database, planned: tuple[Planned, Planned]
) -> None:
    mine, other = planned
    with db.unit_of_work(unscoped="test") as session:
        session.execute(delete(Channel).where(Channel.id == mine.channel_id))
    with db.read(unscoped="test") as session:
        for model in (OutboxItem, Message, Conversation):
            assert _count(session, model, model.channel_id == mine.channel_id) == 0
            # The workspace's other number keeps its own.
            assert _count(session, model, model.channel_id == mine.other_channel_id) == 3
        assert _count(session, Broadcast, Broadcast.id == mine.broadcast_id) == 0
        assert (
            _count(
                session, BroadcastRecipient, BroadcastRecipient.broadcast_id == mine.broadcast_id
            )
            == 0
        )
        assert _count(session, OutboxItem, OutboxItem.workspace_id == other.workspace_id) == 6


def test_deleting_a_workspace_removes_everything_it_queued(
    db: Database, planned: tuple[Planned, Planned]
) -> None:
    mine, other = planned
    with db.unit_of_work(unscoped="test") as session:
        session.execute(delete(Workspace).where(Workspace.id == mine.workspace_id))
    with db.read(unscoped="test") as session:
        for model in (OutboxItem, Message, Conversation, BroadcastRecipient):
            assert _count(session, model, model.workspace_id == mine.workspace_id) == 0
            assert _count(session, model, model.workspace_id == other.workspace_id) == 6
