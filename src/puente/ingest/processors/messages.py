"""field `messages`: what customers send, and the statuses of what the business sent."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.contacts.models import ContactSource
from puente.contacts.optout_keywords import apply_optout_keywords
from puente.conversations.edits import Revision, apply_revisions
from puente.conversations.inbound import store_messages
from puente.conversations.incoming import NewMessage
from puente.conversations.models import Direction, MessageSource, MessageStatus
from puente.conversations.statuses import record_statuses
from puente.ingest.processors import ChangeRef
from puente.ingest.processors.channel import channel_of
from puente.ingest.processors.convert import (
    REVISION_TYPES,
    new_message,
    person_for_inbound,
    revision_of,
    status_update,
)
from puente.runtime import Runtime
from puente.whatsapp.webhooks import MessagesValue

log = logging.getLogger(__name__)


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = MessagesValue.model_validate(change.value)
    if not value.messages and not value.statuses:
        if value.errors:
            log.warning("webhook errors for %s: %s", change.phone_number_id, value.errors)
        return
    channel = channel_of(session, change)
    if value.messages:
        _store_inbound(session, channel, value, change.value.get("messages") or [])
    if value.statuses:
        raws = change.value.get("statuses") or []
        record_statuses(
            session,
            channel,
            [status_update(r, s) for r, s in zip(raws, value.statuses, strict=True)],
        )


def _store_inbound(
    session: Session, channel: Channel, value: MessagesValue, raws: list[dict[str, Any]]
) -> None:
    items: list[NewMessage] = []
    revisions: list[Revision] = []
    for raw, message in zip(raws, value.messages, strict=True):
        if message.type in REVISION_TYPES:
            revision = revision_of(message)
            if revision is not None:
                revisions.append(revision)
            continue
        person = person_for_inbound(message, value.contacts)
        if person.wa_id is None and person.bsuid is None:
            log.warning("message %s names no sender; kept only in the raw event", message.id)
            continue
        items.append(
            new_message(
                raw,
                message,
                person=person,
                direction=Direction.INBOUND.value,
                source=MessageSource.CUSTOMER.value,
                status=MessageStatus.RECEIVED.value,
            )
        )
    if items:
        stored = store_messages(
            session, channel, items, contact_source=ContactSource.WHATSAPP.value
        ).stored
        # A customer writing STOP, BAJA... opts out of marketing (and is told so).
        apply_optout_keywords(
            session,
            channel.workspace_id,
            [(s.id, s.message.text) for s in stored if s.message.type == "text"],
        )
    if revisions:
        apply_revisions(session, channel, revisions)
