"""Segments: saved filters on contacts (tags, custom fields, consent, source, number,
last message, conversation status; the filter itself is `segment_filter.py`).
`segment_condition` turns a filter into one SQL
condition on `contacts`; the contacts list, broadcasts' audiences, workflows and the API
all count and select through it, so a segment means the same everywhere.

Every part is an EXISTS on an indexed column (contact_tags by contact, conversations by
contact, contact_consents by contact and scope) or a test on the contact's own row, so a
count is one statement without per-contact work, whatever the workspace's size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.contacts.models import (
    ConsentKind,
    Contact,
    ContactConsent,
    ContactTag,
    Segment,
    Tag,
)
from puente.contacts.segment_filter import (
    MAX_NAME,
    FilterNotValid,
    LastMessage,
    Problem,
    SegmentFilter,
    parse_filter,
)
from puente.conversations.models import Conversation
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound
from puente.outbound.models import Broadcast, BroadcastState

MARKETING = "marketing"


def check_segment_filter(session: Session, workspace_id: int, data: Any) -> SegmentFilter:
    """The filter checked against the workspace: its numbers must be the workspace's and
    its custom fields carried by at least one contact (a misspelt field would otherwise
    make an empty segment without a word). Unknown tags are fine: a tag may come later."""
    parsed = parse_filter(data)
    problems: list[Problem] = []
    known = set(
        session.scalars(
            select(Channel.id).where(
                Channel.workspace_id == workspace_id, Channel.id.in_(parsed.channel_ids)
            )
        )
    )
    for index, channel_id in enumerate(parsed.channel_ids):
        if channel_id not in known:
            problems.append(
                Problem(
                    f"filter.channel_ids.{index}",
                    "There is no number %(id)s in this workspace.",
                    {"id": channel_id},
                )
            )
    for index, rule in enumerate(parsed.fields):
        if not field_in_use(session, workspace_id, rule.key):
            problems.append(
                Problem(
                    f"filter.fields.{index}.key",
                    "No contact has a field “%(key)s”.",
                    {"key": rule.key},
                )
            )
    if problems:
        raise FilterNotValid(problems)
    return parsed


def field_in_use(session: Session, workspace_id: int, key: str) -> bool:
    return (
        session.scalar(
            select(Contact.id)
            .where(Contact.workspace_id == workspace_id, _field_value(key).is_not(None))
            .limit(1)
        )
        is not None
    )


def filter_of(segment: Segment) -> SegmentFilter:
    return parse_filter(segment.filter or {})


# -- the condition ---------------------------------------------------------------------


class _FieldText(FunctionElement[str]):
    """A custom field's value as text (None when the contact has no such field), for any
    key: SQLite's JSON paths cannot name keys with accents or quotes ("Dirección"), so
    there it is read through json_each; PostgreSQL's ->> takes the key as it is."""

    type = String()
    name = "field_text"
    inherit_cache = True


@compiles(_FieldText)
def _field_text_pg(element: _FieldText, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ->> {key})"


@compiles(_FieldText, "sqlite")
def _field_text_sqlite(element: _FieldText, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    # Booleans written as PostgreSQL writes them, numbers as text, JSON null as NULL.
    return (
        "(SELECT CASE je.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        f"ELSE CAST(je.value AS TEXT) END FROM json_each({column}) AS je WHERE je.key = {key})"
    )


def _field_value(key: str) -> ColumnElement[str]:
    return _FieldText(Contact.custom_fields, literal(key, String()))


def has_tag(workspace_id: int, names: Iterable[str]) -> ColumnElement[bool]:
    return exists().where(
        ContactTag.contact_id == Contact.id,
        ContactTag.tag_id == Tag.id,
        Tag.workspace_id == workspace_id,
        Tag.name.in_(list(names)),
    )


def _conversation(f: SegmentFilter, *where: ColumnElement[bool]) -> ColumnElement[bool]:
    """A conversation of the contact, on the filter's numbers when it names some."""
    on_number = [Conversation.channel_id.in_(f.channel_ids)] if f.channel_ids else []
    return exists().where(Conversation.contact_id == Contact.id, *on_number, *where)


def _day_start(day: dt.date, time_zone: str) -> dt.datetime:
    try:
        zone = ZoneInfo(time_zone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)


def _last_message(
    f: SegmentFilter, lm: LastMessage, now: dt.datetime, time_zone: str
) -> ColumnElement[bool]:
    if lm.op == "within":
        since = now - dt.timedelta(days=lm.days or 0)
    else:
        assert lm.date is not None
        since = _day_start(lm.date, time_zone)
    recent = _conversation(f, Conversation.last_activity_at >= since)
    if lm.op == "before":
        # The latest message is older: some message, and none since that day began.
        return and_(_conversation(f, Conversation.last_activity_at.is_not(None)), not_(recent))
    return recent


def segment_condition(
    workspace_id: int,
    f: SegmentFilter,
    *,
    now: dt.datetime | None = None,
    time_zone: str = "UTC",
) -> ColumnElement[bool]:
    """The contacts of `workspace_id` that `f` selects, as one condition on Contact.
    Number, status and last message look at the conversations on the filter's numbers
    (all of the contact's when it names none)."""
    where: list[ColumnElement[bool]] = [Contact.workspace_id == workspace_id]
    if f.tags_any:
        where.append(has_tag(workspace_id, f.tags_any))
    where += [has_tag(workspace_id, [tag]) for tag in f.tags_all]
    if f.tags_none:
        where.append(not_(has_tag(workspace_id, f.tags_none)))
    for rule in f.fields:
        value = _field_value(rule.key)
        if rule.op == "equals":
            where.append(value == rule.value)
        else:
            where.append(value.is_not(None) if rule.op == "set" else value.is_(None))
    if f.consent:
        recorded = exists().where(
            ContactConsent.contact_id == Contact.id, ContactConsent.scope == MARKETING
        )
        if f.consent == "unknown":
            where.append(not_(recorded))
        else:
            where.append(recorded.where(ContactConsent.state == ConsentKind(f.consent).value))
    if f.sources:
        # Sources are a closed set without LIKE wildcards, so matching the quoted value in
        # the JSON text behaves the same on SQLite and PostgreSQL (as the directory does).
        text = cast(Contact.sources, String)
        where.append(or_(*(text.like(f'%"{source}"%') for source in f.sources)))
    if f.channel_ids and not (f.conversation_status or f.last_message):
        where.append(_conversation(f))
    if f.conversation_status:
        where.append(_conversation(f, Conversation.status.in_(f.conversation_status)))
    if f.last_message is not None:
        where.append(_last_message(f, f.last_message, now or utcnow(), time_zone))
    return and_(true(), *where)


def workspace_condition(
    session: Session, workspace_id: int, f: SegmentFilter
) -> ColumnElement[bool]:
    """`segment_condition` with the workspace's time zone for its dates."""
    workspace = session.get(Workspace, workspace_id)
    return segment_condition(
        workspace_id, f, time_zone=workspace.timezone if workspace is not None else "UTC"
    )


def count_matching(session: Session, workspace_id: int, f: SegmentFilter) -> int:
    condition = workspace_condition(session, workspace_id, f)
    return session.scalar(select(func.count()).select_from(Contact).where(condition)) or 0


def find_segments(
    session: Session, workspace_id: int, refs: Iterable[Any]
) -> tuple[list[Segment], list[str]]:
    """Segments named by id or by name (a workflow's condition names them either way):
    (those found, the references that name none)."""
    wanted = [str(r).strip() for r in refs if str(r).strip()]
    ids = [int(r) for r in wanted if r.isdigit() and int(r) < 2**62]
    found = list(
        session.scalars(
            select(Segment).where(
                Segment.workspace_id == workspace_id,
                or_(Segment.id.in_(ids), Segment.name.in_(wanted)),
            )
        )
    )
    named = {str(s.id) for s in found} | {s.name for s in found}
    return found, [r for r in wanted if r not in named]


def contact_in_segments(
    session: Session, workspace_id: int, contact_id: int, refs: Iterable[Any]
) -> bool:
    """Whether the contact is in any of these segments (ids or names; a workflow's
    condition). A segment deleted since is nobody's."""
    found, _missing = find_segments(session, workspace_id, refs)
    for segment in found:
        condition = workspace_condition(session, workspace_id, filter_of(segment))
        if session.scalar(select(Contact.id).where(Contact.id == contact_id, condition)):
            return True
    return False


# -- saved segments --------------------------------------------------------------------


def access_segment(session: Session, workspace_id: int, segment_id: int) -> Segment:
    segment = session.scalar(
        select(Segment).where(Segment.id == segment_id, Segment.workspace_id == workspace_id)
    )
    if segment is None:
        raise NotFound(f"no segment {segment_id} in this workspace")
    return segment


def list_segments(session: Session, workspace_id: int) -> list[Segment]:
    return list(
        session.scalars(
            select(Segment).where(Segment.workspace_id == workspace_id).order_by(Segment.name)
        )
    )


def segment_counts(session: Session, workspace_id: int, segments: Sequence[Segment]) -> list[int]:
    # One count each: summing every segment's condition in one pass over the contacts
    # measured no faster on SQLite (100,000 contacts), since each row then evaluates
    # every segment's subqueries instead of stopping at the first that fails.
    return [count_matching(session, workspace_id, filter_of(s)) for s in segments]


def _check_name(session: Session, workspace_id: int, name: str, segment_id: int | None) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput(
            "a segment needs a name", details=[{"field": "name", "message": "required"}]
        )
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"a segment's name has at most {MAX_NAME} characters",
            details=[{"field": "name", "message": "too long"}],
        )
    taken = session.scalar(
        select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == name)
    )
    if taken is not None and taken != segment_id:
        raise Conflict(
            "there is already a segment called %(name)s",
            params={"name": name},
            details={"existing_id": taken},
        )
    return name


def _audit(session: Session, actor: Any, segment: Segment, action: str) -> None:
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=segment.workspace_id,
        actor=actor,
        action=action,
        target=f"segment {segment.id}",
        details={"name": segment.name},
    )


def do_create_segment(
    session: Session, *, workspace_id: int, name: str, filter_: Any, actor: Any = None
) -> Segment:
    name = _check_name(session, workspace_id, name, None)
    parsed = check_segment_filter(session, workspace_id, filter_)
    segment = Segment(workspace_id=workspace_id, name=name, filter=parsed.as_json())
    session.add(segment)
    session.flush()
    _audit(session, actor, segment, Action.SEGMENT_SAVED)
    return segment


def do_update_segment(
    session: Session,
    segment: Segment,
    *,
    name: str | None = None,
    filter_: Any = None,
    actor: Any = None,
) -> Segment:
    if name is not None:
        segment.name = _check_name(session, segment.workspace_id, name, segment.id)
    if filter_ is not None:
        segment.filter = check_segment_filter(session, segment.workspace_id, filter_).as_json()
    session.flush()
    _audit(session, actor, segment, Action.SEGMENT_SAVED)
    return segment


def scheduled_broadcasts_using(session: Session, segment: Segment) -> list[Broadcast]:
    """Scheduled broadcasts planned from this segment. Their recipients were fixed when
    they were created, so deleting the segment does not change whom they reach."""
    scheduled = session.scalars(
        select(Broadcast).where(
            Broadcast.workspace_id == segment.workspace_id,
            Broadcast.state == BroadcastState.SCHEDULED.value,
        )
    )
    return [
        b
        for b in scheduled
        if (b.audience or {}).get("kind") == "segment"
        and str((b.audience or {}).get("segment_id")) == str(segment.id)
    ]


def do_delete_segment(session: Session, segment: Segment, *, actor: Any = None) -> None:
    _audit(session, actor, segment, Action.SEGMENT_DELETED)
    session.delete(segment)
    session.flush()
