"""API shapes for conversations and messages (shared by the REST API, SSE and exports)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from puente.conversations.models import Conversation, Message


class MessageOut(BaseModel):
    id: int
    wamid: str | None = Field(description="Meta's message id; null while queued in the outbox")
    conversation_id: int
    channel_id: int
    contact_id: int
    direction: str = Field(description="inbound | outbound")
    source: str = Field(
        description="customer | agent | business_app | bot | broadcast | api | history"
    )
    type: str
    status: str = Field(
        description="received (inbound) | queued | sending | sent | delivered | read | played | failed | cancelled"
    )
    timestamp: dt.datetime = Field(description="Meta's time of the message, ISO 8601 UTC")
    content: dict[str, Any]
    text: str | None
    edited: bool
    revoked: bool
    reply_to_wamid: str | None
    error: dict[str, Any] | None
    pricing: dict[str, Any] | None
    history: list[dict[str, Any]] = Field(
        description="earlier versions of an edited/revoked message"
    )

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls(
            id=m.id,
            wamid=m.wamid,
            conversation_id=m.conversation_id,
            channel_id=m.channel_id,
            contact_id=m.contact_id,
            direction=m.direction,
            source=m.source,
            type=m.type,
            status=m.status,
            timestamp=m.timestamp,
            content=m.content or {},
            text=m.text,
            edited=m.edited,
            revoked=m.revoked,
            reply_to_wamid=m.reply_to_wamid,
            error=m.error,
            pricing=m.pricing,
            history=m.history or [],
        )


class ConversationOut(BaseModel):
    id: int
    channel_id: int
    contact_id: int
    status: str = Field(description="open | pending | snoozed | resolved")
    assignee_id: int | None
    team_id: int | None
    last_activity_at: dt.datetime | None
    last_message_preview: str | None
    last_message_source: str | None
    unread_count: int
    window_expires_at: dt.datetime | None = Field(
        description="when the 24 h customer-service window closes; null if never opened"
    )
    labels: list[str]

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        return cls(
            id=c.id,
            channel_id=c.channel_id,
            contact_id=c.contact_id,
            status=c.status,
            assignee_id=c.assignee_id,
            team_id=c.team_id,
            last_activity_at=c.last_activity_at,
            last_message_preview=c.last_message_preview,
            last_message_source=c.last_message_source,
            unread_count=c.unread_count,
            window_expires_at=c.window_expires_at,
            labels=c.labels or [],
        )
