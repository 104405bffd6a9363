"""Queueing outgoing messages: the rules checked before sending, and the outbox rows.

Every outgoing message (agent, bot, broadcast, API) is stored as a Message plus an
OutboxItem holding the exact Graph request body before anything is sent; the lanes in
`puente.outbound.outbox.worker` send it. Also cancel, explicit resend, and reconciliation of an
item from a status webhook's `biz_opaque_callback_data`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente import metrics
from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import SENDING_PAUSED_STATES, Channel, ConnectionState
from puente.contacts.models import Contact, ContactIdentity, ContactSource
from puente.contacts.phones import to_e164, wa_id_from_e164
from puente.contacts.service import get_or_create_contact
from puente.conversations.events import message_status_changed, message_stored
from puente.conversations.models import (
    Conversation,
    Direction,
    Message,
    MessageSource,
    MessageStatus,
)
from puente.conversations.service import get_or_create_conversation
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound
from puente.events import publish
from puente.jobs import OUTBOX
from puente.outbound.broadcasts.tiers import check_tier_room
from puente.outbound.models import OutboxItem, OutboxState
from puente.outbound.templates.sent import sent_text
from puente.outbound.templates.service import check_template_message
from puente.reports import facts
from puente.whatsapp.send import SendValidationError, build_payload, preview_text

CALLBACK_PREFIX = "outbox:"
# A SENDING item older than this whose worker is gone is shown as "unknown": Meta may or
# may not have it. It is never resent on its own (see docs/sending.md).
UNKNOWN_AFTER = dt.timedelta(minutes=2)
PRIORITY_REPLY = 0
PRIORITY_BROADCAST = 10


class WindowClosed(InvalidInput):
    code = "window_closed"


class ChannelPaused(Conflict):
    code = "channel_paused"


class NotResendable(Conflict):
    code = "not_resendable"


def callback_data_for(item_id: int) -> str:
    return f"{CALLBACK_PREFIX}{item_id}"


# Outbox ids fit a bigint; a larger number in someone's callback data matches nothing.
_MAX_ID = 2**63 - 1


def outbox_id_from_callback(data: object) -> int | None:
    """The outbox item a status webhook's `biz_opaque_callback_data` names. The field is
    free text to Meta (other tools on the number may write their own), so anything but
    "outbox:" and ASCII digits within a bigint names nothing."""
    if not isinstance(data, str) or not data.startswith(CALLBACK_PREFIX):
        return None
    number = data[len(CALLBACK_PREFIX) :]
    if not (number.isascii() and number.isdigit()) or int(number) > _MAX_ID:
        return None
    return int(number)


# -- finding the recipient -------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    channel: Channel
    contact: Contact
    conversation: Conversation


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def _channel_of(session: Session, workspace_id: int, channel_id: int) -> Channel:
    channel = session.scalar(
        select(Channel).where(Channel.id == channel_id, Channel.workspace_id == workspace_id)
    )
    if channel is None:
        raise NotFound(f"no channel {channel_id} in this workspace")
    return channel


def _pick_channel_for(session: Session, workspace_id: int, contact: Contact) -> Channel:
    # The number the contact last talked to; else the workspace's only number.
    latest = session.scalar(
        select(Conversation)
        .where(Conversation.workspace_id == workspace_id, Conversation.contact_id == contact.id)
        .order_by(Conversation.last_activity_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    )
    if latest is not None:
        return _channel_of(session, workspace_id, latest.channel_id)
    channels = list(
        session.scalars(select(Channel).where(Channel.workspace_id == workspace_id).limit(2))
    )
    if len(channels) == 1:
        return channels[0]
    if not channels:
        raise Conflict("this workspace has no WhatsApp number yet", code="no_channel")
    raise _field_error("channel_id", "this workspace has several numbers; say which one sends")


def resolve_recipient(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int | None = None,
    contact_id: int | None = None,
    to: str | None = None,
    channel_id: int | None = None,
) -> Recipient:
    """The channel, contact and conversation a message goes to (404 for unknown ones)."""
    given = [x for x in (conversation_id, contact_id, to) if x is not None]
    if len(given) != 1:
        raise _field_error("conversation_id", "give exactly one of conversation_id, contact_id, to")
    if conversation_id is not None:
        conversation = session.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id, Conversation.workspace_id == workspace_id
            )
        )
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id} in this workspace")
        channel = _channel_of(session, workspace_id, conversation.channel_id)
        contact = session.get(Contact, conversation.contact_id)
        assert contact is not None  # conversations are deleted with their contact
        return Recipient(channel, contact, conversation)
    if contact_id is not None:
        found = session.scalar(
            select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
        )
        if found is None:
            raise NotFound(f"no contact {contact_id} in this workspace", code="unknown_contact")
        contact = found
        channel = (
            _channel_of(session, workspace_id, channel_id)
            if channel_id is not None
            else _pick_channel_for(session, workspace_id, contact)
        )
    else:
        assert to is not None
        if channel_id is None:
            raise _field_error("channel_id", "needed when sending to a phone number")
        channel = _channel_of(session, workspace_id, channel_id)
        wa_id = _wa_id_of(to)
        if wa_id is None:
            raise _field_error("to", "not a valid phone number (use E.164, e.g. +5215512345678)")
        contact, _ = get_or_create_contact(
            session,
            workspace_id=workspace_id,
            wa_id=wa_id,
            source=ContactSource.API.value,
        )
    conversation, _ = get_or_create_conversation(
        session, workspace_id=workspace_id, channel_id=channel.id, contact_id=contact.id
    )
    return Recipient(channel, contact, conversation)


_DIGITS = re.compile(r"^\+?[1-9][0-9]{7,14}$")


def _wa_id_of(raw: str) -> str | None:
    e164 = to_e164(raw)
    if e164 is not None:
        return wa_id_from_e164(e164)
    # WhatsApp ids keep forms the numbering plan dropped (Mexico's "521..." mobiles), so
    # any plausible international number in digits is accepted as written.
    compact = re.sub(r"[\s().-]", "", raw)
    return compact.lstrip("+") if _DIGITS.match(compact) and compact.startswith("+") else None


def _address_of(session: Session, recipient: Recipient) -> str:
    # The wa_id this channel knows the person by wins: Meta may write it differently
    # (Brazil's ninth digit) from the number the contact was saved with.
    identity_wa_id = session.scalar(
        select(ContactIdentity.wa_id).where(
            ContactIdentity.channel_id == recipient.channel.id,
            ContactIdentity.contact_id == recipient.contact.id,
        )
    )
    wa_id = identity_wa_id or recipient.contact.wa_id
    if not wa_id:
        raise Conflict(
            "this contact has no WhatsApp number to send to", code="contact_without_number"
        )
    return "+" + wa_id.lstrip("+")


# -- the rules before sending ----------------------------------------------------------


def check_channel_can_send(channel: Channel) -> None:
    if channel.connection_state in SENDING_PAUSED_STATES:
        what = (
            "offboarded from the Cloud API"
            if channel.connection_state == ConnectionState.OFFBOARDED.value
            else "disconnected"
        )
        raise ChannelPaused(
            f"The number {channel.name} is {what}; sending is paused until it reconnects.",
            details={
                "channel_id": channel.id,
                "connection_state": channel.connection_state,
                "reason": channel.state_reason,
            },
        )


def window_is_open(conversation: Conversation, now: dt.datetime | None = None) -> bool:
    expires = conversation.window_expires_at
    return expires is not None and expires > (now or utcnow())


def check_window(conversation: Conversation, message_type: str, now: dt.datetime) -> None:
    """Outside the customer-service window only templates may go (Meta's 131047 otherwise)."""
    if message_type == "template" or window_is_open(conversation, now):
        return
    expires = conversation.window_expires_at
    when = (
        f"it closed at {expires.strftime('%Y-%m-%d %H:%M')} UTC"
        if expires is not None
        else "the customer has not written to this number yet"
    )
    raise WindowClosed(
        "The 24-hour customer service window is closed "
        f"({when}). Only an approved template can be sent now: "
        'send type "template" instead.',
        details={
            "window_expires_at": expires.isoformat() if expires else None,
            "alternative": "template",
        },
    )


def check_send(recipient: Recipient, message_type: str, now: dt.datetime | None = None) -> None:
    check_channel_can_send(recipient.channel)
    check_window(recipient.conversation, message_type, now or utcnow())


def check_content(
    *, to: str, message_type: str, content: Any, reply_to: str | None
) -> dict[str, Any]:
    """The Graph request body for this content; 422 naming the field if Meta would refuse it."""
    try:
        return build_payload(to=to, message_type=message_type, content=content, reply_to=reply_to)
    except SendValidationError as exc:
        raise InvalidInput(
            str(exc), details=[{"field": f, "message": m} for f, m in exc.problems]
        ) from None


# -- queueing --------------------------------------------------------------------------


def do_queue_message(
    session: Session,
    *,
    workspace_id: int,
    message_type: str,
    content: Any,
    conversation_id: int | None = None,
    contact_id: int | None = None,
    to: str | None = None,
    channel_id: int | None = None,
    reply_to: str | None = None,
    source: MessageSource = MessageSource.API,
    sender_user_id: int | None = None,
    priority: int = PRIORITY_REPLY,
    actor: Any = None,
) -> Message:
    """Check the rules, then store the message (queued) and its outbox item. A send by a
    person or an API token (`actor`) is audited; automated sends pass none."""
    recipient = resolve_recipient(
        session,
        workspace_id=workspace_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        to=to,
        channel_id=channel_id,
    )
    now = utcnow()
    payload = check_content(
        to=_address_of(session, recipient),
        message_type=message_type,
        content=content,
        reply_to=reply_to,
    )
    check_send(recipient, message_type, now)
    if message_type == "template":
        # Not approved, or marketing to a contact who opted out: refused before queueing.
        check_template_message(
            session, recipient.channel, recipient.contact.id, payload["template"]
        )
        # The messaging-limit tier applies to every template, not only broadcasts'.
        check_tier_room(session, recipient.channel, recipient.contact.id)
    wire = payload[message_type]
    text = preview_text(message_type, wire)
    if message_type == "template":
        # The list preview and search read what the customer reads, not the template's name.
        text = sent_text(session, recipient.channel, wire) or text
    message = Message(
        workspace_id=workspace_id,
        channel_id=recipient.channel.id,
        conversation_id=recipient.conversation.id,
        contact_id=recipient.contact.id,
        wamid=None,
        direction=Direction.OUTBOUND.value,
        source=source.value,
        type=message_type,
        # Message.content is an object; a contacts message is a list on the wire.
        content=wire if isinstance(wire, dict) else {message_type: wire},
        text=text,
        timestamp=now,
        status=MessageStatus.QUEUED.value,
        status_at=now,
        reply_to_wamid=reply_to,
        sender_user_id=sender_user_id,
        history=[],
    )
    session.add(message)
    session.flush()
    item = OutboxItem(
        workspace_id=workspace_id,
        channel_id=recipient.channel.id,
        message_id=message.id,
        conversation_id=recipient.conversation.id,
        priority=priority,
        state=OutboxState.QUEUED.value,
        payload=payload,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(item)
    _count(session, recipient.conversation, message)
    _touch_conversation(recipient.conversation, message)
    session.flush()
    publish(
        session,
        message_stored(
            message, message_id=message.id, conversation=recipient.conversation, outbox_id=item.id
        ),
    )
    OUTBOX.wake_after_commit(session)
    queued = metrics.get().outbox_queued.labels(channel=metrics.channel_label(item.channel_id))
    metrics.count_on_commit(session, queued)
    if actor is not None:
        _audit(session, actor, message, Action.MESSAGE_SENT, type=message_type)
    return message


def _audit(session: Session, actor: Any, message: Message, action: str, **details: Any) -> None:
    # Ids and the message type only: never the text.
    audit.record(
        session,
        workspace_id=message.workspace_id,
        actor=actor,
        action=action,
        target=f"message {message.id}",
        details={"conversation_id": message.conversation_id, **details},
    )


def _count(session: Session, conversation: Conversation, message: Message) -> None:
    """The message for reports; a person's reply also answers a waiting customer (before
    `_touch_conversation` stops the wait)."""
    facts.record(
        session,
        facts.Fact(
            kind=facts.Kind.MESSAGE,
            workspace_id=message.workspace_id,
            at=message.timestamp,
            channel_id=message.channel_id,
            team_id=conversation.team_id or 0,
            agent_id=message.sender_user_id or 0,
            source=message.source,
            label=message.type,
        ),
    )
    if message.source == MessageSource.AGENT.value:
        facts.answered(
            session,
            conversation,
            message.timestamp,
            source=message.source,
            agent_id=message.sender_user_id,
        )


def _touch_conversation(conversation: Conversation, message: Message) -> None:
    conversation.last_activity_at = message.timestamp
    conversation.last_message_id = message.id
    conversation.last_message_preview = (message.text or f"[{message.type}]")[:200]
    conversation.last_message_source = message.source
    if message.source == MessageSource.AGENT.value:
        conversation.waiting_since = None  # a person answered


# -- reading, cancelling, resending ----------------------------------------------------


def access_message(session: Session, workspace_id: int, message_id: int) -> Message:
    message = session.scalar(
        select(Message).where(Message.id == message_id, Message.workspace_id == workspace_id)
    )
    if message is None:
        raise NotFound(f"no message {message_id} in this workspace")
    return message


def access_outbox_item(session: Session, workspace_id: int, item_id: int) -> OutboxItem:
    item = session.scalar(
        select(OutboxItem).where(OutboxItem.id == item_id, OutboxItem.workspace_id == workspace_id)
    )
    if item is None:
        raise NotFound(f"no outbox item {item_id} in this workspace")
    return item


def item_of_message(session: Session, message: Message) -> OutboxItem | None:
    return session.scalar(select(OutboxItem).where(OutboxItem.message_id == message.id))


def shown_state(item: OutboxItem, now: dt.datetime | None = None) -> str:
    """The state people see: a SENDING item left by a dead worker after it was handed to
    HTTP reads "unknown" (one only claimed goes back to the queue by itself)."""
    if (
        item.state == OutboxState.SENDING.value
        and item.handed_at is not None
        and item.handed_at < (now or utcnow()) - UNKNOWN_AFTER
    ):
        return "unknown"
    return item.state


def set_message_status(
    session: Session, message: Message, status: MessageStatus, error: dict[str, Any] | None = None
) -> None:
    message.status = status.value
    message.status_at = utcnow()
    message.error = error
    publish(session, message_status_changed(message))


def do_recover_sent(
    session: Session, item: OutboxItem, message: Message, wamid: str, at: dt.datetime
) -> None:
    """A status webhook names this item (its `biz_opaque_callback_data`): Meta has the
    message although its answer never reached Puente. It is sent, with the wamid Meta
    gave it; the wait for a retry, or the failure after the last one, is over and its
    error goes (the webhook's own status, delivered or read, is applied next)."""
    message.wamid = wamid
    gave_up = item.state == OutboxState.FAILED.value and bool(
        (message.error or {}).get("retryable")
    )
    if item.state in (OutboxState.QUEUED.value, OutboxState.SENDING.value) or gave_up:
        item.state = OutboxState.SENT.value
        item.sent_at = item.sent_at or at
        item.last_error = None
        item.error_code = None
    waiting = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value)
    if message.status in waiting or (gave_up and message.status == MessageStatus.FAILED.value):
        message.status = MessageStatus.SENT.value
        message.status_at = at
        message.error = None
    session.flush()


def do_cancel(
    session: Session, *, workspace_id: int, message_id: int, actor: Any = None
) -> Message:
    """Cancel a message still waiting in the outbox; one being sent cannot be stopped."""
    message = access_message(session, workspace_id, message_id)
    item = item_of_message(session, message)
    if item is None or item.state != OutboxState.QUEUED.value:
        state = item.state if item is not None else message.status
        raise Conflict(
            f"only a queued message can be cancelled; this one is {state}", code="not_cancellable"
        )
    item.state = OutboxState.CANCELLED.value
    set_message_status(session, message, MessageStatus.CANCELLED)
    if actor is not None:
        _audit(session, actor, message, Action.MESSAGE_CANCELLED)
    return message


def do_resend(
    session: Session, *, workspace_id: int, item_id: int, actor: Any = None
) -> OutboxItem:
    """Queue again a failed item, or one whose send is unknown, after a person checked."""
    item = access_outbox_item(session, workspace_id, item_id)
    message = session.get(Message, item.message_id)
    assert message is not None  # the item is deleted with its message
    shown = shown_state(item)
    if message.wamid is not None or shown not in (OutboxState.FAILED.value, "unknown"):
        raise NotResendable(
            f"only a failed message, or one whose sending is unknown, can be sent again; "
            f"this one is {shown}"
        )
    check_channel_can_send(session.get(Channel, item.channel_id) or _gone(item))
    item.state = OutboxState.QUEUED.value
    item.next_attempt_at = utcnow()
    item.last_error = None
    item.error_code = None
    set_message_status(session, message, MessageStatus.QUEUED)
    OUTBOX.wake_after_commit(session)
    if actor is not None:
        _audit(session, actor, message, Action.MESSAGE_RESENT, outbox_id=item.id)
    return item


def _gone(item: OutboxItem) -> Channel:
    raise NotFound(f"the number of outbox item {item.id} no longer exists")


# -- summaries -------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneSummary:
    channel_id: int
    channel_name: str
    connection_state: str
    throughput_mps: int
    counts: dict[str, int]
    unknown: list[int]  # item ids whose sending is unknown


def outbox_summary(session: Session, workspace_id: int | None = None) -> list[LaneSummary]:
    """Items per state for each number (all workspaces when `workspace_id` is None)."""
    channels_q = select(Channel).order_by(Channel.id)
    counts_q = select(OutboxItem.channel_id, OutboxItem.state, func.count()).group_by(
        OutboxItem.channel_id, OutboxItem.state
    )
    sending_q = select(OutboxItem).where(
        OutboxItem.state == OutboxState.SENDING.value,
        OutboxItem.handed_at < utcnow() - UNKNOWN_AFTER,
    )
    if workspace_id is not None:
        channels_q = channels_q.where(Channel.workspace_id == workspace_id)
        counts_q = counts_q.where(OutboxItem.workspace_id == workspace_id)
        sending_q = sending_q.where(OutboxItem.workspace_id == workspace_id)
    counts: dict[int, dict[str, int]] = {}
    for channel_id, state, n in session.execute(counts_q):
        counts.setdefault(channel_id, {})[state] = n
    unknown: dict[int, list[int]] = {}
    for item in session.scalars(sending_q):
        unknown.setdefault(item.channel_id, []).append(item.id)
    return [
        LaneSummary(
            channel_id=c.id,
            channel_name=c.name,
            connection_state=c.connection_state,
            throughput_mps=c.throughput_mps,
            counts=counts.get(c.id, {}),
            unknown=unknown.get(c.id, []),
        )
        for c in session.scalars(channels_q)
    ]
