"""The contacts directory: the filtered, counted and paginated list the /contacts page and
the CSV export read (search by name or number, tag, source, consent state, segment)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from puente.contacts.models import (
    Contact,
    ContactConsent,
    ContactSource,
    ContactTag,
    Tag,
)
from puente.contacts.resolve import digits_of
from puente.contacts.segment_filter import SegmentFilter
from puente.contacts.segments import (
    access_segment,
    filter_of,
    segment_condition,
    workspace_condition,
)
from puente.contacts.service import tags_of
from puente.conversations.models import Conversation
from puente.errors import InvalidInput

CONSENT_FILTERS = ("opt_in", "opt_out", "none")
PER_PAGE = 50
MARKETING = "marketing"


@dataclass(frozen=True)
class DirectoryFilter:
    q: str | None = None
    tag: str | None = None
    source: str | None = None
    consent: str | None = None  # opt_in, opt_out, or "none" (nothing recorded)
    segment: int | None = None  # a saved segment's id

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters, for links that keep it (pages, export)."""
        return {k: str(v) for k, v in vars(self).items() if v}


def check_directory_filter(
    q: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    consent: str | None = None,
    segment: int | None = None,
) -> DirectoryFilter:
    problems = []
    source = (source or "").strip() or None
    consent = (consent or "").strip() or None
    if source is not None and source not in set(ContactSource):
        problems.append({"field": "source", "message": "not a contact source"})
    if consent is not None and consent not in CONSENT_FILTERS:
        problems.append({"field": "consent", "message": "must be opt_in, opt_out or none"})
    if problems:
        raise InvalidInput("the filter is not valid", details=problems)
    return DirectoryFilter(
        q=(q or "").strip()[:200] or None,
        tag=(tag or "").strip()[:100] or None,
        source=source,
        consent=consent,
        segment=segment,
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(q: str) -> ColumnElement[bool]:
    pattern = _like(q)
    names = [
        column.ilike(pattern, escape="\\")
        for column in (Contact.name, Contact.profile_name, Contact.business_app_name)
    ]
    # People type numbers with spaces, dashes or without the "+": match on the digits.
    digits = digits_of(q)
    if len(digits) >= 3:
        names.append(Contact.phone_e164.like(f"%{digits}%"))
        names.append(Contact.wa_id.like(f"%{digits}%"))
    return or_(*names)


def _conditions(
    session: Session, workspace_id: int, f: DirectoryFilter
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Contact.workspace_id == workspace_id]
    if f.segment:
        segment = access_segment(session, workspace_id, f.segment)
        where.append(workspace_condition(session, workspace_id, filter_of(segment)))
    if f.q:
        where.append(_search(f.q))
    # The list's own filters are a segment's (one tag, one source, a consent state).
    quick = SegmentFilter(
        tags_any=(f.tag,) if f.tag else (),
        sources=(f.source,) if f.source else (),
        consent="unknown" if f.consent == "none" else f.consent,
    )
    if quick != SegmentFilter():
        where.append(segment_condition(workspace_id, quick))
    return where


@dataclass(frozen=True)
class DirectoryRow:
    contact: Contact
    tags: list[str]
    consent: str | None
    last_activity_at: dt.datetime | None


@dataclass(frozen=True)
class DirectoryPage:
    rows: list[DirectoryRow]
    total: int  # contacts matching the filter
    workspace_total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def consents_of(session: Session, contact_ids: list[int]) -> dict[int, str]:
    if not contact_ids:
        return {}
    rows = session.execute(
        select(ContactConsent.contact_id, ContactConsent.state).where(
            ContactConsent.contact_id.in_(contact_ids), ContactConsent.scope == MARKETING
        )
    )
    return {key: value for key, value in rows.tuples()}


def list_directory(
    session: Session,
    workspace_id: int,
    f: DirectoryFilter,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> DirectoryPage:
    """One page of contacts, newest first, with their tags, consent and last activity."""
    where = _conditions(session, workspace_id, f)
    total = session.scalar(select(func.count()).select_from(Contact).where(*where)) or 0
    workspace_total = total
    if f.as_params():
        workspace_total = (
            session.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.workspace_id == workspace_id)
            )
            or 0
        )
    page = max(1, min(page, max(1, -(-total // per_page))))
    last_activity = (
        select(func.max(Conversation.last_activity_at))
        .where(Conversation.contact_id == Contact.id)
        .scalar_subquery()
    )
    found = session.execute(
        select(Contact, last_activity)
        .where(*where)
        .order_by(Contact.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    ids = [c.id for c, _ in found]
    tags = tags_of(session, ids)
    consents = consents_of(session, ids)
    rows = [DirectoryRow(c, tags[c.id], consents.get(c.id), at) for c, at in found]
    return DirectoryPage(rows, total, workspace_total, page, per_page)


def iter_directory(
    session: Session, workspace_id: int, f: DirectoryFilter, *, batch: int = 500
) -> Iterator[list[Contact]]:
    """Every matching contact, oldest first, in batches (for exports)."""
    where = _conditions(session, workspace_id, f)
    after = 0
    while True:
        chunk = list(
            session.scalars(
                select(Contact).where(*where, Contact.id > after).order_by(Contact.id).limit(batch)
            )
        )
        if not chunk:
            return
        yield chunk
        after = chunk[-1].id


def workspace_tags(session: Session, workspace_id: int) -> list[tuple[str, int]]:
    """The workspace's tags with how many contacts carry each, by name."""
    rows = session.execute(
        select(Tag.name, func.count(ContactTag.id))
        .outerjoin(ContactTag, ContactTag.tag_id == Tag.id)
        .where(Tag.workspace_id == workspace_id)
        .group_by(Tag.id, Tag.name)
        .order_by(Tag.name)
    )
    return [(name, int(count)) for name, count in rows.tuples()]
