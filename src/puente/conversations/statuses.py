"""Delivery statuses (sent, delivered, read, played, failed) applied to outgoing messages.

Every status is kept in StatusEvent, once per (wamid, status). A message's status only
moves forward along STATUS_RANK, so duplicates and late arrivals change nothing. A
status whose message is not known yet stays unapplied until the message is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.contacts.consent import record_optout_from_meta
from puente.conversations.events import message_status_changed
from puente.conversations.models import (
    STATUS_RANK,
    Direction,
    Message,
    MessageStatus,
    StatusEvent,
)
from puente.db.bulk import insert_ignore
from puente.events import publish
from puente.outbound.models import OutboxItem
from puente.outbound.outbox.service import do_recover_sent, outbox_id_from_callback
from puente.reports.hooks import status_applied


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: dt.datetime
    recipient_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    pricing: dict[str, Any] | None = None
    callback_data: str | None = None


def record_statuses(
    session: Session, channel: Channel, updates: Sequence[StatusUpdate], *, emit_events: bool = True
) -> int:
    """Keep every new status and apply it to its message. Returns how many were new."""
    if not updates:
        return 0
    rows = [
        {
            "workspace_id": channel.workspace_id,
            "wamid": u.wamid,
            "status": u.status,
            "timestamp": u.timestamp,
            "recipient_id": u.recipient_id,
            "errors": u.errors or None,
            "pricing": u.pricing,
            "callback_data": u.callback_data,
            "applied": False,
        }
        for u in updates
    ]
    table = StatusEvent.__table__
    stmt = insert_ignore(session, StatusEvent, ["wamid", "status"]).returning(table.c.id)
    new_ids = list(session.execute(stmt, rows).scalars())
    if not new_ids:
        return 0
    events = list(session.scalars(select(StatusEvent).where(StatusEvent.id.in_(new_ids))))
    wamids = {e.wamid for e in events}
    messages = _messages_by_wamid(session, wamids)
    for event in events:
        if event.wamid not in messages and event.callback_data:
            found = _reconcile_outbox(session, channel, event)
            if found is not None:
                messages[event.wamid] = found
    _apply_events(session, events, messages, emit_events=emit_events)
    return len(new_ids)


def apply_pending_statuses(
    session: Session, wamids: Sequence[str], *, emit_events: bool = True
) -> None:
    """Apply statuses that arrived before these outgoing messages were stored (or got
    their wamid). The outbox calls this after writing the wamid Meta returned."""
    if not wamids:
        return
    events = list(
        session.scalars(
            select(StatusEvent)
            .where(StatusEvent.wamid.in_(list(wamids)), StatusEvent.applied.is_(False))
            .order_by(StatusEvent.id)
        )
    )
    if events:
        messages = _messages_by_wamid(session, {e.wamid for e in events})
        _apply_events(session, events, messages, emit_events=emit_events)


def do_sweep_pending_statuses(session: Session, limit: int = 500) -> int:
    """Apply waiting statuses whose message has its wamid by now.

    On PostgreSQL a status can be stored (waiting) by one transaction while another,
    not yet committed, writes the wamid it belongs to: each misses the other's row.
    This sweep, run now and then by the ingest worker, settles such a status. Only the
    newest waiting statuses are looked at: the race leaves recent ones behind, while
    statuses for messages sent outside Puente wait forever and must not slow it down.
    """
    recent = (
        select(StatusEvent.id, StatusEvent.wamid)
        .where(StatusEvent.applied.is_(False))
        .order_by(StatusEvent.id.desc())
        .limit(limit)
        .subquery()
    )
    wamids = list(
        session.scalars(
            select(Message.wamid).distinct().join(recent, recent.c.wamid == Message.wamid)
        )
    )
    found = [w for w in wamids if w]
    apply_pending_statuses(session, found)
    return len(found)


def lock_messages_for_statuses(session: Session, statuses: Iterable[Mapping[str, Any]]) -> None:
    """PostgreSQL: lock, in id order, the messages these raw webhook statuses will update
    (by wamid, or by the outbox id of their callback data).

    The ingest worker applies a batch of events one after another in one transaction,
    each change locking the messages it updates. Two workers whose batches hold statuses
    of the same messages in opposite orders (one message's `delivered` in one batch, its
    `read` in the other) then each wait for the other: a deadlock, and the change that
    lost it failed. Taking the batch's locks first, all in one order, makes the second
    batch wait for the first instead. SQLite has one writer at a time: nothing to do."""
    if session.get_bind().dialect.name != "postgresql":
        return
    wamids: set[str] = set()
    outbox_ids: set[int] = set()
    for status in statuses:
        wamid = status.get("id")
        if isinstance(wamid, str):
            wamids.add(wamid)
        outbox_id = outbox_id_from_callback(status.get("biz_opaque_callback_data"))
        if outbox_id is not None:
            outbox_ids.add(outbox_id)
    if not wamids and not outbox_ids:
        return
    by_outbox = select(OutboxItem.message_id).where(OutboxItem.id.in_(outbox_ids))
    session.execute(
        select(Message.id)
        .where(Message.wamid.in_(wamids) | Message.id.in_(by_outbox))
        .order_by(Message.id)
        .with_for_update()
    ).all()


def _messages_by_wamid(session: Session, wamids: set[str]) -> dict[str, Message]:
    if not wamids:
        return {}
    rows = session.scalars(select(Message).where(Message.wamid.in_(wamids)))
    return {m.wamid: m for m in rows if m.wamid}


def _reconcile_outbox(session: Session, channel: Channel, event: StatusEvent) -> Message | None:
    """A status for a send whose local commit was lost: the outbox id in the callback
    data finds the message, which gets the wamid Meta gave it."""
    outbox_id = outbox_id_from_callback(event.callback_data)
    if outbox_id is None:
        return None
    item = session.scalar(
        select(OutboxItem).where(
            OutboxItem.id == outbox_id,
            OutboxItem.workspace_id == channel.workspace_id,
            OutboxItem.channel_id == channel.id,
        )
    )
    if item is None:
        return None
    message = session.get(Message, item.message_id)
    if message is None or message.wamid is not None:
        return None
    do_recover_sent(session, item, message, event.wamid, event.timestamp)
    return message


def _rank(status: str) -> int:
    try:
        return STATUS_RANK[MessageStatus(status)]
    except (KeyError, ValueError):
        return -1


def apply_status(message: Message, event: StatusEvent) -> bool:
    """Move `message` forward to the event's status. Returns whether anything changed."""
    changed = False
    if event.pricing and message.pricing != event.pricing:
        message.pricing = event.pricing
        changed = True
    new_rank = _rank(event.status)
    if new_rank < 0 or new_rank <= _rank(message.status):
        return changed
    message.status = event.status
    message.status_at = event.timestamp
    if event.status == MessageStatus.FAILED.value:
        message.error = (event.errors or [{}])[0]
    return True


def _apply_events(
    session: Session,
    events: list[StatusEvent],
    messages: dict[str, Message],
    *,
    emit_events: bool,
) -> None:
    changed: dict[int, Message] = {}
    for event in sorted(events, key=lambda e: (_rank(e.status), e.timestamp)):
        message = messages.get(event.wamid)
        if message is None:
            continue
        event.applied = True
        if message.direction == Direction.INBOUND.value:
            # Meta reports the delivery of what the business sends; a status naming a
            # customer's message is not Meta's and must not mark it failed or read.
            continue
        before_status, before_pricing = message.status, message.pricing
        if apply_status(message, event):
            changed[message.id] = message
            status_applied(
                session,
                message,
                before_status=before_status,
                before_pricing=before_pricing,
                recipient_id=event.recipient_id,
                at=event.timestamp,
            )
            if message.status == MessageStatus.FAILED.value:
                # 131050 means the user stopped marketing messages: record the opt-out.
                record_optout_from_meta(session, message)
    if emit_events:
        for message in changed.values():
            publish(session, message_status_changed(message))
