"""Queueing a broadcast's recipients into the outbox, in bulk: for each chunk the
messages, outbox items (priority 10, so agents' replies go first) and recipient updates
are written with Core inserts in the caller's transaction. A crash before the commit
leaves the chunk pending; after it, the outbox owns the sends. Either way nothing is
queued twice, because a recipient moves from pending to queued in the same transaction
that creates its message."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.channels.models import SENDING_PAUSED_STATES, Channel
from puente.contacts.models import ConsentKind, Contact, ContactConsent, ContactIdentity
from puente.conversations.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageSource,
    MessageStatus,
)
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.db.session import on_commit
from puente.events import DomainEvent, publish
from puente.outbound.broadcast_params import build_components, hydrate_body
from puente.outbound.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastState,
    MessageTemplate,
    OutboxItem,
    OutboxState,
    RecipientState,
)
from puente.outbound.service import PRIORITY_BROADCAST, wake_outbox_workers
from puente.outbound.templates import SENDABLE, find_template
from puente.outbound.tiers import tier_room

CHUNK = 5000
OUTBOX_NOTIFY = "puente_outbox"
PAUSED_STATES = [s.value for s in SENDING_PAUSED_STATES]


def notify_outbox(session: Session) -> None:
    """Wake this process's lanes after commit; on PostgreSQL also other processes' (a
    NOTIFY is delivered when the transaction commits, never before)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {OUTBOX_NOTIFY}"))
    on_commit(session, wake_outbox_workers)


def opted_out(session: Session, workspace_id: int, contact_ids: list[int]) -> dict[int, str]:
    """Contacts who may not get a marketing template, with the reason."""
    workspace = session.get(Workspace, workspace_id)
    needs_opt_in = bool(
        ((workspace.settings if workspace else None) or {}).get("marketing_requires_opt_in")
    )
    states: dict[int, str] = {}
    for start in range(0, len(contact_ids), CHUNK):
        chunk = contact_ids[start : start + CHUNK]
        states.update(
            list(
                session.execute(
                    select(ContactConsent.contact_id, ContactConsent.state).where(
                        ContactConsent.workspace_id == workspace_id,
                        ContactConsent.scope == "marketing",
                        ContactConsent.contact_id.in_(chunk),
                    )
                ).tuples()
            )
        )
    refused: dict[int, str] = {}
    for contact_id in contact_ids:
        state = states.get(contact_id)
        if state == ConsentKind.OPT_OUT.value:
            refused[contact_id] = "opted out of marketing messages"
        elif state is None and needs_opt_in:
            refused[contact_id] = "has not opted in to marketing (this workspace requires it)"
    return refused


def _hold_reason(session: Session, broadcast: Broadcast, channel: Channel | None) -> str | None:
    if channel is None:
        return "the number of this broadcast no longer exists"
    if channel.connection_state in PAUSED_STATES:
        return f"the number is {channel.connection_state}; sending resumes when it reconnects"
    template = _template(session, broadcast, channel)
    if template is not None and template.status not in SENDABLE:
        return f"the template is {template.status.lower()}; only approved templates are sent"
    return None


def _template(session: Session, broadcast: Broadcast, channel: Channel) -> MessageTemplate | None:
    return find_template(
        session,
        workspace_id=broadcast.workspace_id,
        name=broadcast.template_name,
        language=broadcast.template_language,
        waba_id=channel.waba_id,
    )


def queue_pending(session: Session, broadcast: Broadcast, *, limit: int | None = None) -> int:
    """Queue up to `limit` pending recipients (all when None) within the number's
    messaging-limit tier. Returns how many were queued."""
    if broadcast.state != BroadcastState.SENDING.value:
        return 0
    # One queuer per broadcast at a time (a request and a worker, or two workers): the
    # second waits here, then sees the first one's recipients as queued.
    session.execute(select(Broadcast.id).where(Broadcast.id == broadcast.id).with_for_update())
    channel = session.get(Channel, broadcast.channel_id)
    hold = _hold_reason(session, broadcast, channel)
    if hold is not None or channel is None:
        broadcast.waiting_reason = hold
        return 0
    template = _template(session, broadcast, channel)
    components = list(template.components or []) if template else []
    named = bool(template and template.parameter_format == "named")
    room = tier_room(session, channel)
    left = room.left
    queued = 0
    waiting = False
    last_id = 0
    while limit is None or queued < limit:
        size = CHUNK if limit is None else min(CHUNK, limit - queued)
        rows: list[Any] = list(
            session.execute(
                select(
                    BroadcastRecipient.id, BroadcastRecipient.contact_id, BroadcastRecipient.values
                )
                .where(
                    BroadcastRecipient.broadcast_id == broadcast.id,
                    BroadcastRecipient.state == RecipientState.PENDING.value,
                    BroadcastRecipient.id > last_id,
                )
                .order_by(BroadcastRecipient.id)
                .limit(size)
            ).all()
        )
        if not rows:
            break
        last_id = rows[-1][0]
        skipped: list[dict[str, Any]] = []
        if broadcast.template_category == "MARKETING":
            refused = opted_out(session, broadcast.workspace_id, [r[1] for r in rows if r[1]])
            keep = []
            for row in rows:
                if row[1] in refused:
                    skipped.append({"id": row[0], "reason": refused[row[1]]})
                else:
                    keep.append(row)
            rows = keep
        if left is not None:
            allowed = []
            for row in rows:
                if row[1] in room.reached:
                    allowed.append(row)
                elif left > 0:
                    left -= 1
                    room.reached.add(row[1])
                    allowed.append(row)
                else:
                    waiting = True
            rows = allowed
        if skipped:
            session.execute(
                update(BroadcastRecipient),
                [
                    {"id": s["id"], "state": RecipientState.SKIPPED.value, "reason": s["reason"]}
                    for s in skipped
                ],
            )
        if rows:
            queued += _queue_chunk(session, broadcast, channel, components, named, rows)
        if waiting:
            break
    if waiting:
        when = room.frees_at.strftime("%Y-%m-%d %H:%M UTC") if room.frees_at else "later"
        broadcast.waiting_reason = (
            f"messaging limit reached: this number's business portfolio may reach "
            f"{room.limit} people in 24 h; the rest wait (room again from {when})"
        )
    else:
        broadcast.waiting_reason = None
    if queued:
        notify_outbox(session)
        publish_progress(session, broadcast)
    return queued


def _queue_chunk(
    session: Session,
    broadcast: Broadcast,
    channel: Channel,
    components: list[dict[str, Any]],
    named: bool,
    rows: list[Any],
) -> int:
    now = utcnow()
    contact_ids = [r[1] for r in rows]
    conversations = _conversations(session, broadcast.workspace_id, channel.id, contact_ids, now)
    addresses = _addresses(session, broadcast.workspace_id, channel.id, contact_ids)
    messages: list[dict[str, Any]] = []
    payloads: list[dict[str, Any]] = []
    usable = []
    no_number: list[int] = []
    for recipient_id, contact_id, values in rows:
        wa_id = addresses.get(contact_id)
        if not wa_id:
            no_number.append(recipient_id)
            continue
        wire: dict[str, Any] = {
            "name": broadcast.template_name,
            "language": {"code": broadcast.template_language},
        }
        built = build_components(components, named, values or {})
        if built:
            wire["components"] = built
        usable.append((recipient_id, contact_id))
        payloads.append(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+" + wa_id.lstrip("+"),
                "type": "template",
                "template": wire,
            }
        )
        messages.append(
            {
                "workspace_id": broadcast.workspace_id,
                "channel_id": channel.id,
                "conversation_id": conversations[contact_id],
                "contact_id": contact_id,
                "direction": Direction.OUTBOUND.value,
                "source": MessageSource.BROADCAST.value,
                "type": "template",
                "content": wire,
                "text": hydrate_body(components, values or {}) or broadcast.template_name,
                "timestamp": now,
                "status": MessageStatus.QUEUED.value,
                "status_at": now,
                "history": [],
                "edited": False,
                "revoked": False,
                "created_at": now,
            }
        )
    if no_number:
        session.execute(
            update(BroadcastRecipient),
            [
                {
                    "id": rid,
                    "state": RecipientState.SKIPPED.value,
                    "reason": "the contact has no WhatsApp number",
                }
                for rid in no_number
            ],
        )
    if not messages:
        return 0
    message_ids = list(
        session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True), messages
        )
    )
    items = [
        {
            "workspace_id": broadcast.workspace_id,
            "channel_id": channel.id,
            "message_id": message_id,
            "conversation_id": message["conversation_id"],
            "priority": PRIORITY_BROADCAST,
            "state": OutboxState.QUEUED.value,
            "payload": payload,
            "attempts": 0,
            "next_attempt_at": now,
            "broadcast_id": broadcast.id,
            "created_at": now,
        }
        for message_id, message, payload in zip(message_ids, messages, payloads, strict=True)
    ]
    session.execute(insert(OutboxItem), items)
    session.execute(
        update(BroadcastRecipient),
        [
            {"id": rid, "state": RecipientState.QUEUED.value, "message_id": mid, "reason": None}
            for (rid, _cid), mid in zip(usable, message_ids, strict=True)
        ],
    )
    return len(message_ids)


def _conversations(
    session: Session, workspace_id: int, channel_id: int, contact_ids: list[int], now: dt.datetime
) -> dict[int, int]:
    def existing() -> dict[int, int]:
        return dict(
            list(
                session.execute(
                    select(Conversation.contact_id, Conversation.id).where(
                        Conversation.workspace_id == workspace_id,
                        Conversation.channel_id == channel_id,
                        Conversation.contact_id.in_(contact_ids),
                    )
                ).tuples()
            )
        )

    found = existing()
    missing = [c for c in contact_ids if c not in found]
    if missing:
        session.execute(
            insert_ignore(session, Conversation, ["channel_id", "contact_id"]),
            [
                {
                    "workspace_id": workspace_id,
                    "channel_id": channel_id,
                    "contact_id": contact_id,
                    "status": ConversationStatus.OPEN.value,
                    "unread_count": 0,
                    "bot_paused": False,
                    "labels": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for contact_id in missing
            ],
        )
        found = existing()
    return found


def _addresses(
    session: Session, workspace_id: int, channel_id: int, contact_ids: list[int]
) -> dict[int, str]:
    # The wa_id this number knows the person by wins over the saved one (Brazil's ninth
    # digit), exactly as for single sends.
    out: dict[int, str] = {
        cid: wa_id
        for cid, wa_id in session.execute(
            select(Contact.id, Contact.wa_id).where(
                Contact.workspace_id == workspace_id, Contact.id.in_(contact_ids)
            )
        ).tuples()
        if wa_id
    }
    for cid, wa_id in session.execute(
        select(ContactIdentity.contact_id, ContactIdentity.wa_id).where(
            ContactIdentity.channel_id == channel_id,
            ContactIdentity.contact_id.in_(contact_ids),
            ContactIdentity.wa_id.is_not(None),
        )
    ).tuples():
        if wa_id:
            out[cid] = wa_id
    return out


def publish_progress(session: Session, broadcast: Broadcast) -> None:
    publish(
        session,
        DomainEvent(
            workspace_id=broadcast.workspace_id,
            kind="broadcast.progress",
            data={"broadcast_id": broadcast.id, "state": broadcast.state},
        ),
    )
