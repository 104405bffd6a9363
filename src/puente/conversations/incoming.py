"""Messages from WhatsApp as the domain takes them in: what the protocol layer's processors
build (NewMessage, its MediaRef), what storing one gives back (Stored), and the preview the
conversation list shows of a message. Storing (inbound), media rows, edits and
notifications all use these, so they live below all four."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from puente.contacts.resolve import Person
from puente.conversations.models import Conversation, Message

PREVIEW_LENGTH = 200


@dataclass(frozen=True)
class MediaRef:
    meta_media_id: str | None
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = None
    url: str | None = None


@dataclass
class NewMessage:
    """A message as the domain stores it, built by the protocol layer's processors."""

    wamid: str
    person: Person  # the customer, whichever direction the message went
    direction: str
    source: str
    type: str
    content: dict[str, Any]
    text: str | None
    timestamp: dt.datetime
    status: str
    reply_to_wamid: str | None = None
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    media: MediaRef | None = None


@dataclass
class Stored:
    id: int
    message: NewMessage
    conversation: Conversation
    # The customer's message began the conversation, or reopened it after it was closed
    # or snoozed: "the first message of a new conversation" to automation.
    opened: bool = False


# Session.info key: this transaction's newly stored messages by id, as they came in.
_STORED_KEY = "puente.stored_messages"


_CONTACTS_KEY = "puente.stored_contacts"


def remember_stored(session: Session, stored: Stored) -> None:
    session.info.setdefault(_STORED_KEY, {})[stored.id] = stored.message
    session.info.setdefault(_CONTACTS_KEY, set()).add(stored.conversation.contact_id)


def contacts_stored(session: Session) -> set[int]:
    """The contacts whose messages this transaction stored."""
    found: set[int] = session.info.get(_CONTACTS_KEY, set())
    return found


def stored_in_session(session: Session, message_id: int) -> NewMessage | None:
    """A message this transaction stored, as it came in: its reactions read its text
    without loading the row (ingest inserts messages without ORM objects)."""
    found: NewMessage | None = session.info.get(_STORED_KEY, {}).get(message_id)
    return found


# The list's preview of a message deleted for everyone (its text is gone): pages show it
# in the reader's language.
REVOKED_PREVIEW = "[revoked]"


def preview_of(message: NewMessage | Message) -> str:
    if isinstance(message, Message) and message.revoked:
        return REVOKED_PREVIEW
    if message.text:
        return message.text[:PREVIEW_LENGTH]
    return f"[{message.type}]"
