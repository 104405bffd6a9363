"""REST API for conversations and the messages in them (reading; sending lives elsewhere)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query

from puente.api.common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
    error_responses,
    invalid_field,
)
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.conversations import queries
from puente.conversations.models import ConversationStatus, Message
from puente.conversations.schemas import ConversationOut, MessageOut

router = APIRouter(prefix="/conversations", tags=["conversations"])

ReadCaller = Annotated[ApiCaller, scoped("conversations:read")]
MessagesCaller = Annotated[ApiCaller, scoped("messages:read")]
ConversationId = Annotated[int, Path(ge=1, le=2**62, description="the conversation's id")]
DbId = Annotated[int, Query(ge=1, le=2**62)]


def _as_utc(value: dt.datetime) -> dt.datetime:
    # A time without an offset is read as UTC, the only zone the API speaks.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _inbox_cursor(cursor: str) -> queries.InboxPosition:
    activity, conversation_id = decode_cursor(cursor, 2)
    try:
        at = dt.datetime.fromisoformat(activity) if activity is not None else None
        return (_as_utc(at) if at else None, int(conversation_id))
    except (TypeError, ValueError):
        raise invalid_field("cursor", "not a cursor this API returned") from None


@router.get(
    "",
    response_model=Page[ConversationOut],
    summary="List conversations, most recent activity first",
    responses=error_responses(403),
)
def list_conversations(
    caller: ReadCaller,
    session: SessionDep,
    status: ConversationStatus | None = None,
    channel_id: DbId | None = None,
    assignee_id: Annotated[
        str | None,
        Query(pattern=r"^([1-9][0-9]{0,17}|unassigned)$", description="a user id, or unassigned"),
    ] = None,
    contact_id: DbId | None = None,
    label: Annotated[str | None, Query(max_length=100)] = None,
    updated_since: Annotated[
        dt.datetime | None, Query(description="ISO 8601; without an offset it is UTC")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Page[ConversationOut]:
    filters = queries.ConversationFilter(
        status=status.value if status else None,
        channel_id=channel_id,
        assignee_id=int(assignee_id) if assignee_id and assignee_id.isdigit() else None,
        unassigned=assignee_id == "unassigned",
        contact_id=contact_id,
        label=label,
        updated_since=_as_utc(updated_since) if updated_since else None,
    )
    rows = queries.list_conversations(
        session,
        caller.workspace_id,
        filters,
        after=_inbox_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        activity = last.last_activity_at.isoformat() if last.last_activity_at else None
        next_cursor = encode_cursor([activity, last.id])
    return Page[ConversationOut](
        items=[ConversationOut.of(c) for c in page], next_cursor=next_cursor
    )


@router.get(
    "/{conversation_id}",
    response_model=ConversationOut,
    summary="Get a conversation",
    responses=error_responses(403, 404),
)
def get_conversation(
    conversation_id: ConversationId, caller: ReadCaller, session: SessionDep
) -> ConversationOut:
    return ConversationOut.of(
        queries.access_workspace_conversation(session, caller.workspace_id, conversation_id)
    )


def _before(
    session: SessionDep, conversation_id: int, before: str
) -> queries.MessagePosition | dt.datetime:
    if before.isdigit():
        position = queries.message_position(session, conversation_id, int(before))
        if position is None:
            raise invalid_field("before", f"no message {before} in this conversation")
        return position
    try:
        return _as_utc(dt.datetime.fromisoformat(before))
    except ValueError:
        raise invalid_field("before", "must be a message id or an ISO 8601 time") from None


@router.get(
    "/{conversation_id}/messages",
    response_model=Page[MessageOut],
    summary="List a conversation's messages, newest first",
    description="Page back through history by passing `next_cursor` as `before`.",
    responses=error_responses(403, 404),
)
def list_messages(
    conversation_id: ConversationId,
    caller: MessagesCaller,
    session: SessionDep,
    before: Annotated[
        str | None,
        Query(
            max_length=64,
            description="a message id (older than that message) or an ISO 8601 time",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Page[MessageOut]:
    conversation = queries.access_workspace_conversation(
        session, caller.workspace_id, conversation_id
    )
    rows: list[Message] = queries.list_messages(
        session,
        conversation,
        before=_before(session, conversation.id, before) if before else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = str(page[-1].id) if len(rows) > limit else None
    return Page[MessageOut](items=[MessageOut.of(m) for m in page], next_cursor=next_cursor)
