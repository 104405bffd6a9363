"""Read-side queries for conversations and their messages, as API clients page through them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from puente.conversations.models import Conversation, Message
from puente.errors import NotFound


@dataclass(frozen=True)
class ConversationFilter:
    status: str | None = None
    channel_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    contact_id: int | None = None
    label: str | None = None
    updated_since: dt.datetime | None = None


# A position in the inbox order: (last_activity_at, id). Conversations that never had
# activity sort last.
InboxPosition = tuple[dt.datetime | None, int]
# A position in a conversation's history: (Meta's timestamp, id).
MessagePosition = tuple[dt.datetime, int]


def access_workspace_conversation(
    session: Session, workspace_id: int, conversation_id: int
) -> Conversation:
    conversation = session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.workspace_id == workspace_id
        )
    )
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id} in this workspace")
    return conversation


def _has_label(session: Session, label: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Conversation.labels.op("@>")(cast(literal(json.dumps([label])), JSONB))
    each = func.json_each(Conversation.labels).table_valued("value")
    return exists().select_from(each).where(each.c.value == label)


def _after_inbox_position(after: InboxPosition) -> ColumnElement[bool]:
    activity, conversation_id = after
    if activity is None:
        return and_(Conversation.last_activity_at.is_(None), Conversation.id < conversation_id)
    return or_(
        Conversation.last_activity_at < activity,
        and_(Conversation.last_activity_at == activity, Conversation.id < conversation_id),
        Conversation.last_activity_at.is_(None),
    )


def list_conversations(
    session: Session,
    workspace_id: int,
    filters: ConversationFilter,
    *,
    after: InboxPosition | None = None,
    limit: int = 50,
) -> list[Conversation]:
    """Most recent activity first, in one query."""
    query = select(Conversation).where(Conversation.workspace_id == workspace_id)
    if filters.status:
        query = query.where(Conversation.status == filters.status)
    if filters.channel_id is not None:
        query = query.where(Conversation.channel_id == filters.channel_id)
    if filters.unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    elif filters.assignee_id is not None:
        query = query.where(Conversation.assignee_id == filters.assignee_id)
    if filters.contact_id is not None:
        query = query.where(Conversation.contact_id == filters.contact_id)
    if filters.label:
        query = query.where(_has_label(session, filters.label))
    if filters.updated_since is not None:
        query = query.where(Conversation.updated_at >= filters.updated_since)
    if after is not None:
        query = query.where(_after_inbox_position(after))
    query = query.order_by(
        Conversation.last_activity_at.desc().nulls_last(), Conversation.id.desc()
    ).limit(limit)
    return list(session.scalars(query))


def message_position(
    session: Session, conversation_id: int, message_id: int
) -> MessagePosition | None:
    row = session.execute(
        select(Message.timestamp, Message.id).where(
            Message.id == message_id, Message.conversation_id == conversation_id
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def list_messages(
    session: Session,
    conversation: Conversation,
    *,
    before: MessagePosition | dt.datetime | None = None,
    limit: int = 50,
) -> list[Message]:
    """Newest first. `before` is a position (exclusive) or a time (messages strictly older)."""
    query = select(Message).where(
        Message.conversation_id == conversation.id,
        Message.workspace_id == conversation.workspace_id,
    )
    if isinstance(before, tuple):
        at, message_id = before
        query = query.where(
            or_(Message.timestamp < at, and_(Message.timestamp == at, Message.id < message_id))
        )
    elif before is not None:
        query = query.where(Message.timestamp < before)
    query = query.order_by(Message.timestamp.desc(), Message.id.desc()).limit(limit)
    return list(session.scalars(query))
