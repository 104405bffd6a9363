"""Building conversations and messages of every kind for inbox tests."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message

_seq = itertools.count(1)


def add_contact(
    session: Session, workspace_id: int, name: str, wa_id: str | None = None
) -> Contact:
    n = next(_seq)
    wa = wa_id or f"52155{n:08d}"
    contact = Contact(
        workspace_id=workspace_id,
        wa_id=wa,
        phone_e164="+" + wa,
        profile_name=name,
        sources=["whatsapp"],
        custom_fields={},
    )
    session.add(contact)
    session.flush()
    return contact


def add_conversation(
    session: Session,
    workspace_id: int,
    channel_id: int,
    name: str,
    *,
    at: dt.datetime,
    assignee_id: int | None = None,
    status: str = "open",
    window_open: bool = True,
    labels: list[str] | None = None,
    unread: int = 0,
    preview: str = "hola",
    source: str = "customer",
    team_id: int | None = None,
) -> Conversation:
    contact = add_contact(session, workspace_id, name)
    conversation = Conversation(
        workspace_id=workspace_id,
        channel_id=channel_id,
        contact_id=contact.id,
        status=status,
        assignee_id=assignee_id,
        team_id=team_id,
        last_activity_at=at,
        last_inbound_at=at,
        waiting_since=at if source == "customer" else None,
        window_expires_at=at + dt.timedelta(hours=24)
        if window_open
        else at - dt.timedelta(hours=1),
        labels=labels or [],
        unread_count=unread,
        last_message_preview=preview,
        last_message_source=source,
    )
    session.add(conversation)
    session.flush()
    return conversation


def add_message(
    session: Session,
    conversation: Conversation,
    *,
    at: dt.datetime,
    type_: str = "text",
    content: dict[str, Any] | None = None,
    text: str | None = None,
    direction: str = "inbound",
    source: str = "customer",
    status: str = "received",
    **extra: Any,
) -> Message:
    n = next(_seq)
    message = Message(
        workspace_id=conversation.workspace_id,
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        wamid=extra.pop("wamid", f"wamid.INBOX{n:08d}"),
        direction=direction,
        source=source,
        type=type_,
        content=content if content is not None else {"body": text or ""},
        text=text,
        timestamp=at,
        status=status,
        history=extra.pop("history", []),
        **extra,
    )
    session.add(message)
    session.flush()
    return message
