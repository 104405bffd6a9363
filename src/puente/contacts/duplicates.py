"""Contacts that look like one person, listed for someone to review and merge: the same
number written another way (E.164 through `phonenumbers`, and the Brazilian, Mexican and
Argentine mobile digit that WhatsApp ids carry or drop), the same parent BSUID, or the
same e-mail (the custom field "email")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.contacts.models import Contact, ContactIdentity
from puente.contacts.phones import to_e164
from puente.contacts.resolve import digits_of, wa_id_variants

SAME_NUMBER, SAME_PARENT_BSUID, SAME_EMAIL = "same_number", "same_parent_bsuid", "same_email"


@dataclass(frozen=True)
class Suggestion:
    reason: str  # one of the three above
    key: str  # the number, parent BSUID or e-mail they share
    contacts: tuple[Contact, ...]  # oldest first: the first is the one to keep by default


def _number_key(contact: Contact) -> str | None:
    raw = contact.phone_e164 or (f"+{contact.wa_id}" if contact.wa_id else None)
    e164 = to_e164(raw) if raw else None
    if e164 is None:
        return None
    digits = digits_of(e164)
    return "+" + min([digits, *wa_id_variants(digits)], key=lambda d: (len(d), d))


def _email_key(contact: Contact) -> str | None:
    value = (contact.custom_fields or {}).get("email")
    if not isinstance(value, str) or "@" not in value:
        return None
    return value.strip().lower()


def find_duplicates(session: Session, workspace_id: int, *, limit: int = 200) -> list[Suggestion]:
    """Groups of two or more contacts that share a number, a parent BSUID or an e-mail."""
    contacts = list(
        session.scalars(
            select(Contact).where(Contact.workspace_id == workspace_id).order_by(Contact.id)
        )
    )
    by_id = {c.id: c for c in contacts}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for contact in contacts:
        number, email = _number_key(contact), _email_key(contact)
        if number:
            groups[(SAME_NUMBER, number)].append(contact.id)
        if email:
            groups[(SAME_EMAIL, email)].append(contact.id)
    for parent, contact_id in _parent_bsuids(session, workspace_id):
        if contact_id not in groups[(SAME_PARENT_BSUID, parent)]:
            groups[(SAME_PARENT_BSUID, parent)].append(contact_id)
    suggestions = [
        Suggestion(reason, key, tuple(by_id[i] for i in sorted(ids) if i in by_id))
        for (reason, key), ids in groups.items()
        if len(set(ids)) > 1
    ]
    suggestions.sort(key=lambda s: (s.contacts[0].id, s.reason))
    return suggestions[:limit]


def _parent_bsuids(session: Session, workspace_id: int) -> list[tuple[str, int]]:
    shared = (
        select(ContactIdentity.parent_bsuid)
        .where(
            ContactIdentity.workspace_id == workspace_id,
            ContactIdentity.parent_bsuid.is_not(None),
        )
        .group_by(ContactIdentity.parent_bsuid)
        .having(func.count(func.distinct(ContactIdentity.contact_id)) > 1)
    )
    rows = session.execute(
        select(ContactIdentity.parent_bsuid, ContactIdentity.contact_id).where(
            ContactIdentity.workspace_id == workspace_id,
            ContactIdentity.parent_bsuid.in_(shared),
        )
    ).tuples()
    return [(parent, contact_id) for parent, contact_id in rows if parent]
