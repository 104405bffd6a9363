"""Storing messages that come from WhatsApp (customers, echoes of the owner's phone,
imported history) and what they do to their conversations.

Built for batches: one webhook change is resolved to contacts and conversations in a
few queries and its messages are inserted at once, skipping wamids already stored, so
processing the same change twice (or its messages in any order) gives the same rows.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactIdentity
from puente.contacts.resolve import (
    Person,
    Resolved,
    merge_people,
    refresh_contact,
    refresh_identity,
    resolve_people,
)
from puente.contacts.service import note_new_contact
from puente.conversations.edits import apply_pending_ops
from puente.conversations.events import conversation_updated, message_stored
from puente.conversations.incoming import NewMessage, Stored, preview_of, remember_stored
from puente.conversations.media import create_media
from puente.conversations.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageSource,
)
from puente.conversations.notifications import notify_new_messages
from puente.conversations.replies import take_reply, was_taken
from puente.conversations.statuses import apply_pending_statuses
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.events import ContactCreated, ConversationOpened, publish
from puente.reports import facts

SERVICE_WINDOW = dt.timedelta(hours=24)
# A conversation started from a click-to-WhatsApp ad or a Page CTA is a free entry point.
FREE_ENTRY_POINT_WINDOW = dt.timedelta(hours=72)
# Types that tell something about the chat but are not a customer writing to the business:
# they neither open the service window nor count as unread.
QUIET_TYPES = frozenset({"system"})
# How long bots and workflows keep out of a conversation the owner answered from the
# phone, unless the number says otherwise (channel setting "owner_pause_minutes").
OWNER_PAUSE_MINUTES = 60


@dataclass
class StoreResult:
    stored: list[Stored] = field(default_factory=list)
    duplicates: int = 0
    people: dict[str, Resolved] = field(default_factory=dict)
    conversations: dict[int, Conversation] = field(default_factory=dict)


def resolve_conversations(
    session: Session, channel: Channel, contact_ids: Iterable[int], *, status: str
) -> dict[int, Conversation]:
    """The conversation of each contact on `channel`, created (with `status`) if new."""
    ids = set(contact_ids)
    if not ids:
        return {}
    query = select(Conversation).where(
        Conversation.channel_id == channel.id, Conversation.contact_id.in_(ids)
    )
    found = {c.contact_id: c for c in session.scalars(query)}
    missing = ids - found.keys()
    if missing:
        now = utcnow()
        rows = [
            {
                "workspace_id": channel.workspace_id,
                "channel_id": channel.id,
                "contact_id": contact_id,
                "status": status,
                "labels": [],
                "created_at": now,
                "updated_at": now,
            }
            for contact_id in sorted(missing)
        ]
        session.execute(insert_ignore(session, Conversation, ["channel_id", "contact_id"]), rows)
        found.update({c.contact_id: c for c in session.scalars(query)})
    return found


@functools.cache
def _known_people_query() -> Any:
    # Built once: constructing the expression costs more than running it on the hot path.
    channel_id: Any = bindparam("channel_id")
    return (
        select(Contact, ContactIdentity, Conversation)
        .outerjoin(
            ContactIdentity,
            and_(
                ContactIdentity.contact_id == Contact.id, ContactIdentity.channel_id == channel_id
            ),
        )
        .outerjoin(
            Conversation,
            and_(Conversation.contact_id == Contact.id, Conversation.channel_id == channel_id),
        )
        .where(
            Contact.workspace_id == bindparam("workspace_id"),
            Contact.wa_id.in_(bindparam("wa_ids", expanding=True)),
        )
    )


def _known_people(
    session: Session, channel: Channel, people: dict[str, Person]
) -> tuple[dict[str, Resolved], dict[int, Conversation]] | None:
    """The usual case in one query: everyone already has a contact, an identity on this
    channel and a conversation. None when anyone is missing (the general path decides)."""
    if any(not p.wa_id or p.key != p.wa_id for p in people.values()):
        return None
    rows = session.execute(
        _known_people_query(),
        {"channel_id": channel.id, "workspace_id": channel.workspace_id, "wa_ids": list(people)},
    ).tuples()
    resolved: dict[str, Resolved] = {}
    conversations: dict[int, Conversation] = {}
    for contact, identity, conversation in rows:
        if identity is None or conversation is None or contact.wa_id not in people:
            return None
        person = people[contact.wa_id]
        refresh_contact(person, contact)
        refresh_identity(person, identity)
        resolved[person.key] = Resolved(contact, identity, created=False)
        conversations[contact.id] = conversation
    return (resolved, conversations) if len(resolved) == len(people) else None


def store_messages(
    session: Session,
    channel: Channel,
    items: Sequence[NewMessage],
    *,
    contact_source: str,
    conversation_status: str = ConversationStatus.OPEN.value,
    emit_events: bool = True,
) -> StoreResult:
    """Insert the messages not stored yet and update their conversations.

    `contact_source` is given to contacts first seen here; `conversation_status` to new
    conversations. History imports pass `emit_events=False`: they publish one progress
    event per chunk instead of one per message.
    """
    result = StoreResult()
    unique: dict[str, NewMessage] = {}
    for item in items:
        unique.setdefault(item.wamid, item)
    result.duplicates = len(items) - len(unique)
    if not unique:
        return result
    people = merge_people(m.person for m in unique.values())
    known = _known_people(session, channel, people)
    if known is not None:
        result.people, conversations = known
    else:
        result.people = resolve_people(
            session,
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            people=people.values(),
            source=contact_source,
        )
        contact_ids = {r.contact.id for r in result.people.values()}
        conversations = resolve_conversations(
            session, channel, contact_ids, status=conversation_status
        )
    result.conversations = {c.id: c for c in conversations.values()}

    rows = []
    for item in unique.values():
        contact = result.people[item.person.key].contact
        rows.append(_message_row(channel, conversations[contact.id], contact.id, item))
    stmt = insert_ignore(session, Message, ["wamid"]).returning(
        Message.__table__.c.id, Message.__table__.c.wamid
    )
    ids_by_wamid = {wamid: mid for mid, wamid in session.execute(stmt, rows).tuples()}
    result.duplicates += len(unique) - len(ids_by_wamid)

    for wamid, message_id in ids_by_wamid.items():
        item = unique[wamid]
        contact = result.people[item.person.key].contact
        result.stored.append(Stored(message_id, item, conversations[contact.id]))
    result.stored.sort(key=lambda s: (s.message.timestamp, s.id))

    create_media(
        session,
        channel,
        [(s.id, s.message.media) for s in result.stored if s.message.media is not None],
    )
    for stored in result.stored:
        _touch_conversation(session, stored, channel)
    _count(session, channel, result, history=not emit_events)
    if ids_by_wamid:
        apply_pending_ops(session, channel, ids_by_wamid, emit_events=emit_events)
        outbound = [w for w, _ in ids_by_wamid.items() if unique[w].direction == "outbound"]
        apply_pending_statuses(session, outbound, emit_events=emit_events)
    if emit_events:
        _publish_created(session, result)
        # Imports pass emit_events=False: history never notifies anyone.
        notify_new_messages(session, [s for s in result.stored if not was_taken(session, s.id)])
    return result


def _message_row(
    channel: Channel, conversation: Conversation, contact_id: int, item: NewMessage
) -> dict[str, Any]:
    return {
        "workspace_id": channel.workspace_id,
        "channel_id": channel.id,
        "conversation_id": conversation.id,
        "contact_id": contact_id,
        "wamid": item.wamid,
        "direction": item.direction,
        "source": item.source,
        "type": item.type,
        "content": item.content,
        "text": item.text,
        "timestamp": item.timestamp,
        "status": item.status,
        "status_at": item.timestamp,
        "error": item.error,
        "pricing": None,
        "reply_to_wamid": item.reply_to_wamid,
        "context": item.context,
        "referral": item.referral,
        "edited": False,
        "revoked": False,
        "history": [],
        "raw": item.raw,
        "created_at": utcnow(),
    }


def _later(current: dt.datetime | None, candidate: dt.datetime) -> bool:
    return current is None or candidate >= current


def _touch_conversation(session: Session, stored: Stored, channel: Channel) -> None:
    conversation, item = stored.conversation, stored.message
    if _later(conversation.last_activity_at, item.timestamp):
        conversation.last_activity_at = item.timestamp
        conversation.last_message_id = stored.id
        conversation.last_message_preview = preview_of(item)
        conversation.last_message_source = item.source
    if item.source == MessageSource.CUSTOMER.value:
        new = conversation.last_inbound_at is None
        was_closed = conversation.status == ConversationStatus.RESOLVED.value
        stored.opened = _customer_wrote(session, stored)
        if stored.opened and (new or was_closed):
            facts.opened(
                session, conversation, item.timestamp, reopened=not new, source=item.source
            )
            publish(
                session,
                ConversationOpened(
                    workspace_id=conversation.workspace_id,
                    conversation_id=conversation.id,
                    channel_id=conversation.channel_id,
                    contact_id=conversation.contact_id,
                    reopened=not new,
                    source=item.source,
                ),
            )
        elif stored.opened or (conversation.opened_at is None and conversation.waiting_since):
            # A snoozed conversation woke, or one from before reports began: the same
            # cycle goes on (it has no start to count a first response from yet).
            conversation.opened_at = conversation.opened_at or item.timestamp
    elif item.source == MessageSource.BUSINESS_APP.value:
        # The owner answering from the phone is the business answering.
        facts.answered(session, conversation, item.timestamp, source=item.source, agent_id=None)
        _owner_wrote(conversation, item, channel)
    # History only moves the activity time and preview above: imported chats never
    # open a service window (only messages after onboarding do) nor wake anyone up.


def _count(session: Session, channel: Channel, result: StoreResult, *, history: bool) -> None:
    """The stored messages for reports (duplicates never reach here): by who sent them
    and their type; what the owner's phone sent is free. Imported history counts here and
    nowhere else, and so do the contacts it brought."""
    for stored in result.stored:
        item = stored.message
        base = facts.Fact(
            kind=facts.Kind.MESSAGE,
            workspace_id=channel.workspace_id,
            at=item.timestamp,
            channel_id=channel.id,
            team_id=stored.conversation.team_id or 0,
            source=item.source,
            label=item.type,
        )
        facts.record(session, base)
        if item.source == MessageSource.BUSINESS_APP.value:
            facts.record(
                session, replace(base, kind=facts.Kind.PRICING, source="app", label="business_app:")
            )
    if history:
        for resolved in result.people.values():
            if resolved.created:
                facts.record(
                    session,
                    facts.Fact(
                        kind=facts.Kind.CONTACT,
                        workspace_id=channel.workspace_id,
                        at=utcnow(),
                        channel_id=channel.id,
                        source=(resolved.contact.sources or ["history"])[0],
                    ),
                )


def _customer_wrote(session: Session, stored: Stored) -> bool:
    """Returns whether this message began the conversation or reopened it."""
    conversation, item = stored.conversation, stored.message
    if item.type in QUIET_TYPES or item.direction != Direction.INBOUND.value:
        return False
    if item.type == "reaction" and not item.text:
        return False  # a removed reaction is not something to answer
    opened = conversation.last_inbound_at is None
    if _later(conversation.last_inbound_at, item.timestamp):
        conversation.last_inbound_at = item.timestamp
    window = FREE_ENTRY_POINT_WINDOW if item.referral else SERVICE_WINDOW
    expires = item.timestamp + window
    if _later(conversation.window_expires_at, expires):
        conversation.window_expires_at = expires
    if conversation.status == ConversationStatus.RESOLVED.value and take_reply(
        session, conversation, item, stored.id
    ):
        return False  # the survey's answer (reports.csat): the conversation stays closed
    conversation.unread_count = (conversation.unread_count or 0) + 1
    if conversation.waiting_since is None:
        conversation.waiting_since = item.timestamp
    if conversation.status in (ConversationStatus.RESOLVED.value, ConversationStatus.SNOOZED.value):
        conversation.status = ConversationStatus.OPEN.value
        conversation.snoozed_until = None
        opened = True
    return opened


def _owner_wrote(conversation: Conversation, item: NewMessage, channel: Channel) -> None:
    # The owner answered from the phone: the customer is no longer waiting, and the bot
    # steps back unless the channel says otherwise. The service window is untouched.
    if conversation.waiting_since is not None and item.timestamp >= conversation.waiting_since:
        conversation.waiting_since = None
    settings = channel.settings or {}
    if settings.get("pause_bot_on_owner_reply", True):
        conversation.bot_paused = True
        # For a while (the number's setting, in minutes; 0: until someone resumes it),
        # then bots and workflows come back by themselves.
        minutes = int(settings.get("owner_pause_minutes", OWNER_PAUSE_MINUTES) or 0)
        conversation.bot_paused_until = (
            item.timestamp + dt.timedelta(minutes=minutes) if minutes > 0 else None
        )
    if _later(channel.last_phone_activity_at, item.timestamp):
        channel.last_phone_activity_at = item.timestamp


def _publish_created(session: Session, result: StoreResult) -> None:
    touched: dict[int, Conversation] = {}
    for stored in result.stored:
        touched[stored.conversation.id] = stored.conversation
        remember_stored(session, stored)
        publish(
            session,
            message_stored(
                stored.message,
                message_id=stored.id,
                conversation=stored.conversation,
                opened=stored.opened,
            ),
        )
    for conversation in touched.values():
        publish(session, conversation_updated(conversation, None))
    for resolved in result.people.values():
        if resolved.created:
            contact = resolved.contact
            note_new_contact(session, contact.id)
            publish(
                session, ContactCreated(workspace_id=contact.workspace_id, contact_id=contact.id)
            )
