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
from puente.conversations.inbound import store_messages
from puente.conversations.incoming import NewMessage
from puente.conversations.models import ConversationStatus, Direction, MessageSource, MessageStatus
from puente.foreground import yield_to_requests
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

# Messages stored per statement batch of a chunk.
STORE_SLICE = 250


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    # A chunk holds up to a few thousand messages. Validating it in one call would hold the
    # GIL for tens of milliseconds, stalling the web requests that share this process, so
    # the envelope is validated without its threads and each thread on its own.
    raw_chunks: list[dict[str, Any]] = change.value.get("history") or []
    value = wire.HistoryValue.model_validate(
        {
            **change.value,
            "history": [_without_threads(c) for c in raw_chunks],
        }
    )
    channel = channel_of(session, change)
    business = digits_of(
        (value.metadata.display_phone_number if value.metadata else None)
        or channel.display_phone_number
    )
    for raw_chunk, chunk in zip(raw_chunks, value.history, strict=True):
        _import_chunk(session, channel, change, business, raw_chunk, chunk)
    if value.messages:
        raws: list[dict[str, Any]] = change.value.get("messages") or []
        completions = [
            media_completion(raw, m) for raw, m in zip(raws, value.messages, strict=True)
        ]
        apply_revisions(session, channel, completions, emit_events=False)


def _without_threads(raw_chunk: Any) -> Any:
    if not isinstance(raw_chunk, dict):
        return raw_chunk  # let validation say what is wrong with it
    return {k: v for k, v in raw_chunk.items() if k != "threads"}


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
    for number, raw_thread in enumerate(raw_chunk.get("threads") or []):
        if number % 10 == 0:
            yield_to_requests()
        thread = wire.HistoryThread.model_validate(raw_thread)
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
    stored = 0
    # In slices, so a request waiting in this process gets its turn between them.
    for start in range(0, len(items), STORE_SLICE):
        yield_to_requests()
        result = store_messages(
            session,
            channel,
            items[start : start + STORE_SLICE],
            contact_source=ContactSource.HISTORY.value,
            conversation_status=ConversationStatus.RESOLVED.value,
            emit_events=False,
        )
        stored += len(result.stored)
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
        messages=stored,
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
