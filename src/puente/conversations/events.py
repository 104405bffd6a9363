"""The one place each message and conversation event is built from the rows, whichever
module publishes it (storing, sending, statuses, edits, media, collaboration)."""

from __future__ import annotations

from typing import Protocol

from puente.conversations.models import Conversation, Media, Message
from puente.db.base import utcnow
from puente.events import (
    ConversationAssigned,
    ConversationUpdated,
    MediaInfo,
    MessageStatusChanged,
    MessageStored,
    MessageUpdated,
)


class MessageFacts(Protocol):
    """A stored message's row or the batch insert's item (conversations.inbound)."""

    @property
    def wamid(self) -> str | None: ...
    @property
    def direction(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...


def message_stored(
    message: MessageFacts,
    *,
    message_id: int,
    conversation: Conversation,
    outbox_id: int | None = None,
    opened: bool = False,
) -> MessageStored:
    return MessageStored(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        channel_id=conversation.channel_id,
        message_id=message_id,
        wamid=message.wamid,
        direction=message.direction,
        source=message.source,
        type=message.type,
        status=message.status,
        outbox_id=outbox_id,
        opened=opened,
    )


def message_status_changed(message: Message) -> MessageStatusChanged:
    return MessageStatusChanged(
        workspace_id=message.workspace_id,
        conversation_id=message.conversation_id,
        channel_id=message.channel_id,
        message_id=message.id,
        wamid=message.wamid,
        direction=message.direction,
        source=message.source,
        type=message.type,
        status=message.status,
        error=message.error,
        at=message.status_at or utcnow(),
    )


def message_updated(message: Message, media: Media | None = None) -> MessageUpdated:
    return MessageUpdated(
        workspace_id=message.workspace_id,
        conversation_id=message.conversation_id,
        message_id=message.id,
        wamid=message.wamid,
        edited=message.edited,
        revoked=message.revoked,
        media=None
        if media is None
        else MediaInfo(
            id=media.id, state=media.state, mime_type=media.mime_type, file_size=media.file_size
        ),
    )


def conversation_updated(
    conversation: Conversation, change: str | None, *, event_id: int | None = None
) -> ConversationUpdated:
    return ConversationUpdated(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        channel_id=conversation.channel_id,
        change=change,
        status=conversation.status,
        assignee_id=conversation.assignee_id,
        team_id=conversation.team_id,
        event_id=event_id,
    )


def conversation_assigned(
    conversation: Conversation, *, event_id: int, previous_assignee_id: int | None
) -> ConversationAssigned:
    updated = conversation_updated(conversation, "assignment", event_id=event_id)
    return ConversationAssigned(
        **updated.model_dump(),
        also_user_ids=(previous_assignee_id,) if previous_assignee_id else (),
    )
