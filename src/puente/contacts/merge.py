"""Merging two contacts of a workspace into one, and splitting them back.

A merge moves every row that names the absorbed contact (found from the tables' columns,
so a table added later is moved too) to the kept one, records what moved in a
`ContactMerge`, and deletes the absorbed contact's row, kept whole in the record. A split
moves exactly those rows back and puts the row back, while nothing has been written
since that could belong to either of them (`split_blockers`). The rules are in
docs/contacts.md ("Merging and splitting contacts").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.channels.models import Channel
from puente.contacts.merge_rows import (
    chunks,
    column_key,
    contact_columns,
    from_json,
    table_rows,
    to_json,
    unique_sets,
)
from puente.contacts.models import (
    ConsentEvent,
    Contact,
    ContactIdentity,
    ContactMerge,
)
from puente.conversations.models import Conversation, ConversationEvent, Message, Note
from puente.db.base import Base, utcnow
from puente.errors import Conflict, InvalidInput, NotFound
from puente.events import ContactMerged, ContactUpdated, publish

MERGED = "contact.merged"  # audit actions
SPLIT = "contact.split"

KEEP, OTHER = "keep", "other"
# Two contacts on one number each have their own conversation and identity there, and
# Puente keeps one of each per contact and number: such a pair is refused.
ONE_PER_NUMBER = frozenset({"conversations", "contact_identities"})
# Where both contacts have a row for the same key, the newest of the two stays current.
NEWEST_WINS = {"contact_consents": "since"}


# -- fields ----------------------------------------------------------------------------------


def choosable_fields(keep: Contact, other: Contact) -> list[str]:
    """The fields a person picks between: the name and every custom field either has."""
    keys = sorted(set(keep.custom_fields or {}) | set(other.custom_fields or {}))
    return ["name", *(f"custom.{k}" for k in keys)]


def field_value(contact: Contact, field: str) -> Any:
    if field == "name":
        return contact.name
    return (contact.custom_fields or {}).get(field.removeprefix("custom."))


def default_choice(keep: Contact, other: Contact, field: str) -> str:
    """The kept contact's value, unless it has none and the other has one."""
    if field_value(keep, field) in (None, "") and field_value(other, field) not in (None, ""):
        return OTHER
    return KEEP


def check_choices(keep: Contact, other: Contact, choices: dict[str, str]) -> dict[str, str]:
    fields = choosable_fields(keep, other)
    for name, choice in choices.items():
        if name not in fields:
            raise InvalidInput(
                "Unknown field %(field)s: the fields to choose are %(fields)s.",
                params={"field": name, "fields": ", ".join(fields)},
                details=[{"field": "fields", "message": f"unknown field {name}"}],
            )
        if choice not in (KEEP, OTHER):
            raise InvalidInput(
                "Choose keep or other for %(field)s.",
                params={"field": name},
                details=[{"field": "fields", "message": f"{name}: keep or other"}],
            )
    return {f: choices.get(f) or default_choice(keep, other, f) for f in fields}


def _snapshot(contact: Contact) -> dict[str, Any]:
    """What a merge may change on the kept contact."""
    state: dict[str, Any] = {
        "name": contact.name,
        "wa_id": contact.wa_id,
        "phone_e164": contact.phone_e164,
        "profile_name": contact.profile_name,
        "business_app_name": contact.business_app_name,
        "sources": list(contact.sources or []),
        "legal_hold": contact.legal_hold,
    }
    for key, value in (contact.custom_fields or {}).items():
        state[f"custom.{key}"] = value
    return state


def _apply(contact: Contact, state: dict[str, Any], only: Iterable[str]) -> None:
    fields = dict(contact.custom_fields or {})
    for name in only:
        value = state.get(name)
        if name.startswith("custom."):
            if value is None:
                fields.pop(name.removeprefix("custom."), None)
            else:
                fields[name.removeprefix("custom.")] = value
        else:
            setattr(contact, name, value)
    contact.custom_fields = fields


def _merged_state(keep: Contact, other: Contact, choices: dict[str, str]) -> dict[str, Any]:
    state = _snapshot(keep)
    for name, choice in choices.items():
        state[name] = field_value(other if choice == OTHER else keep, name)
    # What the phone and WhatsApp say, and the number, fill gaps only.
    for name in ("profile_name", "business_app_name"):
        state[name] = state[name] or getattr(other, name)
    if not keep.wa_id and not keep.phone_e164:
        state["wa_id"], state["phone_e164"] = other.wa_id, other.phone_e164
    state["sources"] = list(dict.fromkeys([*(keep.sources or []), *(other.sources or [])]))
    state["legal_hold"] = keep.legal_hold or other.legal_hold
    return state


# -- checks ----------------------------------------------------------------------------------


def access_merge_pair(
    session: Session, workspace_id: int, keep_id: int, other_id: int
) -> tuple[Contact, Contact]:
    """Both contacts, from this workspace only (another's is not found), never the same."""
    if keep_id == other_id:
        raise InvalidInput(
            "A contact cannot be merged into itself.",
            code="same_contact",
            details=[{"field": "other_contact_id", "message": "the same contact"}],
        )
    return _access(session, workspace_id, keep_id), _access(session, workspace_id, other_id)


def _access(session: Session, workspace_id: int, contact_id: int) -> Contact:
    contact = session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    if contact is None:
        raise NotFound("No contact %(id)s in this workspace.", params={"id": contact_id})
    return contact


def shared_numbers(session: Session, keep: Contact, other: Contact) -> list[str]:
    """The numbers (channels) both contacts have their own identity or conversation on."""
    pairs = [(ContactIdentity, ContactIdentity.channel_id), (Conversation, Conversation.channel_id)]
    channels: set[int] = set()
    for model, channel in pairs:
        rows = session.execute(
            select(model.contact_id, channel).where(  # type: ignore[attr-defined]
                model.contact_id.in_([keep.id, other.id])  # type: ignore[attr-defined]
            )
        ).tuples()
        by_contact: dict[int, set[int]] = {keep.id: set(), other.id: set()}
        for contact_id, channel_id in rows:
            by_contact[contact_id].add(channel_id)
        channels |= by_contact[keep.id] & by_contact[other.id]
    if not channels:
        return []
    names = session.execute(
        select(Channel.display_phone_number).where(Channel.id.in_(channels))
    ).scalars()
    return sorted(f"+{n}" if n and not n.startswith("+") else (n or "?") for n in names)


def check_merge(session: Session, keep: Contact, other: Contact) -> None:
    shared = shared_numbers(session, keep, other)
    if shared:
        raise Conflict(
            "Both contacts have their own conversation on %(numbers)s: Puente keeps one "
            "conversation per contact and number, so they cannot be merged.",
            code="same_number",
            params={"numbers": ", ".join(shared)},
            details={"numbers": shared},
        )


# -- merge -----------------------------------------------------------------------------------


@dataclass
class _Moves:
    moved: dict[str, list[int]]
    follow: list[str]
    set_aside: dict[str, list[dict[str, Any]]]


def _move(
    session: Session, ws: int, keep_id: int, other_id: int, conversations: list[int]
) -> _Moves:
    moves = _Moves({}, [], {})
    for column in contact_columns():
        table = column.table
        assert isinstance(table, Table)
        owned = table.c.workspace_id == ws
        _set_aside_twins(session, table, column, ws, keep_id, other_id, moves)
        if "conversation_id" in table.c and table.name != "conversations" and conversations:
            # Messages and the like follow their conversation: by conversation, not by id.
            in_moved = table.c.conversation_id.in_(conversations)
            result = session.execute(
                update(table)
                .where(owned, column == other_id, in_moved)
                .values({column.name: keep_id})
            )
            if getattr(result, "rowcount", 0):
                moves.follow.append(column_key(column))
        ids = list(session.scalars(select(table.c.id).where(owned, column == other_id)))
        for chunk in chunks(ids):
            session.execute(
                update(table).where(owned, table.c.id.in_(chunk)).values({column.name: keep_id})
            )
        if ids:
            moves.moved[column_key(column)] = ids
    return moves


def _set_aside_twins(
    session: Session,
    table: Table,
    column: Column[Any],
    ws: int,
    keep_id: int,
    other_id: int,
    moves: _Moves,
) -> None:
    """Rows that cannot move because the kept contact has their twin (the same tag, the
    same consent scope): the older, or the absorbed contact's, is set aside whole."""
    for others in unique_sets(table, column):
        if table.name in ONE_PER_NUMBER:
            continue  # refused by check_merge
        rows = table_rows(
            session, table, (table.c.workspace_id == ws) & column.in_([keep_id, other_id])
        )
        kept = {tuple(r[n] for n in others): r for r in rows if r[column.name] == keep_id}
        newest = NEWEST_WINS.get(table.name)
        for row in [r for r in rows if r[column.name] == other_id]:
            twin = kept.get(tuple(row[n] for n in others))
            if twin is None:
                continue
            loser = row
            if newest and str(row[newest] or "") > str(twin[newest] or ""):
                loser = twin
            session.execute(delete(table).where(table.c.id == loser["id"]))
            moves.set_aside.setdefault(table.name, []).append(loser)


def do_merge_contacts(
    session: Session,
    keep: Contact,
    other: Contact,
    choices: dict[str, str] | None = None,
    *,
    actor: Any = None,
) -> ContactMerge:
    """Absorb `other` into `keep` (see the module's docstring)."""
    check_merge(session, keep, other)
    picked = check_choices(keep, other, choices or {})
    ws = keep.workspace_id
    before, after = _snapshot(keep), _merged_state(keep, other, picked)
    contacts = Base.metadata.tables["contacts"]
    merged_row = table_rows(session, contacts, contacts.c.id == other.id)[0]
    other_id, merged_wa_id, merged_name = other.id, other.wa_id, other.display_name
    session.flush()
    conversations = list(
        session.scalars(select(Conversation.id).where(Conversation.contact_id == other_id))
    )
    moves = _move(session, ws, keep.id, other_id, conversations)
    session.expunge(other)
    session.execute(
        delete(contacts).where(contacts.c.workspace_id == ws, contacts.c.id == other_id)
    )
    session.expire_all()
    _apply(keep, after, after.keys() | before.keys())
    merge = ContactMerge(
        workspace_id=ws,
        contact_id=keep.id,
        merged_contact_id=other_id,
        merged_wa_id=merged_wa_id,
        merged_name=merged_name[:200] or None,
        merged_row=merged_row,
        moved=moves.moved,
        moved_conversations=conversations,
        follow_conversations=moves.follow,
        set_aside=moves.set_aside,
        fields_before={k: to_json(v) for k, v in before.items()},
        fields_after={k: to_json(v) for k, v in after.items()},
        by_user_id=getattr(actor, "user_id", None),
        by_label=_label(actor),
    )
    session.add(merge)
    session.flush()
    publish(session, ContactMerged(workspace_id=ws, contact_id=keep.id, merged_contact_id=other_id))
    _audit(session, actor, merge, MERGED, fields=sorted(f for f, c in picked.items() if c == OTHER))
    return merge


def _label(actor: Any) -> str | None:
    if actor is None:
        return None
    return str(actor if isinstance(actor, str) else getattr(actor, "label", "") or "")[:200]


def _audit(session: Session, actor: Any, merge: ContactMerge, action: str, **details: Any) -> None:
    counts = {key: len(ids) for key, ids in (merge.moved or {}).items()}
    audit.record(
        session,
        workspace_id=merge.workspace_id,
        actor=actor,
        action=action,
        target=f"contact {merge.contact_id}",
        details={
            "merge_id": merge.id,
            "merged_contact_id": merge.merged_contact_id,
            "moved": counts,
            "conversations": len(merge.moved_conversations or []),
            **details,
        },
    )


# -- split -----------------------------------------------------------------------------------


def access_merge(
    session: Session, workspace_id: int, contact_id: int, merge_id: int
) -> ContactMerge:
    merge = session.scalar(
        select(ContactMerge).where(
            ContactMerge.id == merge_id,
            ContactMerge.workspace_id == workspace_id,
            or_(
                ContactMerge.contact_id == contact_id, ContactMerge.merged_contact_id == contact_id
            ),
        )
    )
    if merge is None:
        raise NotFound("No merge %(id)s of this contact.", params={"id": merge_id})
    return merge


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Blocker:
    """Why a merge can no longer be split: an English msgid with its values."""

    template: str
    params: dict[str, Any]

    @property
    def message(self) -> str:
        return self.template % self.params


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)


def split_blockers(session: Session, merge: ContactMerge) -> list[Blocker]:
    """What was written since the merge that could belong to either contact."""
    if merge.split_at is not None:
        return [Blocker(N_("This merge cannot be split: it was split already."), {})]
    since, kept = merge.merged_at, merge.contact_id
    blockers: list[Blocker] = []
    later = session.scalar(
        select(ContactMerge.merged_name).where(
            ContactMerge.contact_id == kept,
            ContactMerge.split_at.is_(None),
            ContactMerge.id > merge.id,
        )
    )
    if later is not None:
        blockers.append(
            Blocker(
                N_("This merge cannot be split: split the later merge with %(name)s first."),
                {"name": later},
            )
        )
    moved = merge.moved_conversations or []
    if moved:
        written = sum(
            _count(
                session,
                select(func.count()).where(
                    model.conversation_id.in_(moved), model.created_at > since
                ),
            )
            for model in (Message, Note, ConversationEvent)
        )
        if written:
            blockers.append(
                Blocker(
                    N_(
                        "This merge cannot be split: %(count)s messages, notes or events were "
                        "written in the conversations that came from %(name)s since the merge."
                    ),
                    {"count": written, "name": merge.merged_name or "?"},
                )
            )
    started = _count(
        session,
        select(func.count()).where(
            Conversation.contact_id == kept, Conversation.created_at > since
        ),
    ) + _count(
        session,
        select(func.count()).where(
            ContactIdentity.contact_id == kept, ContactIdentity.created_at > since
        ),
    )
    if started:
        blockers.append(
            Blocker(
                N_(
                    "This merge cannot be split: a conversation or number was added to the "
                    "merged contact since the merge, and it cannot be told which of the two it "
                    "belongs to."
                ),
                {},
            )
        )
    consents = _count(
        session,
        select(func.count()).where(ConsentEvent.contact_id == kept, ConsentEvent.at > since),
    )
    if consents:
        blockers.append(
            Blocker(
                N_(
                    "This merge cannot be split: consent was recorded for the merged contact "
                    "since the merge."
                ),
                {},
            )
        )
    if merge.merged_wa_id:
        taken = session.scalar(
            select(Contact.id).where(Contact.wa_id == merge.merged_wa_id, Contact.id != kept)
        )
        if taken is not None:
            blockers.append(
                Blocker(
                    N_(
                        "This merge cannot be split: contact %(id)s has the absorbed "
                        "contact's number now."
                    ),
                    {"id": taken},
                )
            )
    return blockers


def do_split_merge(session: Session, merge: ContactMerge, *, actor: Any = None) -> Contact:
    """Undo `merge`: the absorbed contact comes back with exactly what moved."""
    blockers = split_blockers(session, merge)
    if blockers:
        first = blockers[0]
        raise Conflict(
            first.template,
            code="split_refused",
            params=first.params,
            details={"reasons": [b.message for b in blockers]},
        )
    ws, kept_id, other_id = merge.workspace_id, merge.contact_id, merge.merged_contact_id
    kept = session.get(Contact, kept_id)
    if kept is None:
        raise NotFound("No contact %(id)s in this workspace.", params={"id": kept_id})
    _restore_fields(kept, merge)
    session.flush()
    contacts = Base.metadata.tables["contacts"]
    session.execute(insert(contacts).values(from_json(contacts, merge.merged_row)))
    tables = Base.metadata.tables
    for key in merge.follow_conversations or []:
        name, column = key.split(".")
        table = tables[name]
        session.execute(
            update(table)
            .where(
                table.c.workspace_id == ws,
                table.c[column] == kept_id,
                table.c.conversation_id.in_(merge.moved_conversations),
            )
            .values({column: other_id})
        )
    for key, ids in (merge.moved or {}).items():
        name, column = key.split(".")
        table = tables[name]
        for chunk in chunks(ids):
            session.execute(
                update(table)
                .where(table.c.workspace_id == ws, table.c.id.in_(chunk))
                .values({column: other_id})
            )
    for name, rows in (merge.set_aside or {}).items():
        table = tables[name]
        for row in rows:
            session.execute(insert(table).values(from_json(table, row)))
    session.expire_all()
    merge.split_at = utcnow()
    merge.split_by_label = _label(actor)
    session.flush()
    for contact_id in (kept_id, other_id):
        publish(session, ContactUpdated(workspace_id=ws, contact_id=contact_id))
    _audit(session, actor, merge, SPLIT)
    restored = session.get(Contact, other_id)
    assert restored is not None
    return restored


def _restore_fields(kept: Contact, merge: ContactMerge) -> None:
    """Each field the merge changed goes back, unless someone changed it since."""
    before, after = merge.fields_before or {}, merge.fields_after or {}
    now = {k: to_json(v) for k, v in _snapshot(kept).items()}
    back = [k for k in before.keys() | after.keys() if now.get(k) == after.get(k)]
    _apply(kept, before, back)
