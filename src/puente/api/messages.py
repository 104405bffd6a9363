"""REST API: send a message, follow its state, and look after the outbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from puente.api.common import MAX_PAGE_SIZE, error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.conversations.models import MessageSource
from puente.conversations.schemas import MessageOut
from puente.outbound.models import OutboxItem, OutboxState
from puente.outbound.outbox.schemas import OutboxItemOut, SendMessageIn
from puente.outbound.outbox.service import (
    access_message,
    do_cancel,
    do_queue_message,
    do_resend,
)

router = APIRouter(tags=["messages"])

SendCaller = Annotated[ApiCaller, scoped("messages:send")]
ReadCaller = Annotated[ApiCaller, scoped("messages:read")]
MessageId = Annotated[int, Path(ge=1, le=2**62, description="the message's id")]
ItemId = Annotated[int, Path(ge=1, le=2**62, description="the outbox item's id")]


@router.post(
    "/messages",
    status_code=202,
    response_model=MessageOut,
    summary="Send a message (queued in the outbox; follow it with GET /messages/{id})",
    responses=error_responses(403, 404, 409),
)
def send_message(body: SendMessageIn, caller: SendCaller, session: SessionDep) -> MessageOut:
    """Refusals: unknown contact or conversation → 404; closed 24 h window for anything
    but a template → 422 `window_closed`; offboarded or disconnected number → 409
    `channel_paused`; a body Meta would refuse → 422 naming the field."""
    message = do_queue_message(
        session,
        workspace_id=caller.workspace_id,
        message_type=body.type,
        content=body.content(),
        conversation_id=body.conversation_id,
        contact_id=body.contact_id,
        to=body.to,
        channel_id=body.channel_id,
        reply_to=body.reply_to,
        source=MessageSource.API,
        actor=caller.actor,
    )
    return MessageOut.of(message)


@router.get(
    "/messages/{message_id}",
    response_model=MessageOut,
    summary="A message and its current state",
    responses=error_responses(403, 404),
)
def get_message(message_id: MessageId, caller: ReadCaller, session: SessionDep) -> MessageOut:
    return MessageOut.of(access_message(session, caller.workspace_id, message_id))


@router.post(
    "/messages/{message_id}/cancel",
    response_model=MessageOut,
    summary="Cancel a message still queued in the outbox",
    responses=error_responses(403, 404, 409),
)
def cancel_message(message_id: MessageId, caller: SendCaller, session: SessionDep) -> MessageOut:
    return MessageOut.of(
        do_cancel(
            session, workspace_id=caller.workspace_id, message_id=message_id, actor=caller.actor
        )
    )


@router.get(
    "/outbox",
    response_model=list[OutboxItemOut],
    summary="Outbox items, newest first (filter by state, e.g. failed or unknown)",
    responses=error_responses(403),
)
def list_outbox(
    caller: ReadCaller,
    session: SessionDep,
    state: Annotated[
        str | None,
        Query(pattern=r"^(queued|sending|sent|failed|cancelled|unknown)$"),
    ] = None,
    channel_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> list[OutboxItemOut]:
    query = select(OutboxItem).where(OutboxItem.workspace_id == caller.workspace_id)
    if channel_id is not None:
        query = query.where(OutboxItem.channel_id == channel_id)
    if state is not None:
        stored = OutboxState.SENDING.value if state == "unknown" else state
        query = query.where(OutboxItem.state == stored)
    query = query.order_by(OutboxItem.id.desc())
    if state not in ("unknown", OutboxState.SENDING.value):
        query = query.limit(limit)
    items = [OutboxItemOut.of(i) for i in session.scalars(query)]
    if state is not None:
        # "unknown" and "sending" share a stored state; the age of the attempt splits them.
        items = [i for i in items if i.state == state]
    return items[:limit]


@router.post(
    "/outbox/{item_id}/resend",
    response_model=OutboxItemOut,
    summary="Queue again a failed item, or one whose sending is unknown",
    responses=error_responses(403, 404, 409),
)
def resend(item_id: ItemId, caller: SendCaller, session: SessionDep) -> OutboxItemOut:
    """For an "unknown" item, first check on the phone that the customer did not get it:
    Puente cannot know whether Meta received the interrupted request."""
    return OutboxItemOut.of(
        do_resend(session, workspace_id=caller.workspace_id, item_id=item_id, actor=caller.actor)
    )
