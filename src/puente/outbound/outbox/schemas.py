"""API shapes for sending messages and watching the outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from puente.outbound.models import OutboxItem
from puente.outbound.outbox.service import shown_state
from puente.whatsapp.send import (
    Audio,
    ContactCard,
    Document,
    Image,
    Interactive,
    Location,
    MessageType,
    Reaction,
    Sticker,
    Template,
    Text,
    Video,
)

DbId = Field(default=None, ge=1, le=2**62)


class SendMessageIn(BaseModel):
    """Who to send to (exactly one of conversation_id, contact_id, to) and what: `type`
    plus the object of that name, in Meta's wire shape."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": 12,
                    "type": "text",
                    "text": {"body": "¡Hola! ¿En qué te ayudo?"},
                },
                {
                    "to": "+5215512345678",
                    "channel_id": 1,
                    "type": "template",
                    "template": {"name": "order_ready", "language": {"code": "es_MX"}},
                },
            ]
        },
    )

    conversation_id: int | None = DbId
    contact_id: int | None = DbId
    to: str | None = Field(
        default=None, max_length=32, description="E.164 phone number; needs channel_id"
    )
    channel_id: int | None = Field(
        default=None, ge=1, le=2**62, description="the sending number (default: the usual one)"
    )
    type: MessageType
    reply_to: str | None = Field(
        default=None, max_length=255, description="wamid of the message to quote"
    )
    text: Text | None = None
    image: Image | None = None
    video: Video | None = None
    audio: Audio | None = None
    document: Document | None = None
    sticker: Sticker | None = None
    template: Template | None = None
    interactive: Interactive | None = None
    location: Location | None = None
    contacts: list[ContactCard] | None = None
    reaction: Reaction | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SendMessageIn:
        targets = [n for n in ("conversation_id", "contact_id", "to") if getattr(self, n)]
        if len(targets) != 1:
            raise ValueError("give exactly one of conversation_id, contact_id or to")
        if getattr(self, self.type) is None:
            raise ValueError(f"type is '{self.type}' but the '{self.type}' object is missing")
        others = [
            name
            for name in type(self).model_fields
            if name in _CONTENT_FIELDS and name != self.type and getattr(self, name) is not None
        ]
        if others:
            raise ValueError(f"only the '{self.type}' object may be given, not {others}")
        return self

    def content(self) -> Any:
        value = getattr(self, self.type)
        if isinstance(value, list):
            return [v.model_dump(mode="json", exclude_none=True) for v in value]
        return value.model_dump(mode="json", exclude_none=True)


_CONTENT_FIELDS = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "template",
    "interactive",
    "location",
    "contacts",
    "reaction",
}


class OutboxItemOut(BaseModel):
    id: int
    message_id: int
    conversation_id: int
    channel_id: int
    state: str = Field(
        description="queued | sending | sent | failed | cancelled, or unknown: a send "
        "interrupted after it may have reached Meta (check the phone, then resend)"
    )
    priority: int
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    error_code: int | None
    sent_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, item: OutboxItem) -> OutboxItemOut:
        return cls(
            id=item.id,
            message_id=item.message_id,
            conversation_id=item.conversation_id,
            channel_id=item.channel_id,
            state=shown_state(item),
            priority=item.priority,
            attempts=item.attempts,
            next_attempt_at=item.next_attempt_at,
            last_error=item.last_error,
            error_code=item.error_code,
            sent_at=item.sent_at,
            created_at=item.created_at,
        )
