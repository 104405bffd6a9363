"""Notifications of new messages, through real webhooks from the sandbox: a customer
writing in a conversation assigned to an agent notifies that agent once per conversation
until read; the owner's phone, imported history and unassigned chats notify nobody."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from puente.accounts.gate import load_member_actor
from puente.accounts.models import User, Workspace
from puente.channels.models import Channel
from puente.conversations.models import Conversation, Message, Notification
from puente.conversations.notifications import do_read_notification, do_set_notification_prefs
from puente.events import NotificationCreated
from puente.sandbox.seed import DEMO_NUMBER
from tests.conversations.conftest import LUCIA, World
from tests.factories import make_contact, make_conversation, make_user


def _agent_and_conversation(world: World, wa_id: str = LUCIA) -> tuple[int, int]:
    """Ana, and the customer's conversation assigned to her."""
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        workspace = session.scalars(select(Workspace)).one()
        channel = session.scalars(select(Channel)).one()
        ana = make_user(session, workspace, name="Ana Pérez")
        contact = make_contact(session, workspace, wa_id=wa_id)
        conversation = make_conversation(session, channel, contact, assignee_id=ana.id)
        return ana.id, conversation.id


def _notifications(world: World, user_id: int) -> list[tuple[str, int | None, str, int, bool]]:
    with world.runtime.db.read(unscoped="test") as session:
        rows = session.scalars(
            select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
        ).all()
        return [
            (n.kind, n.conversation_id, n.text, n.message_count, n.read_at is None) for n in rows
        ]


def _customer_writes(world: World, text: str, sender: str = LUCIA) -> None:
    res = world.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound", json={"from": sender, "type": "text", "text": text}
    )
    assert res.status_code == 201, res.text
    world.process()


def _created_for(world: World, user_id: int) -> list[NotificationCreated]:
    return [
        e for e in world.events if isinstance(e, NotificationCreated) and e.to_user_id == user_id
    ]


def test_messages_in_my_conversation_collapse_into_one_unread_notification(
    world: World,
) -> None:
    ana_id, conversation_id = _agent_and_conversation(world)

    _customer_writes(world, "Hola, ¿tienen envío?")
    _customer_writes(world, "¿Y a Medellín?")
    assert _notifications(world, ana_id) == [
        ("message", conversation_id, "¿Y a Medellín?", 2, True)
    ]
    # Each message was pushed live, with the unread count the bell shows.
    pushed = _created_for(world, ana_id)
    assert [(p.notification_kind, p.unread, p.browser) for p in pushed] == [
        ("message", 1, True),
        ("message", 1, True),
    ]

    # Once read, the next message starts a new notification.
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        ana = session.get(User, ana_id)
        assert ana is not None
        actor = load_member_actor(session, ana, session.scalars(select(Workspace.id)).one())
        assert actor is not None
        first = session.scalars(select(Notification.id)).one()
        assert do_read_notification(session, actor, first)
    _customer_writes(world, "¿Siguen ahí?")
    rows = _notifications(world, ana_id)
    assert [(kind, text, count, unread) for kind, _, text, count, unread in rows] == [
        ("message", "¿Y a Medellín?", 2, False),
        ("message", "¿Siguen ahí?", 1, True),
    ]


def test_the_owners_phone_and_unassigned_chats_notify_nobody(world: World) -> None:
    ana_id, conversation_id = _agent_and_conversation(world)
    res = world.control.post(
        f"/numbers/{DEMO_NUMBER}/owner/messages",
        json={"to": LUCIA, "type": "text", "text": "Te escribo desde el teléfono"},
    )
    assert res.status_code == 201, res.text
    world.process()
    # A stranger writes too: their new conversation is nobody's yet.
    _customer_writes(world, "Hola", sender="573009998877")
    with world.runtime.db.read(unscoped="test") as session:
        echoed = session.scalars(
            select(Message.source).where(Message.conversation_id == conversation_id)
        ).all()
    assert echoed == ["business_app"]
    assert _notifications(world, ana_id) == []
    with world.runtime.db.read(unscoped="test") as session:
        assert session.scalars(select(Notification)).all() == []
    assert _created_for(world, ana_id) == []


def test_an_agent_who_turned_message_notifications_off_gets_none(world: World) -> None:
    ana_id, _ = _agent_and_conversation(world)
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        ana = session.get(User, ana_id)
        assert ana is not None
        # Browser only: nothing in the list, but still a live push for the system popup.
        do_set_notification_prefs(session, ana, {"message.browser"})
    _customer_writes(world, "Hola")
    assert _notifications(world, ana_id) == []
    pushed = _created_for(world, ana_id)
    assert [(p.in_app, p.browser, p.notification_id) for p in pushed] == [(False, True, None)]

    with world.runtime.db.unit_of_work(unscoped="test") as session:
        ana = session.get(User, ana_id)
        assert ana is not None
        do_set_notification_prefs(session, ana, set())
    _customer_writes(world, "¿Hola?")
    assert len(_created_for(world, ana_id)) == 1


def _wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("the sandbox never sent what was expected")


def test_imported_history_notifies_nobody_even_in_assigned_chats(world: World) -> None:
    res = world.control.post(
        f"/numbers/{DEMO_NUMBER}/history", json={"chats": 3, "messages": 8, "seed": 4}
    )
    assert res.status_code == 200, res.text
    res = world.graph.post(
        f"/{DEMO_NUMBER}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
    )
    assert res.status_code == 200, res.text
    history = _wait_for(lambda: world.control.get("/webhooks", params={"field": "history"}).json())
    # The chats being imported already exist and are Ana's before their history arrives.
    wa_ids = {
        t["id"]
        for update in history
        for t in update["value"].get("history", [{}])[0].get("threads", [])
    }
    assert wa_ids, history[0]
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        workspace = session.scalars(select(Workspace)).one()
        channel = session.scalars(select(Channel)).one()
        ana = make_user(session, workspace, name="Ana Pérez")
        ana_id = ana.id
        for wa_id in wa_ids:
            make_conversation(
                session, channel, make_contact(session, workspace, wa_id=wa_id), assignee_id=ana_id
            )
    world.process()
    with world.runtime.db.read(unscoped="test") as session:
        imported = session.scalars(
            select(Message.source)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.assignee_id == ana_id)
        ).all()
    assert imported and set(imported) == {"history"}
    assert _notifications(world, ana_id) == []
    assert _created_for(world, ana_id) == []
