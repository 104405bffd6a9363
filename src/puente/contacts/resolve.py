"""Finding (or creating) the contacts behind a batch of webhook messages in a few queries.

A person is known by a WhatsApp id (digits) and/or a business-scoped user id (BSUID).
WhatsApp ids of Brazil, Mexico and Argentina mobiles are matched with and without
their extra mobile digit, because echoes and older contacts can carry either form;
the raw id Meta sent is what a new contact keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.contacts.models import Contact, ContactIdentity, ContactMerge
from puente.contacts.phones import to_e164
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore


def wa_id_variants(wa_id: str) -> list[str]:
    """Other spellings of the same mobile number that WhatsApp ids are seen with."""
    n = len(wa_id)
    variants: list[str] = []
    # Brazil: 55 + area (2) + 9 + 8 digits; echoes can lack the ninth digit.
    if wa_id.startswith("55"):
        if n == 13 and wa_id[4] == "9":
            variants.append(wa_id[:4] + wa_id[5:])
        elif n == 12 and wa_id[4] in "6789":
            variants.append(wa_id[:4] + "9" + wa_id[4:])
    # Mexico: 52 1 + 10 digits (old mobile prefix) or 52 + 10 digits.
    elif wa_id.startswith("52"):
        if n == 13 and wa_id[2] == "1":
            variants.append("52" + wa_id[3:])
        elif n == 12:
            variants.append("521" + wa_id[2:])
    # Argentina: 54 9 + 10 digits for mobiles, sometimes written without the 9.
    elif wa_id.startswith("54"):
        if n == 13 and wa_id[2] == "9":
            variants.append("54" + wa_id[3:])
        elif n == 12:
            variants.append("549" + wa_id[2:])
    return variants


def digits_of(raw: str) -> str:
    return "".join(ch for ch in raw if ch.isdigit())


@dataclass(frozen=True)
class Person:
    """Someone a webhook talks about, as the wire names them."""

    wa_id: str | None
    bsuid: str | None = None
    parent_bsuid: str | None = None
    username: str | None = None
    profile_name: str | None = None

    @property
    def key(self) -> str:
        return self.wa_id if self.wa_id else f"bsuid:{self.bsuid}"


@dataclass
class Resolved:
    contact: Contact
    identity: ContactIdentity
    created: bool


def merge_people(people: Iterable[Person]) -> dict[str, Person]:
    """One Person per key, later mentions filling in what earlier ones lacked."""
    merged: dict[str, Person] = {}
    for person in people:
        if not person.wa_id and not person.bsuid:
            continue
        prev = merged.get(person.key)
        if prev is None:
            merged[person.key] = person
        else:  # later mentions fill in what earlier ones lacked
            merged[person.key] = Person(
                wa_id=prev.wa_id,
                bsuid=person.bsuid or prev.bsuid,
                parent_bsuid=person.parent_bsuid or prev.parent_bsuid,
                username=person.username or prev.username,
                profile_name=person.profile_name or prev.profile_name,
            )
    return merged


def resolve_people(
    session: Session,
    *,
    workspace_id: int,
    channel_id: int,
    people: Iterable[Person],
    source: str,
) -> dict[str, Resolved]:
    """The contact and channel identity of every person, keyed by `Person.key`.

    New contacts get `source`; existing ones gain it in their sources only when the
    source is the Business app (the owner's address book is worth showing). A changed
    WhatsApp profile name is updated.
    """
    wanted = merge_people(people)
    if not wanted:
        return {}
    by_wa_id = _contacts_by_wa_id(session, workspace_id, wanted.values())
    by_bsuid = _identities_by_bsuid(session, channel_id, wanted.values())

    found: dict[str, Contact] = {}
    missing: list[Person] = []
    for key, person in wanted.items():
        contact = _match(person, by_wa_id, by_bsuid, session)
        if contact is None:
            missing.append(person)
        else:
            found[key] = contact
    if missing:
        missing = _absorbed(session, workspace_id, channel_id, missing, found)
    created_keys = _create_contacts(session, workspace_id, missing, source, found)

    identities = _ensure_identities(session, workspace_id, channel_id, wanted, found)
    result: dict[str, Resolved] = {}
    for key, contact in found.items():
        person = wanted[key]
        refresh_contact(person, contact)
        if person.wa_id and contact.wa_id is None and person.wa_id not in by_wa_id:
            # A BSUID-only contact whose number is now known.
            contact.wa_id = person.wa_id
            contact.phone_e164 = to_e164(person.wa_id)
        result[key] = Resolved(contact, identities[contact.id], key in created_keys)
    return result


def _contacts_by_wa_id(
    session: Session, workspace_id: int, people: Iterable[Person]
) -> dict[str, Contact]:
    candidates: set[str] = set()
    for person in people:
        if person.wa_id:
            candidates.add(person.wa_id)
            candidates.update(wa_id_variants(person.wa_id))
    if not candidates:
        return {}
    rows = session.scalars(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.wa_id.in_(candidates))
    )
    return {c.wa_id: c for c in rows if c.wa_id}


def _identities_by_bsuid(
    session: Session, channel_id: int, people: Iterable[Person]
) -> dict[str, ContactIdentity]:
    bsuids = {p.bsuid for p in people if p.bsuid}
    if not bsuids:
        return {}
    rows = session.scalars(
        select(ContactIdentity).where(
            ContactIdentity.channel_id == channel_id, ContactIdentity.bsuid.in_(bsuids)
        )
    )
    return {i.bsuid: i for i in rows if i.bsuid}


def _match(
    person: Person,
    by_wa_id: dict[str, Contact],
    by_bsuid: dict[str, ContactIdentity],
    session: Session,
) -> Contact | None:
    if person.wa_id:
        if person.wa_id in by_wa_id:
            return by_wa_id[person.wa_id]
        for variant in wa_id_variants(person.wa_id):
            if variant in by_wa_id:
                return by_wa_id[variant]
    if person.bsuid and person.bsuid in by_bsuid:
        return session.get(Contact, by_bsuid[person.bsuid].contact_id)
    return None


def _absorbed(
    session: Session,
    workspace_id: int,
    channel_id: int,
    missing: list[Person],
    found: dict[str, Contact],
) -> list[Person]:
    """People whose number was a contact's that was merged into another (and not split):
    that other contact is theirs, unless it talks on this channel from another phone (a
    reply there would go to that phone; the person becomes a new contact). Returns the
    people still unknown."""
    spellings = {p.key: [p.wa_id, *wa_id_variants(p.wa_id)] for p in missing if p.wa_id}
    if not spellings:
        return missing
    wanted = {w for ws in spellings.values() for w in ws}
    rows = session.execute(
        select(ContactMerge.merged_wa_id, ContactMerge.contact_id).where(
            ContactMerge.workspace_id == workspace_id,
            ContactMerge.merged_wa_id.in_(wanted),
            ContactMerge.split_at.is_(None),
        )
    ).tuples()
    owners = {wa_id: contact_id for wa_id, contact_id in rows if wa_id}
    if not owners:
        return missing
    identities = session.execute(
        select(ContactIdentity.contact_id, ContactIdentity.wa_id).where(
            ContactIdentity.channel_id == channel_id,
            ContactIdentity.contact_id.in_(set(owners.values())),
        )
    ).tuples()
    here = {contact_id: wa_id for contact_id, wa_id in identities}
    still: list[Person] = []
    for person in missing:
        names = spellings.get(person.key, [])
        owner = next((owners[w] for w in names if w in owners), None)
        elsewhere = owner in here and here[owner] not in (None, *names)
        contact = session.get(Contact, owner) if owner is not None and not elsewhere else None
        if contact is None:
            still.append(person)
        else:
            found[person.key] = contact
    return still


def _create_contacts(
    session: Session,
    workspace_id: int,
    missing: list[Person],
    source: str,
    found: dict[str, Contact],
) -> set[str]:
    if not missing:
        return set()
    now = utcnow()
    with_wa_id = [p for p in missing if p.wa_id]
    if with_wa_id:
        rows = [_contact_row(workspace_id, p, source, now) for p in with_wa_id]
        # Another worker may create the same number meanwhile: its row wins, we re-read.
        session.execute(insert_ignore(session, Contact, ["workspace_id", "wa_id"]), rows)
        ids = [p.wa_id for p in with_wa_id]
        for contact in session.scalars(
            select(Contact).where(Contact.workspace_id == workspace_id, Contact.wa_id.in_(ids))
        ):
            found[contact.wa_id or ""] = contact
    for person in missing:
        if not person.wa_id:
            contact = Contact(**_contact_row(workspace_id, person, source, now))
            session.add(contact)
            found[person.key] = contact
    session.flush()
    return {p.key for p in missing}


def _contact_row(workspace_id: int, person: Person, source: str, now: object) -> dict[str, object]:
    return {
        "workspace_id": workspace_id,
        "wa_id": person.wa_id or None,
        "phone_e164": to_e164(person.wa_id) if person.wa_id else None,
        "profile_name": person.profile_name,
        "sources": [source],
        "custom_fields": {},
        "created_at": now,
        "updated_at": now,
    }


def _ensure_identities(
    session: Session,
    workspace_id: int,
    channel_id: int,
    wanted: dict[str, Person],
    found: dict[str, Contact],
) -> dict[int, ContactIdentity]:
    contact_ids = {c.id for c in found.values()}
    query = select(ContactIdentity).where(
        ContactIdentity.channel_id == channel_id, ContactIdentity.contact_id.in_(contact_ids)
    )
    identities = {i.contact_id: i for i in session.scalars(query)}
    new_rows = []
    queued: set[int] = set()
    now = utcnow()
    for key, contact in found.items():
        if contact.id in identities or contact.id in queued:
            continue
        queued.add(contact.id)
        person = wanted[key]
        new_rows.append(
            {
                "workspace_id": workspace_id,
                "channel_id": channel_id,
                "contact_id": contact.id,
                "wa_id": person.wa_id or contact.wa_id,
                "bsuid": person.bsuid,
                "parent_bsuid": person.parent_bsuid,
                "username": person.username,
                "in_business_app": False,
                "created_at": now,
            }
        )
    if new_rows:
        session.execute(
            insert_ignore(session, ContactIdentity, ["channel_id", "contact_id"]), new_rows
        )
        identities.update({i.contact_id: i for i in session.scalars(query)})
    for key, contact in found.items():
        refresh_identity(wanted[key], identities[contact.id])
    return identities


def refresh_identity(person: Person, identity: ContactIdentity) -> None:
    """Record what this message says about the person on the channel."""
    # BSUIDs are per business and can appear after the number was first seen.
    if person.bsuid and identity.bsuid != person.bsuid:
        identity.bsuid = person.bsuid
    if person.parent_bsuid and identity.parent_bsuid != person.parent_bsuid:
        identity.parent_bsuid = person.parent_bsuid
    if person.username and identity.username != person.username:
        identity.username = person.username
    if person.wa_id and identity.wa_id is None:
        identity.wa_id = person.wa_id


def refresh_contact(person: Person, contact: Contact) -> None:
    if person.profile_name and contact.profile_name != person.profile_name:
        contact.profile_name = person.profile_name
