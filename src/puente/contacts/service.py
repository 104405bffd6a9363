"""Operations on contacts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.contacts.models import Contact, ContactIdentity
from puente.contacts.phones import to_e164


def add_source(contact: Contact, source: str) -> None:
    if source not in (contact.sources or []):
        # Reassign so SQLAlchemy sees the JSON column change.
        contact.sources = [*(contact.sources or []), source]


def get_or_create_contact(
    session: Session,
    *,
    workspace_id: int,
    wa_id: str,
    source: str,
    profile_name: str | None = None,
) -> tuple[Contact, bool]:
    """The workspace's contact for this WhatsApp id, created if new. Returns (contact, created)."""
    contact = session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.wa_id == wa_id)
    )
    if contact is not None:
        if profile_name and contact.profile_name != profile_name:
            contact.profile_name = profile_name
        return contact, False
    contact = Contact(
        workspace_id=workspace_id,
        wa_id=wa_id,
        phone_e164=to_e164(wa_id),
        profile_name=profile_name,
        sources=[source],
        custom_fields={},
    )
    # A concurrent worker may insert the same wa_id; the savepoint lets us pick its row up.
    try:
        with session.begin_nested():
            session.add(contact)
            session.flush()
    except Exception:
        existing = session.scalar(
            select(Contact).where(Contact.workspace_id == workspace_id, Contact.wa_id == wa_id)
        )
        if existing is None:
            raise
        return existing, False
    return contact, True


def get_or_create_identity(
    session: Session, *, contact: Contact, channel_id: int, wa_id: str | None
) -> ContactIdentity:
    identity = session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.channel_id == channel_id, ContactIdentity.contact_id == contact.id
        )
    )
    if identity is None:
        identity = ContactIdentity(
            workspace_id=contact.workspace_id,
            channel_id=channel_id,
            contact_id=contact.id,
            wa_id=wa_id,
        )
        session.add(identity)
        session.flush()
    return identity
