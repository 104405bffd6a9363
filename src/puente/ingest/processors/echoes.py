"""field `smb_message_echoes`: what the owner sent from the Business app on the phone.

Echoes are outgoing messages filed under the customer in `to`. They never open or
extend the service window and never count as unread (see conversations.inbound).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from puente.contacts.models import ContactSource
from puente.contacts.resolve import Person
from puente.conversations.edits import Revision, apply_revisions
from puente.conversations.inbound import store_messages
from puente.conversations.incoming import NewMessage
from puente.conversations.models import Direction, MessageSource, MessageStatus
from puente.ingest.processors import ChangeRef
from puente.ingest.processors.channel import channel_of
from puente.ingest.processors.convert import REVISION_TYPES, new_message, revision_of
from puente.runtime import Runtime
from puente.whatsapp.webhooks import EchoesValue, Message, WebhookContact


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = EchoesValue.model_validate(change.value)
    if not value.message_echoes:
        return
    channel = channel_of(session, change)
    raws: list[dict[str, Any]] = change.value.get("message_echoes") or []
    items: list[NewMessage] = []
    revisions: list[Revision] = []
    for raw, echo in zip(raws, value.message_echoes, strict=True):
        if echo.type in REVISION_TYPES:
            revision = revision_of(echo)
            if revision is not None:
                revisions.append(revision)
            continue
        person = _recipient(echo, value.contacts)
        if person.wa_id is None and person.bsuid is None:
            continue
        items.append(
            new_message(
                raw,
                echo,
                person=person,
                direction=Direction.OUTBOUND.value,
                source=MessageSource.BUSINESS_APP.value,
                status=MessageStatus.SENT.value,
            )
        )
    if items:
        store_messages(session, channel, items, contact_source=ContactSource.WHATSAPP.value)
    if revisions:
        apply_revisions(session, channel, revisions)
        # An edit or revoke from the phone is phone activity too.
        newest = max(r.timestamp for r in revisions)
        if channel.last_phone_activity_at is None or newest > channel.last_phone_activity_at:
            channel.last_phone_activity_at = newest


def _recipient(echo: Message, contacts: list[WebhookContact]) -> Person:
    """The customer in `to`, with the BSUID Meta lists next to the echoes."""
    bsuid = echo.to_user_id
    for contact in contacts:
        if contact.wa_id and contact.wa_id == echo.to:
            bsuid = bsuid or contact.user_id
    return Person(wa_id=echo.to or None, bsuid=bsuid)
