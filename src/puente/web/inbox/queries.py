"""Read models of the inbox screens: the conversation list with its tab counts, and
everything one conversation view shows. Each is a fixed, small number of queries
(pinned by tests/inbox/test_query_counts.py) whatever the number of rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    cast,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased, defer

from puente.accounts.gate import Actor, conversation_scope
from puente.accounts.models import Team, User
from puente.automation.workflows.models import WorkflowRun
from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactConsent, ContactTag, Tag
from puente.conversations.models import (
    Conversation,
    ConversationEvent,
    Media,
    Message,
    Note,
    Notification,
)
from puente.conversations.search import contact_search_ready
from puente.errors import NotFound
from puente.outbound.templates.preview import Preview
from puente.outbound.templates.sent import sent_templates
from puente.reports.models import CsatSurvey
from puente.web.inbox.runs import RunLine, conversation_runs

PAGE_SIZE = 50
MESSAGES_SHOWN = 50
TABS = ("mine", "unassigned", "all")
STATUSES = ("open", "pending", "snoozed", "resolved", "any")
SORTS = ("latest", "waiting")
# Closed conversations hidden by the status filter are counted up to this many.
HIDDEN_CAP = 1000


@dataclass(frozen=True)
class InboxFilter:
    tab: str = "all"
    status: str = "open"
    channel_id: int | None = None
    team_id: int | None = None
    label: str | None = None
    assignee_id: int | None = None
    source: str | None = None
    sort: str = "latest"
    q: str | None = None
    page: int = 1

    def query_string(self, **changes: Any) -> str:
        from urllib.parse import urlencode

        values = {
            "tab": self.tab,
            "status": self.status,
            "channel": self.channel_id,
            "team": self.team_id,
            "label": self.label,
            "assignee": self.assignee_id,
            "source": self.source,
            "sort": self.sort,
            "q": self.q,
            "page": self.page,
        }
        values.update(changes)
        defaults = {"tab": "all", "status": "open", "sort": "latest", "page": 1}
        return urlencode(
            {k: v for k, v in values.items() if v not in (None, "") and defaults.get(k) != v}
        )


@dataclass(frozen=True)
class Row:
    conversation: Conversation
    contact_name: str
    contact_phone: str | None
    channel_name: str
    assignee_name: str | None
    team_name: str | None


def _has_label(session: Session, label: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Conversation.labels.op("@>")(cast(literal(json.dumps([label])), JSONB))
    each = func.json_each(Conversation.labels).table_valued("value")
    return exists().select_from(each).where(each.c.value == label)


def _trigram_match(q: str) -> str | None:
    """The FTS5 query for the SQLite trigram table that finds what _contact_matches
    finds, or None when the text is too short for trigrams (under three characters)."""
    wanted = q.strip()
    if len(wanted) < 3:
        return None
    # FTS5 strings are double-quoted with inner quotes doubled: the text stays literal.
    match = '{name profile_name business_app_name} : "' + wanted.replace('"', '""') + '"'
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3:
        match += f' OR wa_id : "{digits}"'
    return match


def _matching_contacts(session: Session, workspace_id: int, q: str) -> Select[Any]:
    """Contacts whose name or number contains `q`: through the trigram table on SQLite
    (PostgreSQL's trigram index serves the LIKEs themselves)."""
    engine = session.get_bind().engine
    match = _trigram_match(q)
    if match is not None and contact_search_ready(engine):
        # No workspace check on contacts here: the conversations it filters are already
        # limited to the workspace, and so are their contacts (reading 1000s of contact
        # rows only to check it doubled the time of a common name).
        fts = table("contacts_fts", column("rowid"), column("contacts_fts"))
        return select(fts.c.rowid).where(fts.c.contacts_fts.match(match))
    return select(Contact.id).where(Contact.workspace_id == workspace_id, _contact_matches(q))


def _contact_matches(q: str) -> ColumnElement[bool]:
    pattern = f"%{q.strip().lower()}%"
    digits = "".join(ch for ch in q if ch.isdigit())
    conditions: list[ColumnElement[bool]] = [
        func.lower(Contact.name).like(pattern),
        func.lower(Contact.profile_name).like(pattern),
        func.lower(Contact.business_app_name).like(pattern),
    ]
    if len(digits) >= 3:
        conditions.append(Contact.wa_id.like(f"%{digits}%"))
    return or_(*conditions)


def _filtered(session: Session, actor: Actor, f: InboxFilter) -> list[ColumnElement[bool]]:
    """Every condition but the tab's (the counts are taken across tabs)."""
    conditions = [conversation_scope(actor)]
    if f.status != "any":
        conditions.append(Conversation.status == f.status)
    if f.channel_id is not None:
        conditions.append(Conversation.channel_id == f.channel_id)
    if f.team_id is not None:
        conditions.append(Conversation.team_id == f.team_id)
    if f.assignee_id is not None:
        conditions.append(Conversation.assignee_id == f.assignee_id)
    if f.label:
        conditions.append(_has_label(session, f.label))
    if f.source:
        conditions.append(Conversation.last_message_source == f.source)
    if f.q and f.q.strip():
        matching = _matching_contacts(session, actor.workspace_id, f.q)
        conditions.append(Conversation.contact_id.in_(matching))
    return conditions


def _tab_condition(actor: Actor, tab: str, cols: Any = None) -> ColumnElement[bool]:
    """The tab's condition on `cols` (the conversations table's columns, or a subquery's)."""
    cols = Conversation if cols is None else cols
    if tab == "mine":
        return cols.assignee_id == (actor.user_id or -1)  # type: ignore[no-any-return]
    if tab == "unassigned":
        return cols.assignee_id.is_(None)  # type: ignore[no-any-return]
    return literal(True)


def tab_counts(session: Session, actor: Actor, f: InboxFilter) -> dict[str, int]:
    """Mine / Unassigned / All under the current filters, in one query."""
    row = session.execute(
        select(
            func.count().filter(_tab_condition(actor, "mine")),
            func.count().filter(_tab_condition(actor, "unassigned")),
            func.count(),
        )
        .select_from(Conversation)
        .where(*_filtered(session, actor, f))
    ).one()
    return {"mine": int(row[0]), "unassigned": int(row[1]), "all": int(row[2])}


def _ordered(session: Session, query: Select[Any], f: InboxFilter, cols: Any = None) -> Select[Any]:
    """`query` in the list's order; `cols` holds the columns to sort on (the
    conversations table's, or a subquery's with the same names)."""
    cols = Conversation if cols is None else cols
    sqlite = session.get_bind().dialect.name == "sqlite"
    # Conversations that never had activity go last. SQLite already sorts NULL lowest,
    # and spelling NULLS LAST there would stop it from reading the index in order.
    latest = cols.last_activity_at.desc() if sqlite else cols.last_activity_at.desc().nulls_last()
    if f.sort == "waiting":
        # Longest waiting first; conversations nobody waits on follow, latest first.
        # Spelled as its index is (ix_conversations_waiting_order in search.py) so the
        # page is read from the index instead of sorting every open conversation.
        if sqlite:
            waiting: tuple[ColumnElement[Any], ...] = (
                cols.waiting_since.is_(None),
                cols.waiting_since.asc(),
            )
        else:
            waiting = (cols.waiting_since.asc().nulls_last(),)
        return query.order_by(*waiting, latest, cols.id.desc())
    return query.order_by(latest, cols.id.desc())


def list_page(
    session: Session, actor: Actor, f: InboxFilter
) -> tuple[list[Row], bool, dict[str, int]]:
    """One page of the list, whether there is a next one, and the tab counts."""
    if not (f.q and f.q.strip()):
        return (*list_rows(session, actor, f), tab_counts(session, actor, f))
    # A contact search: the conversations of the matching contacts are found once, then
    # counted per tab and paged from that set (a common name matches thousands of
    # contacts, and finding their conversations is the costly part).
    matched = (
        select(
            Conversation.id,
            Conversation.assignee_id,
            Conversation.last_activity_at,
            Conversation.waiting_since,
        )
        .where(*_filtered(session, actor, f))
        .cte("matched")
    )
    counts = select(
        func.count().filter(_tab_condition(actor, "mine", matched.c)).label("mine"),
        func.count().filter(_tab_condition(actor, "unassigned", matched.c)).label("unassigned"),
        func.count().label("all"),
    ).subquery("counts")
    offset = (max(f.page, 1) - 1) * PAGE_SIZE
    page = (
        _ordered(
            session,
            select(matched.c.id).where(_tab_condition(actor, f.tab, matched.c)),
            f,
            matched.c,
        )
        .offset(offset)
        .limit(PAGE_SIZE + 1)
        .subquery("page")
    )
    found = session.execute(
        select(counts.c.mine, counts.c.unassigned, counts.c.all, page.c.id)
        .select_from(counts)
        .outerjoin(page, literal(True))
    ).all()
    tab_count = {"mine": found[0][0], "unassigned": found[0][1], "all": found[0][2]}
    ids = [r[3] for r in found if r[3] is not None]
    rows = (
        [
            _row_of(r)
            for r in session.execute(
                _ordered(session, _row_query().where(Conversation.id.in_(ids)), f)
            )
        ]
        if ids
        else []
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE, {k: int(v) for k, v in tab_count.items()}


def _row_query() -> Select[Any]:
    assignee = aliased(User)
    return (
        select(
            Conversation,
            Contact.name,
            Contact.business_app_name,
            Contact.profile_name,
            Contact.phone_e164,
            Channel.name,
            assignee.name,
            Team.name,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(Channel, Channel.id == Conversation.channel_id)
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
    )


def _row_of(r: Any) -> Row:
    return Row(
        conversation=r[0],
        contact_name=r[1] or r[2] or r[3] or r[4] or "",
        contact_phone=r[4],
        channel_name=r[5],
        assignee_name=r[6],
        team_name=r[7],
    )


def list_rows(session: Session, actor: Actor, f: InboxFilter) -> tuple[list[Row], bool]:
    """One page of the list, with contact, number, assignee and team names joined in
    (one query). Returns the rows and whether there is a next page."""
    # The page's ids first, then their rows and names: when a filter leaves 1000s of
    # candidates to sort, the sort handles ids from an index rather than whole joined rows.
    offset = (max(f.page, 1) - 1) * PAGE_SIZE
    page_ids = (
        _ordered(
            session,
            select(Conversation.id).where(
                *_filtered(session, actor, f), _tab_condition(actor, f.tab)
            ),
            f,
        )
        .offset(offset)
        .limit(PAGE_SIZE + 1)
    )
    rows = session.execute(
        _ordered(session, _row_query().where(Conversation.id.in_(page_ids)), f)
    ).all()
    return [_row_of(r) for r in rows[:PAGE_SIZE]], len(rows) > PAGE_SIZE


def closed_hidden(session: Session, actor: Actor, f: InboxFilter) -> int:
    """How many closed conversations the status filter leaves out of this tab, counted up
    to HIDDEN_CAP: imported history arrives closed, and a list showing only open ones must
    say where the rest went."""
    if f.status in ("any", "resolved"):
        return 0
    closed = replace(f, status="resolved")
    capped = (
        select(Conversation.id)
        .where(*_filtered(session, actor, closed), _tab_condition(actor, f.tab))
        .limit(HIDDEN_CAP)
        .subquery()
    )
    return int(session.scalar(select(func.count()).select_from(capped)) or 0)


# -- one conversation ------------------------------------------------------------------------


@dataclass
class MessageView:
    message: Message
    sender_name: str | None = None
    quoted: Message | None = None
    reactions: list[Message] = field(default_factory=list)
    media: Media | None = None
    template: Preview | None = None  # a template message as its customer read it


@dataclass
class TimelineItem:
    at: dt.datetime
    kind: str  # message | note | event | workflow
    message: MessageView | None = None
    note: Note | None = None
    author_name: str | None = None
    event: ConversationEvent | None = None
    run: RunLine | None = None


@dataclass
class ConversationView:
    conversation: Conversation
    items: list[TimelineItem]
    has_older: bool


# Tag names travel as one string in the header's row; no tag name holds this character.
_TAG_SEPARATOR = "\x1f"


@dataclass
class Header:
    """What every screen of one conversation shows around its messages."""

    conversation: Conversation
    contact: Contact
    channel: Channel
    assignee: User | None
    team: Team | None
    consent: ContactConsent | None  # marketing
    contact_tags: list[str]
    unread_notification: bool  # the viewer has an unread notification about it
    has_runs: bool = False  # a workflow ever ran in it (most conversations: none)
    survey_id: int | None = None  # its newest satisfaction survey (most have none)


def load_header(session: Session, actor: Actor, conversation_id: int) -> Header:
    """The conversation if the actor may see it (404 otherwise, as the gate's
    `access_conversation`), with its contact, number, assignee, team, the contact's
    marketing consent and tags, whether the viewer has an unread notification about it,
    whether any workflow ran in it, and its newest satisfaction survey: one statement,
    where these were seven (each a round trip on PostgreSQL)."""
    assignee = aliased(User)
    tags = (
        select(func.aggregate_strings(Tag.name, _TAG_SEPARATOR))
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == Conversation.contact_id)
        .scalar_subquery()
    )
    unread = (
        exists().where(
            Notification.workspace_id == Conversation.workspace_id,
            Notification.user_id == actor.user_id,
            Notification.conversation_id == Conversation.id,
            Notification.read_at.is_(None),
        )
        if actor.user_id is not None
        else literal(False)
    )
    runs = exists().where(
        WorkflowRun.conversation_id == Conversation.id,
        WorkflowRun.workspace_id == Conversation.workspace_id,
    )
    survey = (
        select(func.max(CsatSurvey.id))
        .where(
            CsatSurvey.conversation_id == Conversation.id,
            CsatSurvey.workspace_id == Conversation.workspace_id,
        )
        .scalar_subquery()
    )
    row = session.execute(
        select(
            Conversation,
            Contact,
            Channel,
            assignee,
            Team,
            ContactConsent,
            tags,
            unread,
            runs,
            survey,
        )
        .join(Channel, Channel.id == Conversation.channel_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .outerjoin(
            ContactConsent,
            and_(
                ContactConsent.contact_id == Conversation.contact_id,
                ContactConsent.scope == "marketing",
            ),
        )
        .where(Conversation.id == conversation_id, conversation_scope(actor))
    ).first()
    if row is None:
        raise NotFound("no such conversation")
    conversation, contact, channel, assigned, team, consent, tag_names, has_unread, *more = row
    has_runs, survey_id = more
    return Header(
        conversation,
        contact,
        channel,
        assigned,
        team,
        consent,
        contact_tags=sorted(tag_names.split(_TAG_SEPARATOR)) if tag_names else [],
        unread_notification=bool(has_unread),
        has_runs=bool(has_runs),
        survey_id=survey_id,
    )


# The webhook's own JSON and Meta's pricing are not shown in the conversation: not read
# (decoding them was a fair part of opening one), and an error if a template asks.
_NOT_SHOWN = (defer(Message.raw, raiseload=True), defer(Message.pricing, raiseload=True))


@dataclass(frozen=True)
class Loaded:
    """What the query that read the messages brought along: media and sender names."""

    media: dict[int, Media]
    names: dict[int, str]


def message_views(
    session: Session,
    conversation: Conversation,
    messages: Sequence[Message],
    loaded: Loaded | None = None,
) -> list[MessageView]:
    """Messages with their quoted message, reactions, media and sender names, in at most
    four queries however many messages there are (one when `loaded` has media and names),
    and one more for the templates when the page holds template messages."""
    if not messages:
        return []
    shown = [m for m in messages if m.type != "reaction"]
    reactions = [m for m in messages if m.type == "reaction"]
    by_wamid = {m.wamid: m for m in messages if m.wamid}
    wanted = {m.reply_to_wamid for m in shown if m.reply_to_wamid} - by_wamid.keys()
    # Reactions to messages outside this page, and quoted messages outside it.
    targets = {m.wamid for m in shown if m.wamid}
    extra_reactions: list[Message] = []
    if targets or wanted:
        found = session.scalars(
            select(Message)
            .options(*_NOT_SHOWN)
            .where(
                Message.conversation_id == conversation.id,
                Message.workspace_id == conversation.workspace_id,
                or_(
                    Message.wamid.in_(wanted) if wanted else literal(False),
                    and_(Message.type == "reaction", Message.reply_to_wamid.in_(targets))
                    if targets
                    else literal(False),
                ),
            )
        ).all()
        for m in found:
            if m.type == "reaction":
                if m.id not in {r.id for r in reactions}:
                    extra_reactions.append(m)
            elif m.wamid:
                by_wamid[m.wamid] = m
    all_reactions = reactions + extra_reactions
    # Only the latest reaction of each person counts; an empty emoji removes it.
    latest: dict[tuple[str, str], Message] = {}
    for r in sorted(all_reactions, key=lambda m: (m.timestamp, m.id)):
        latest[(r.reply_to_wamid or "", r.direction)] = r
    reactions_by_target: dict[str, list[Message]] = {}
    for (target, _who), r in latest.items():
        if r.text:
            reactions_by_target.setdefault(target, []).append(r)
    if loaded is not None:
        media, names = loaded.media, loaded.names
    else:
        media = {
            m.message_id: m
            for m in session.scalars(
                select(Media).where(Media.message_id.in_([m.id for m in shown])).order_by(Media.id)
            )
            if m.message_id is not None
        }
        sender_ids = {m.sender_user_id for m in shown if m.sender_user_id}
        names = (
            dict(
                session.execute(select(User.id, User.name).where(User.id.in_(sender_ids)))
                .tuples()
                .all()
            )
            if sender_ids
            else {}
        )
    # Reactions whose target is not on this page still show, on their own.
    orphans = [r for r in reactions if r.reply_to_wamid not in by_wamid and r.text]
    templates = sent_templates(session, conversation.workspace_id, conversation.channel_id, shown)
    views = [
        MessageView(
            message=m,
            sender_name=names.get(m.sender_user_id) if m.sender_user_id else None,
            quoted=by_wamid.get(m.reply_to_wamid) if m.reply_to_wamid else None,
            reactions=reactions_by_target.get(m.wamid or "", []),
            media=media.get(m.id),
            template=templates.get(m.id),
        )
        for m in [*shown, *orphans]
    ]
    views.sort(key=lambda v: (v.message.timestamp, v.message.id))
    return views


def load_conversation_view(
    session: Session,
    conversation: Conversation,
    *,
    before: dt.datetime | None = None,
    with_runs: bool = True,
) -> ConversationView:
    """The newest messages (before `before`), and the notes, events and workflow runs of
    the same period; `with_runs=False` when the header already knows there are none."""
    query = select(Message).where(
        Message.conversation_id == conversation.id,
        Message.workspace_id == conversation.workspace_id,
    )
    if before is not None:
        query = query.where(Message.timestamp < before)
    # Each message with its media (the newest if a message has several) and its sender's
    # name, in the same statement.
    newest_media = (
        select(func.max(Media.id))
        .where(Media.message_id == Message.id)
        .correlate_except(Media)
        .scalar_subquery()
    )
    rows = session.execute(
        query.add_columns(Media, User.name)
        .outerjoin(Media, Media.id == newest_media)
        .outerjoin(User, User.id == Message.sender_user_id)
        .options(*_NOT_SHOWN)
        .order_by(Message.timestamp.desc(), Message.id.desc())
        .limit(MESSAGES_SHOWN + 1)
    ).all()
    has_older = len(rows) > MESSAGES_SHOWN
    rows = rows[:MESSAGES_SHOWN]
    newest = [row[0] for row in rows]
    loaded = Loaded(
        media={row[0].id: row[1] for row in rows if row[1] is not None},
        names={row[0].sender_user_id: row[2] for row in rows if row[0].sender_user_id},
    )
    views = message_views(session, conversation, newest, loaded)
    # Notes and timeline events from the oldest message shown onwards.
    since = newest[-1].timestamp if (newest and has_older) else None
    notes_q = (
        select(Note, User.name)
        .outerjoin(User, User.id == Note.author_id)
        .where(
            Note.conversation_id == conversation.id, Note.workspace_id == conversation.workspace_id
        )
    )
    events_q = (
        select(ConversationEvent, User.name)
        .outerjoin(User, User.id == ConversationEvent.actor_id)
        .where(
            ConversationEvent.conversation_id == conversation.id,
            ConversationEvent.workspace_id == conversation.workspace_id,
        )
    )
    if since is not None:
        notes_q = notes_q.where(Note.created_at >= since)
        events_q = events_q.where(ConversationEvent.created_at >= since)
    if before is not None:
        notes_q = notes_q.where(Note.created_at < before)
        events_q = events_q.where(ConversationEvent.created_at < before)
    items = [TimelineItem(v.message.timestamp, "message", message=v) for v in views]
    for note, name in session.execute(notes_q.order_by(Note.created_at).limit(200)).tuples():
        items.append(TimelineItem(note.created_at, "note", note=note, author_name=name))
    for event, name in session.execute(
        events_q.order_by(ConversationEvent.created_at).limit(200)
    ).tuples():
        items.append(TimelineItem(event.created_at, "event", event=event, author_name=name))
    if with_runs:
        for run in conversation_runs(session, conversation, since=since, before=before):
            items.append(TimelineItem(run.run.created_at, "workflow", run=run))
    items.sort(key=lambda i: i.at)
    return ConversationView(conversation, items, has_older)
