"""Operations on conversations and messages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.conversations.models import Conversation, ConversationStatus


def get_or_create_conversation(
    session: Session, *, workspace_id: int, channel_id: int, contact_id: int
) -> tuple[Conversation, bool]:
    """The one conversation of this contact on this channel. Returns (conversation, created)."""
    query = select(Conversation).where(
        Conversation.channel_id == channel_id, Conversation.contact_id == contact_id
    )
    conversation = session.scalar(query)
    if conversation is not None:
        return conversation, False
    conversation = Conversation(
        workspace_id=workspace_id,
        channel_id=channel_id,
        contact_id=contact_id,
        status=ConversationStatus.OPEN.value,
        labels=[],
    )
    try:
        with session.begin_nested():
            session.add(conversation)
            session.flush()
    except Exception:
        existing = session.scalar(query)
        if existing is None:
            raise
        return existing, False
    return conversation, True
