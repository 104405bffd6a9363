"""What happened with a contact, for the contact page: its conversations on each number
(with message counts) and one activity timeline merging the inbox's conversation events,
private notes and consent changes. Only conversations the viewer may see are included."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor, conversation_scope
from puente.accounts.models import User
from puente.channels.models import Channel
from puente.contacts.models import ConsentEvent, Contact, ContactMerge
from puente.conversations.models import Conversation, ConversationEvent, Message, Note

TIMELINE_LIMIT = 100


@dataclass
class ConversationSummary:
    id: int
    channel_name: str
    channel_phone: str
    status: str
    last_activity_at: dt.datetime | None
    assignee_name: str | None
    messages: int = 0
    # Message counts by source: customer, agent, business_app, bot, broadcast, history, api.
    by_source: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    kind: str  # an inbox event kind (assigned, closed...), "note", "opt_in"/"opt_out", "created"
    conversation_id: int | None
    who: str | None
    data: dict[str, Any]


def user_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
    return {key: value for key, value in rows.tuples()}


def contact_conversations(
    session: Session, actor: Actor, contact: Contact
) -> list[ConversationSummary]:
    """The contact's conversations the actor may see, most recent first, with counts."""
    rows = session.execute(
        select(Conversation, Channel.name, Channel.display_phone_number)
        .join(Channel, Channel.id == Conversation.channel_id)
        .where(Conversation.contact_id == contact.id, conversation_scope(actor))
        .order_by(Conversation.last_activity_at.desc().nulls_last(), Conversation.id.desc())
    ).all()
    names = user_names(session, {c.assignee_id for c, _, _ in rows if c.assignee_id})
    summaries = {
        c.id: ConversationSummary(
            id=c.id,
            channel_name=name,
            channel_phone=phone,
            status=c.status,
            last_activity_at=c.last_activity_at,
            assignee_name=names.get(c.assignee_id) if c.assignee_id else None,
        )
        for c, name, phone in rows
    }
    if summaries:
        counts = session.execute(
            select(Message.conversation_id, Message.source, func.count())
            .where(Message.conversation_id.in_(list(summaries)))
            .group_by(Message.conversation_id, Message.source)
        ).tuples()
        for conversation_id, source, count in counts:
            summary = summaries[conversation_id]
            summary.by_source[source] = int(count)
            summary.messages += int(count)
    return list(summaries.values())


def contact_timeline(
    session: Session,
    actor: Actor,
    contact: Contact,
    conversation_ids: list[int],
    *,
    limit: int = TIMELINE_LIMIT,
) -> list[TimelineEntry]:
    """Newest first: inbox events and notes of the visible conversations, consent changes,
    and the contact's creation."""
    entries: list[TimelineEntry] = []
    user_ids: set[int] = set()
    raw: list[tuple[dt.datetime, str, int | None, int | None, str | None, dict[str, Any]]] = []
    if conversation_ids:
        for e in session.scalars(
            select(ConversationEvent)
            .where(
                ConversationEvent.workspace_id == actor.workspace_id,
                ConversationEvent.conversation_id.in_(conversation_ids),
            )
            .order_by(ConversationEvent.created_at.desc())
            .limit(limit)
        ):
            raw.append((e.created_at, e.kind, e.conversation_id, e.actor_id, None, e.data or {}))
        for n in session.scalars(
            select(Note)
            .where(
                Note.workspace_id == actor.workspace_id, Note.conversation_id.in_(conversation_ids)
            )
            .order_by(Note.created_at.desc())
            .limit(limit)
        ):
            raw.append(
                (n.created_at, "note", n.conversation_id, n.author_id, None, {"body": n.body})
            )
    for c in session.scalars(
        select(ConsentEvent)
        .where(
            ConsentEvent.workspace_id == actor.workspace_id, ConsentEvent.contact_id == contact.id
        )
        .order_by(ConsentEvent.at.desc())
        .limit(limit)
    ):
        raw.append(
            (c.at, c.kind, None, c.by_user_id, c.by_label, {"source": c.source, "note": c.note})
        )
    raw.append((contact.created_at, "created", None, None, None, {"sources": contact.sources}))
    raw.extend(_merge_entries(session, contact))
    user_ids = {r[3] for r in raw if r[3]}
    names = user_names(session, user_ids)
    for at, kind, conversation_id, user_id, label, data in raw:
        who = names.get(user_id) if user_id else label
        entries.append(TimelineEntry(at, kind, conversation_id, who, data))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def _merge_entries(
    session: Session, contact: Contact
) -> list[tuple[dt.datetime, str, int | None, int | None, str | None, dict[str, Any]]]:
    """The merges the contact kept ("merged", with its split when undone) or was split
    back out of ("split_out")."""
    entries: list[tuple[dt.datetime, str, int | None, int | None, str | None, dict[str, Any]]]
    entries = []
    for m in session.scalars(
        select(ContactMerge).where(
            or_(ContactMerge.contact_id == contact.id, ContactMerge.merged_contact_id == contact.id)
        )
    ):
        data = {
            "merge_id": m.id,
            "name": m.merged_name,
            "kept_id": m.contact_id,
            "split": m.split_at is not None,
        }
        if m.contact_id == contact.id:
            entries.append((m.merged_at, "merged", None, m.by_user_id, m.by_label, data))
            if m.split_at is not None:
                entries.append((m.split_at, "split", None, None, m.split_by_label, data))
        elif m.split_at is not None:
            entries.append((m.split_at, "split_out", None, None, m.split_by_label, data))
    return entries
