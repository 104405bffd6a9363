"""Operations on contacts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.contacts.models import Contact, ContactSource, ContactTag, Tag
from puente.contacts.phones import to_e164, wa_id_from_e164
from puente.errors import Conflict, InvalidInput, NotFound
from puente.events import ContactCreated, ContactTagged, ContactUpdated, publish


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


# --- CRUD for the API and the UI -------------------------------------------------------

_WA_ID = re.compile(r"^[0-9]{5,20}$")
MAX_TAG_LENGTH = 100


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def access_contact(session: Session, workspace_id: int, contact_id: int) -> Contact:
    contact = session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    if contact is None:
        raise NotFound(f"no contact {contact_id} in this workspace")
    return contact


@dataclass(frozen=True)
class ContactFilter:
    phone: str | None = None  # E.164 once checked
    q: str | None = None
    tag: str | None = None
    source: str | None = None


def check_contact_filter(raw: ContactFilter) -> ContactFilter:
    phone = None
    if raw.phone is not None and raw.phone.strip():
        phone = to_e164(raw.phone)
        if phone is None:
            raise _field_error("phone", f"'{raw.phone}' is not a phone number")
    if raw.source is not None and raw.source not in set(ContactSource):
        allowed = ", ".join(s.value for s in ContactSource)
        raise _field_error("source", f"must be one of {allowed}")
    return ContactFilter(
        phone=phone,
        q=(raw.q or "").strip() or None,
        tag=(raw.tag or "").strip() or None,
        source=raw.source,
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_contacts(
    session: Session,
    workspace_id: int,
    filters: ContactFilter,
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Contact]:
    """Newest contacts first; `before_id` continues after the last contact of a page."""
    query = select(Contact).where(Contact.workspace_id == workspace_id)
    if filters.phone:
        query = query.where(Contact.phone_e164 == filters.phone)
    if filters.q:
        pattern = _like_pattern(filters.q)
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        Contact.name,
                        Contact.profile_name,
                        Contact.business_app_name,
                        Contact.phone_e164,
                    )
                )
            )
        )
    if filters.tag:
        query = query.where(
            exists()
            .where(ContactTag.contact_id == Contact.id, ContactTag.tag_id == Tag.id)
            .where(Tag.workspace_id == workspace_id, Tag.name == filters.tag)
        )
    if filters.source:
        # Sources come from a closed set without LIKE wildcards, so matching the quoted
        # value in the JSON text works the same on SQLite and PostgreSQL.
        query = query.where(cast(Contact.sources, String).like(f'%"{filters.source}"%'))
    if before_id is not None:
        query = query.where(Contact.id < before_id)
    return list(session.scalars(query.order_by(Contact.id.desc()).limit(limit)))


def tags_of(session: Session, contact_ids: Sequence[int]) -> dict[int, list[str]]:
    """Tag names per contact, in one query, sorted by name."""
    result: dict[int, list[str]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return result
    rows = session.execute(
        select(ContactTag.contact_id, Tag.name)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(ContactTag.contact_id.in_(contact_ids))
        .order_by(Tag.name)
    )
    for contact_id, name in rows:
        result[contact_id].append(name)
    return result


# Session.info key: tags already read in this transaction, by contact. Automation reads
# the tags of every contact of an ingest batch or a worker's batch at once; the functions
# below that change tags drop the contact from it.
_TAGS_CACHE = "puente.contacts.tags"


def cached_tags(session: Session, contact_id: int, also: Iterable[int] = ()) -> list[str]:
    """The contact's tags, read once per transaction; a miss reads `also` in the same
    query (the other contacts of the batch being worked on)."""
    cache: dict[int, list[str]] = session.info.setdefault(_TAGS_CACHE, {})
    if contact_id not in cache:
        wanted = {contact_id, *also} - cache.keys()
        with session.no_autoflush:  # a read: what this transaction tagged is flushed
            cache.update(tags_of(session, sorted(wanted)))
    return cache[contact_id]


def note_new_contact(session: Session, contact_id: int) -> None:
    """A contact this transaction created has no tags yet (tagging it drops this)."""
    session.info.setdefault(_TAGS_CACHE, {})[contact_id] = []


def _forget_cached_tags(session: Session, contact_id: int) -> None:
    session.info.get(_TAGS_CACHE, {}).pop(contact_id, None)


def _find_duplicate(
    session: Session, workspace_id: int, wa_id: str | None, phone: str | None
) -> Contact | None:
    matches = []
    if wa_id:
        matches.append(Contact.wa_id == wa_id)
    if phone:
        matches.append(Contact.phone_e164 == phone)
    if not matches:
        return None
    return session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, or_(*matches)).limit(1)
    )


def _duplicate_error(contact: Contact) -> Conflict:
    return Conflict(
        f"contact {contact.id} has this phone number already",
        code="duplicate",
        details={"existing_id": contact.id},
    )


def check_create_contact(
    session: Session, workspace_id: int, *, phone: str | None, wa_id: str | None
) -> tuple[str | None, str | None]:
    """(E.164 phone, WhatsApp id) for a new contact, or an error naming the bad field."""
    if wa_id is not None:
        wa_id = wa_id.strip().lstrip("+")
        if not _WA_ID.match(wa_id):
            raise _field_error("wa_id", "must be the digits of a WhatsApp id")
    e164 = None
    if phone is not None and phone.strip():
        e164 = to_e164(phone)
        if e164 is None:
            raise _field_error("phone", f"'{phone}' is not a valid phone number")
    elif wa_id is None:
        raise _field_error("phone", "a phone number is required (or a wa_id)")
    else:
        e164 = to_e164(wa_id)
    # WhatsApp ids are the number's digits, so inbound messages from it find this contact.
    wa_id = wa_id or (wa_id_from_e164(e164) if e164 else None)
    duplicate = _find_duplicate(session, workspace_id, wa_id, e164)
    if duplicate is not None:
        raise _duplicate_error(duplicate)
    return e164, wa_id


def do_create_contact(
    session: Session,
    *,
    workspace_id: int,
    phone: str | None,
    wa_id: str | None = None,
    name: str | None = None,
    custom_fields: dict[str, Any] | None = None,
    tags: Iterable[str] = (),
    source: str = ContactSource.API.value,
    actor: Any = None,
) -> Contact:
    e164, wa_id = check_create_contact(session, workspace_id, phone=phone, wa_id=wa_id)
    contact = Contact(
        workspace_id=workspace_id,
        wa_id=wa_id,
        phone_e164=e164,
        name=(name or "").strip() or None,
        sources=[source],
        custom_fields=_merge_fields({}, custom_fields or {}),
    )
    try:
        with session.begin_nested():
            session.add(contact)
            session.flush()
    except IntegrityError:
        # Someone (a webhook, another request) created the same WhatsApp id meanwhile.
        duplicate = _find_duplicate(session, workspace_id, wa_id, e164)
        if duplicate is None:
            raise
        raise _duplicate_error(duplicate) from None
    do_add_tags(session, contact, tags)
    publish(session, ContactCreated(workspace_id=contact.workspace_id, contact_id=contact.id))
    _audit(session, actor, contact, Action.CONTACT_CREATED, source=source)
    return contact


def _audit(session: Session, actor: Any, contact: Contact, action: str, **details: Any) -> None:
    """A person's or token's change (`actor`); automated callers pass none. Ids, field
    and tag names only: never the values, which may be personal data."""
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=contact.workspace_id,
        actor=actor,
        action=action,
        target=f"contact {contact.id}",
        details=details,
    )


def _merge_fields(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in changes.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 100:
            raise _field_error("custom_fields", "keys must be 1 to 100 characters")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


_UNSET: Any = object()


def do_update_contact(
    session: Session,
    contact: Contact,
    *,
    name: str | None = _UNSET,
    custom_fields: dict[str, Any] | None = None,
    actor: Any = None,
) -> Contact:
    """Change what agents own. `custom_fields` merges: a null value removes that field.

    The Business-app name and the WhatsApp profile name are never touched here: they
    mirror what the phone and WhatsApp say and are overwritten by their syncs.
    """
    if name is not _UNSET:
        contact.name = (name or "").strip() or None
    if custom_fields:
        contact.custom_fields = _merge_fields(contact.custom_fields or {}, custom_fields)
    session.flush()
    fields = (["name"] if name is not _UNSET else []) + sorted(custom_fields or {})
    publish(
        session,
        ContactUpdated(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            fields=tuple(f if f == "name" else f"custom.{f}" for f in fields),
        ),
    )
    _audit(session, actor, contact, Action.CONTACT_UPDATED, fields=fields)
    return contact


def _clean_tags(names: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name or len(name) > MAX_TAG_LENGTH:
            raise _field_error("tags", f"each tag must be 1 to {MAX_TAG_LENGTH} characters")
        if not name.isprintable():
            raise _field_error("tags", "a tag cannot hold control characters (tabs, line breaks)")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def _tag_ids(session: Session, workspace_id: int, names: list[str]) -> dict[str, int]:
    """Ids of the workspace's tags with these names, creating the missing ones."""
    rows = session.execute(
        select(Tag.name, Tag.id).where(Tag.workspace_id == workspace_id, Tag.name.in_(names))
    )
    found: dict[str, int] = {name: tag_id for name, tag_id in rows}
    for name in names:
        if name not in found:
            tag = Tag(workspace_id=workspace_id, name=name)
            try:
                with session.begin_nested():
                    session.add(tag)
                    session.flush()
            except IntegrityError:
                tag_id = session.scalar(
                    select(Tag.id).where(Tag.workspace_id == workspace_id, Tag.name == name)
                )
                if tag_id is None:
                    raise
                found[name] = tag_id
                continue
            found[name] = tag.id
    return found


def do_add_tags(
    session: Session, contact: Contact, names: Iterable[str], actor: Any = None
) -> list[str]:
    """Tag the contact; tags it has already are left alone. Returns all its tags."""
    wanted = _clean_tags(names)
    _forget_cached_tags(session, contact.id)
    if wanted:
        have = set(tags_of(session, [contact.id])[contact.id])
        added = [n for n in wanted if n not in have]
        ids = _tag_ids(session, contact.workspace_id, added)
        for tag_id in ids.values():
            session.add(
                ContactTag(workspace_id=contact.workspace_id, contact_id=contact.id, tag_id=tag_id)
            )
        session.flush()
        # Audited last: the entry takes the workspace's audit lock until commit, and a tag
        # row inserted while holding it could wait on another request waiting for it.
        if added:
            _audit(session, actor, contact, Action.CONTACT_TAGS_CHANGED, added=added)
            publish(
                session,
                ContactTagged(
                    workspace_id=contact.workspace_id, contact_id=contact.id, tags=tuple(added)
                ),
            )
    return tags_of(session, [contact.id])[contact.id]


def do_remove_tag(session: Session, contact: Contact, name: str, actor: Any = None) -> list[str]:
    _forget_cached_tags(session, contact.id)
    tag_id = session.scalar(
        select(Tag.id).where(Tag.workspace_id == contact.workspace_id, Tag.name == name.strip())
    )
    if tag_id is not None:
        session.execute(
            delete(ContactTag).where(
                ContactTag.contact_id == contact.id, ContactTag.tag_id == tag_id
            )
        )
        _audit(session, actor, contact, Action.CONTACT_TAGS_CHANGED, removed=[name.strip()])
    return tags_of(session, [contact.id])[contact.id]


def do_set_tags(
    session: Session, contact: Contact, names: Iterable[str], actor: Any = None
) -> list[str]:
    """Make the contact's tags exactly `names`."""
    _forget_cached_tags(session, contact.id)
    wanted = _clean_tags(names)
    keep = _tag_ids(session, contact.workspace_id, wanted) if wanted else {}
    session.execute(
        delete(ContactTag).where(
            ContactTag.contact_id == contact.id, ContactTag.tag_id.not_in(list(keep.values()))
        )
    )
    tags = do_add_tags(session, contact, wanted)
    _audit(session, actor, contact, Action.CONTACT_TAGS_CHANGED, tags=wanted)  # see do_add_tags
    return tags
