"""field `history`: the Business app's chats of the last 180 days, imported once.

Chunks come in any order and may repeat; messages keep their original time, direction
and `history_context.status`, with source "history". New conversations start resolved
and nothing counts as unread: an import must not wake the team up. The later webhook
that carries media for placeholders (same field, `value.messages[]`) completes them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.channels.sync import do_history_declined, do_record_history_chunk
from puente.contacts.models import ContactSource
from puente.contacts.resolve import Person, digits_of
from puente.conversations.edits import Revision, apply_revisions
from puente.conversations.inbound import NewMessage, store_messages
from puente.conversations.models import ConversationStatus, Direction, MessageSource, MessageStatus
from puente.ingest.processors import ChangeRef
from puente.ingest.processors.channel import channel_of
from puente.ingest.processors.convert import (
    HISTORY_STATUS,
    REVISION_TYPES,
    media_completion,
    new_message,
    revision_of,
)
from puente.runtime import Runtime
from puente.whatsapp import webhooks as wire

log = logging.getLogger(__name__)


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = wire.HistoryValue.model_validate(change.value)
    channel = channel_of(session, change)
    business = digits_of(
        (value.metadata.display_phone_number if value.metadata else None)
        or channel.display_phone_number
    )
    raw_chunks: list[dict[str, Any]] = change.value.get("history") or []
    for raw_chunk, chunk in zip(raw_chunks, value.history, strict=True):
        _import_chunk(session, channel, change, business, raw_chunk, chunk)
    if value.messages:
        raws: list[dict[str, Any]] = change.value.get("messages") or []
        completions = [
            media_completion(raw, m) for raw, m in zip(raws, value.messages, strict=True)
        ]
        apply_revisions(session, channel, completions, emit_events=False)


def _import_chunk(
    session: Session,
    channel: Channel,
    change: ChangeRef,
    business: str,
    raw_chunk: dict[str, Any],
    chunk: wire.HistoryChunk,
) -> None:
    if chunk.errors:
        errors = raw_chunk.get("errors") or []
        declined = [e for e in errors if e.get("code") == wire.HISTORY_DECLINED]
        if declined:
            do_history_declined(session, channel, declined[0])
        else:
            log.warning("history errors for channel %s: %s", channel.id, errors)
        return
    items: list[NewMessage] = []
    revisions: list[Revision] = []
    raw_threads = raw_chunk.get("threads") or []
    for raw_thread, thread in zip(raw_threads, chunk.threads, strict=True):
        if not thread.id.isdigit():
            continue  # group chats are never imported
        raw_messages = raw_thread.get("messages") or []
        for raw, message in zip(raw_messages, thread.messages, strict=True):
            if message.type in REVISION_TYPES:
                revision = revision_of(message)
                if revision is not None:
                    revisions.append(revision)
                continue
            items.append(_history_message(raw, message, thread.id, business))
    result = store_messages(
        session,
        channel,
        items,
        contact_source=ContactSource.HISTORY.value,
        conversation_status=ConversationStatus.RESOLVED.value,
        emit_events=False,
    )
    if revisions:
        apply_revisions(session, channel, revisions, emit_events=False)
    meta = chunk.metadata
    do_record_history_chunk(
        session,
        channel,
        event_id=change.event_id,
        phase=meta.phase if meta else 0,
        chunk_order=meta.chunk_order if meta else None,
        progress=meta.progress if meta else None,
        messages=len(result.stored),
    )


def _history_message(
    raw: dict[str, Any], message: wire.Message, customer: str, business: str
) -> NewMessage:
    outbound = bool(message.to) or digits_of(message.from_) == business
    context_status = message.history_context.status if message.history_context else None
    if outbound:
        status = HISTORY_STATUS.get((context_status or "").upper(), MessageStatus.SENT).value
    else:
        status = MessageStatus.RECEIVED.value
    item = new_message(
        raw,
        message,
        person=Person(wa_id=customer),
        direction=(Direction.OUTBOUND if outbound else Direction.INBOUND).value,
        source=MessageSource.HISTORY.value,
        status=status,
    )
    if message.history_context is not None:
        item.raw = {**(item.raw or {}), "history_context": raw.get("history_context")}
    return item
