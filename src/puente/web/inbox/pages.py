"""The inbox's pages and the fragments live updates fetch: the list (with tabs, counts,
filters), one conversation, one message, one note, the side panel and the composer."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import String, cast, literal, literal_column, null, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from puente.accounts.gate import access_conversation, conversation_scope, load_member_actor
from puente.accounts.models import Team, User
from puente.accounts.presence import arriving, do_arrive
from puente.automation.workflows.models import Workflow
from puente.channels.models import Channel
from puente.conversations import collab
from puente.conversations.models import (
    Conversation,
    ConversationEvent,
    Media,
    Message,
    Note,
    bot_is_paused,
)
from puente.db.base import utcnow
from puente.errors import NotFound
from puente.outbound.models import MessageTemplate
from puente.outbound.outbox.attachments import limits_for_browser
from puente.outbound.outbox.service import window_is_open
from puente.reports.models import CsatSurvey
from puente.runtime import Runtime
from puente.web.deps import DbDep, RuntimeDep, WebContext
from puente.web.inbox import queries as q
from puente.web.inbox import render as r
from puente.web.inbox.common import Viewer, page
from puente.web.inbox.workflows import flash_of, manual_workflows

router = APIRouter(include_in_schema=False)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def inbox_filter(request: Request) -> q.InboxFilter:
    p = request.query_params
    tab = p.get("tab", "all")
    status = p.get("status", "open")
    sort = p.get("sort", "latest")
    return q.InboxFilter(
        tab=tab if tab in q.TABS else "all",
        status=status if status in q.STATUSES else "open",
        channel_id=_int(p.get("channel")),
        team_id=_int(p.get("team")),
        label=(p.get("label") or "").strip().lower()[:40] or None,
        assignee_id=_int(p.get("assignee")),
        source=p.get("source") or None,
        sort=sort if sort in q.SORTS else "latest",
        q=(p.get("q") or "").strip()[:100] or None,
        page=max(_int(p.get("page")) or 1, 1),
    )


def _list_context(session: Session, me: WebContext, f: q.InboxFilter) -> dict[str, Any]:
    rows, more, counts = q.list_page(session, me.actor, f)
    # Said at the end of the list only (a full page has more to read first).
    hidden = 0 if more else q.closed_hidden(session, me.actor, f)
    return {
        "f": f,
        "rows": rows,
        "more": more,
        "counts": counts,
        "closed_hidden": hidden,
        "hidden_cap": q.HIDDEN_CAP,
    }


def _options(session: Session, me: WebContext) -> dict[str, Any]:
    """The filters' numbers and teams, the workspace's members (for assigning and
    @mentions) and the workflows a person may start by hand, in one statement."""
    ws = me.workspace.id
    none = cast(null(), String)
    rows = session.execute(
        union_all(
            select(literal("channel").label("kind"), Channel.id, Channel.name, none, none).where(
                Channel.workspace_id == ws
            ),
            select(literal("team").label("kind"), Team.id, Team.name, none, none).where(
                Team.workspace_id == ws
            ),
            select(literal("workflow").label("kind"), Workflow.id, Workflow.name, none, none).where(
                manual_workflows(ws)
            ),
            collab.members_query(ws)
            .with_only_columns(
                literal("member").label("kind"), User.id, User.name, User.email, User.availability
            )
            .order_by(None),
        ).order_by(literal_column("kind"), literal_column("name"), literal_column("id"))
    ).all()
    return {
        "channels": [r for r in rows if r.kind == "channel"],
        "teams": [r for r in rows if r.kind == "team"],
        "members": [collab.member_of(*r[1:]) for r in rows if r.kind == "member"],
        "manual_workflows": [r for r in rows if r.kind == "workflow"],
    }


def _arrive(runtime: Runtime, me: WebContext) -> None:
    """A person who never chose their availability and uses the inbox is online (signing
    in did it, unless they signed out on another device since). The page's own session
    only reads: the change has a unit of work of its own, once."""
    if not arriving(me.user):
        return
    with runtime.db.unit_of_work(scope=me.actor.workspace_id) as writer:
        user = writer.get(User, me.user.id)
        if user is not None:
            do_arrive(writer, user)
    set_committed_value(me.user, "availability", "online")


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, session: DbDep, runtime: RuntimeDep, me: Viewer) -> Response:
    _arrive(runtime, me)
    f = inbox_filter(request)
    context = {**_list_context(session, me, f), **_options(session, me), "view": None}
    return page(request, "inbox/inbox.html", context)


@router.get("/inbox/list", response_class=HTMLResponse)
def inbox_list(request: Request, session: DbDep, me: Viewer) -> Response:
    f = inbox_filter(request)
    context = {
        **_list_context(session, me, f),
        "current_id": _int(request.query_params.get("c")),
    }
    return page(request, "inbox/_list.html", context)


def _templates_for(session: Session, me: WebContext, channel: Channel) -> list[MessageTemplate]:
    return list(
        session.scalars(
            select(MessageTemplate)
            .where(
                MessageTemplate.workspace_id == me.workspace.id,
                MessageTemplate.waba_id == channel.waba_id,
                MessageTemplate.status == "APPROVED",
            )
            .order_by(MessageTemplate.name, MessageTemplate.language)
        )
    )


# Meta's attachment limits for the composer's instant check, as a data attribute.
ATTACHMENT_LIMITS = json.dumps(limits_for_browser(), separators=(",", ":"))


def conversation_context(session: Session, me: WebContext, header: q.Header) -> dict[str, Any]:
    """What the header, the side panel and the composer show."""
    conversation, contact, channel = header.conversation, header.contact, header.channel
    now = utcnow()
    window = r.window_of(conversation, now)
    others = session.execute(
        select(Conversation.id, Channel.name, Conversation.status, Conversation.last_activity_at)
        .join(Channel, Channel.id == Conversation.channel_id)
        .where(
            Conversation.contact_id == contact.id,
            Conversation.id != conversation.id,
            conversation_scope(me.actor),
        )
        .order_by(Conversation.last_activity_at.desc().nulls_last())
        .limit(10)
    ).all()
    return {
        "others": others,
        "consent": header.consent,
        "contact_tags": header.contact_tags,
        "c": conversation,
        "contact": contact,
        "channel": channel,
        "assignee": header.assignee,
        "team": header.team,
        "window": window,
        "templates": []
        if window_is_open(conversation, now)
        else _templates_for(session, me, channel),
        "closing_note_required": bool(
            (me.workspace.settings or {}).get(collab.CLOSING_NOTE_SETTING)
        ),
        "can_reply": me.can("conversations.reply"),
        "attachment_limits": ATTACHMENT_LIMITS,
        **bot_state(conversation, now),
        # Its newest satisfaction survey, read only for a conversation that has one.
        "survey": session.get(CsatSurvey, header.survey_id) if header.survey_id else None,
        # A fresh key for each panel drawn: a double click on "Run" starts one run.
        "run_key": secrets.token_urlsafe(12),
    }


def bot_state(conversation: Conversation, now: dt.datetime) -> dict[str, Any]:
    """Whether bots and workflows keep out of the conversation now, and until when if the
    pause ends by itself (the owner answered from the phone)."""
    paused = bot_is_paused(conversation, now)
    return {
        "bot_paused": paused,
        "bot_paused_until": conversation.bot_paused_until if paused else None,
    }


@router.get("/inbox/c/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    me: Viewer,
    conversation_id: int,
    before: Annotated[dt.datetime | None, Query()] = None,
) -> Response:
    if before is not None and before.tzinfo is None:
        before = before.replace(tzinfo=dt.UTC)
    _arrive(runtime, me)
    header = q.load_header(session, me.actor, conversation_id)
    conversation = header.conversation
    view = q.load_conversation_view(session, conversation, before=before, with_runs=header.has_runs)
    f = inbox_filter(request)
    flash = flash_of(request)
    # The list beside it loads separately (inbox.js): opening a conversation costs
    # only the conversation.
    context = {
        "f": f,
        "lazy_list": True,
        **_options(session, me),
        **conversation_context(session, me, header),
        "view": view,
        "current_id": conversation.id,
        # Not `flash`: the base layout would place it above the inbox's panes.
        "inbox_flash": flash,
    }
    response = page(request, "inbox/inbox.html", context)
    if before is None and (conversation.unread_count or header.unread_notification):
        # Opening a conversation reads it: its unread count and the viewer's notifications
        # about it are cleared in their own transaction once the page has left, so the
        # page never waits for a write (the list hears of it live).
        background.add_task(_mark_opened, runtime, me.user.id, me.workspace.id, conversation.id)
    return response


def _mark_opened(runtime: Runtime, user_id: int, workspace_id: int, conversation_id: int) -> None:
    # The request's objects are gone with its session: the writer loads its own.
    with runtime.db.unit_of_work(scope=workspace_id) as writer:
        conversation = writer.get(Conversation, conversation_id)
        user = writer.get(User, user_id)
        actor = load_member_actor(writer, user, workspace_id) if user is not None else None
        if conversation is None or actor is None:
            return
        collab.do_mark_read(writer, conversation)
        collab.do_read_notifications(writer, actor, conversation_id)


@router.get("/inbox/c/{conversation_id}/panel", response_class=HTMLResponse)
def conversation_panel(
    request: Request, session: DbDep, me: Viewer, conversation_id: int
) -> Response:
    header = q.load_header(session, me.actor, conversation_id)
    context = {**_options(session, me), **conversation_context(session, me, header)}
    return page(request, "inbox/_panel.html", context)


@router.get("/inbox/c/{conversation_id}/composer", response_class=HTMLResponse)
def conversation_composer(
    request: Request, session: DbDep, me: Viewer, conversation_id: int
) -> Response:
    header = q.load_header(session, me.actor, conversation_id)
    return page(request, "inbox/_composer.html", conversation_context(session, me, header))


@router.get("/inbox/c/{conversation_id}/recent", response_class=HTMLResponse)
def recent_items(request: Request, session: DbDep, me: Viewer, conversation_id: int) -> Response:
    """The newest page of the timeline, for a tab whose event stream has just (re)opened:
    what happened between the page being drawn and the stream listening, or while it was
    down, is placed without reloading the page."""
    conversation = access_conversation(session, me.actor, conversation_id)
    view = q.load_conversation_view(session, conversation)
    return page(request, "inbox/_recent.html", {"view": view, "c": conversation})


@router.get("/inbox/c/{conversation_id}/m/{message_id}", response_class=HTMLResponse)
def message_fragment(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, message_id: int
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    message = session.scalar(
        select(Message).where(
            Message.id == message_id,
            Message.conversation_id == conversation.id,
            Message.workspace_id == conversation.workspace_id,
        )
    )
    if message is None:
        raise NotFound("no such message")
    if message.type == "reaction" and message.reply_to_wamid:
        # A reaction re-renders the message it belongs to.
        target = session.scalar(
            select(Message).where(
                Message.wamid == message.reply_to_wamid,
                Message.conversation_id == conversation.id,
            )
        )
        message = target or message
    views = q.message_views(session, conversation, [message])
    item = q.TimelineItem(message.timestamp, "message", message=views[0]) if views else None
    if item is None:
        return Response(status_code=204)
    return page(request, "inbox/_item.html", {"item": item, "c": conversation})


@router.get("/inbox/c/{conversation_id}/notes/{note_id}", response_class=HTMLResponse)
def note_fragment(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, note_id: int
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    note = session.scalar(
        select(Note).where(Note.id == note_id, Note.conversation_id == conversation.id)
    )
    if note is None:
        raise NotFound("no such note")
    author = session.get(type(me.user), note.author_id) if note.author_id else None
    item = q.TimelineItem(
        note.created_at, "note", note=note, author_name=author.name if author else None
    )
    return page(request, "inbox/_item.html", {"item": item, "c": conversation})


@router.get("/inbox/c/{conversation_id}/events/{event_id}", response_class=HTMLResponse)
def event_fragment(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, event_id: int
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    row = session.execute(
        select(ConversationEvent, User.name)
        .outerjoin(User, User.id == ConversationEvent.actor_id)
        .where(
            ConversationEvent.id == event_id,
            ConversationEvent.conversation_id == conversation.id,
        )
    ).first()
    if row is None:
        raise NotFound("no such event")
    event, name = row
    item = q.TimelineItem(event.created_at, "event", event=event, author_name=name)
    return page(request, "inbox/_item.html", {"item": item, "c": conversation})


@router.get("/inbox/notifications", response_class=HTMLResponse)
def notifications(request: Request, session: DbDep, me: Viewer) -> Response:
    items = collab.unread_notifications(session, me.actor)
    return page(request, "inbox/_notifications.html", {"notifications": items})


@router.get("/inbox/media/{message_id}")
def media_file(
    request: Request, session: DbDep, me: Viewer, runtime: RuntimeDep, message_id: int
) -> Response:
    row = session.execute(
        select(Media, Conversation)
        .join(Message, Message.id == Media.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Media.message_id == message_id, Media.workspace_id == me.workspace.id)
    ).first()
    if row is None or not collab.visible_to(me.actor, row[1]):
        raise NotFound("no such media")
    media = row[0]
    if media.state != "stored" or not media.sha256:
        raise NotFound("this file has not been downloaded yet")
    path = Path(runtime.settings.data_dir) / "media" / media.sha256[:2] / media.sha256
    if not path.is_file():
        raise NotFound("this file is no longer stored")
    return FileResponse(
        path,
        media_type=media.mime_type or "application/octet-stream",
        filename=media.filename or None,
        content_disposition_type="inline" if _shown_inline(media.mime_type) else "attachment",
    )


def _shown_inline(mime: str | None) -> bool:
    # Only types a browser shows without running anything; the rest is downloaded.
    mime = (mime or "").split(";")[0].strip().lower()
    return mime in INLINE_TYPES or mime.startswith(("audio/", "video/"))


INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
