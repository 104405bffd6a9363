"""What agents do from a conversation: send (text, template, reaction), assign, close,
reopen, snooze, notes, labels, bot pause, unread, typing. Thin: each calls the domain
and answers inbox.js with a fragment, or a plain form post with a redirect."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from puente.accounts.gate import access_conversation
from puente.contacts.models import Contact
from puente.contacts.service import do_update_contact
from puente.conversations import collab, snippets
from puente.conversations.models import Conversation, Message, MessageSource
from puente.db.base import utcnow
from puente.errors import Conflict, Forbidden, InvalidInput, NotFound, PuenteError
from puente.events import AgentTyping
from puente.outbound.models import MessageTemplate
from puente.outbound.outbox.service import ChannelPaused, WindowClosed, do_queue_message
from puente.outbound.templates.preview import render_preview
from puente.outbound.templates.service import check_template_send
from puente.web.deps import DbDep, WebContext
from puente.web.inbox import queries as q
from puente.web.inbox.common import Replier, Viewer, attempt, done, page, translated
from puente.web.inbox.templates_form import (
    missing_values,
    template_content,
    template_fields,
    template_values,
)

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=5000)]
Short = Annotated[str, Form(max_length=200)]


def _back(conversation_id: int) -> str:
    return f"/inbox/c/{conversation_id}"


def _message_fragment(
    request: Request, session: DbDep, conversation: Conversation, message: Message
) -> Response:
    views = q.message_views(session, conversation, [message])
    item = q.TimelineItem(message.timestamp, "message", message=views[0])
    return page(request, "inbox/_item.html", {"item": item, "c": conversation})


def _send_error(request: Request, exc: Exception) -> str:
    if isinstance(exc, WindowClosed):
        return collab_text(
            request,
            "The 24-hour window is closed: only an approved template can be sent now.",
        )
    if isinstance(exc, ChannelPaused):
        return collab_text(
            request, "This number is disconnected: sending is paused until it reconnects."
        )
    assert isinstance(exc, InvalidInput | Conflict | NotFound)
    return translated(request, exc)


def collab_text(request: Request, msgid: str, **params: Any) -> str:
    from puente.web.templating import translate

    return translate(request, msgid, **params)


def _queue(
    request: Request,
    session: DbDep,
    me: WebContext,
    conversation: Conversation,
    key: str,
    message_type: str,
    content: dict[str, Any],
    reply_to: str | None = None,
) -> Response:
    def send() -> Message:
        return do_queue_message(
            session,
            workspace_id=me.workspace.id,
            message_type=message_type,
            content=content,
            conversation_id=conversation.id,
            reply_to=reply_to or None,
            source=MessageSource.AGENT,
            sender_user_id=me.user.id,
            actor=me.actor,
        )

    try:
        message, _new = collab.do_send_once(session, me.workspace.id, key, send)
    except (WindowClosed, ChannelPaused, InvalidInput, Conflict, NotFound) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        if isinstance(exc, NotFound):
            status = 404
        response = page(
            request,
            "inbox/_send_error.html",
            {"error": _send_error(request, exc)},
            status_code=status,
        )
        if isinstance(exc, WindowClosed):
            response.headers["X-Inbox-Refresh"] = "composer"
        return response
    return done(
        request,
        _back(conversation.id),
        lambda: _message_fragment(request, session, conversation, message),
    )


@router.post("/inbox/c/{conversation_id}/send", response_class=HTMLResponse)
def send_text(
    request: Request,
    session: DbDep,
    me: Replier,
    conversation_id: int,
    body: Text = "",
    reply_to: Short = "",
    key: Short = "",
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    text = body.strip()
    if not text:
        return page(
            request,
            "inbox/_send_error.html",
            {"error": collab_text(request, "Write a message first.")},
            status_code=422,
        )
    if len(text) > 4096:
        return page(
            request,
            "inbox/_send_error.html",
            {"error": collab_text(request, "The message is too long (at most 4,096 characters).")},
            status_code=422,
        )
    return _queue(request, session, me, conversation, key, "text", {"body": text}, reply_to)


@router.post("/inbox/c/{conversation_id}/react", response_class=HTMLResponse)
def react(
    request: Request,
    session: DbDep,
    me: Replier,
    conversation_id: int,
    message_id: Annotated[int, Form()],
    emoji: Annotated[str, Form(max_length=16)] = "",
    key: Short = "",
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    target = session.scalar(
        select(Message).where(Message.id == message_id, Message.conversation_id == conversation.id)
    )
    if target is None or not target.wamid:
        return _form_error(request, "This message cannot get a reaction yet.")
    return _queue(
        request,
        session,
        me,
        conversation,
        key,
        "reaction",
        {"message_id": target.wamid, "emoji": emoji},
    )


# -- templates (when the window is closed) -----------------------------------------------------


def _template(session: DbDep, me: WebContext, template_id: int) -> MessageTemplate:
    template = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.id == template_id, MessageTemplate.workspace_id == me.workspace.id
        )
    )
    if template is None:
        raise NotFound("no such template")
    return template


@router.get("/inbox/c/{conversation_id}/template", response_class=HTMLResponse)
def template_form(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, template_id: int
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    template = _template(session, me, template_id)
    values = template_values(request.query_params)
    context = {
        "c": conversation,
        "template": template,
        "fields": template_fields(template),
        "values": values,
        "preview": render_preview(template.components, values),
    }
    name = (
        "inbox/_template_preview.html"
        if request.query_params.get("preview")
        else "inbox/_template_form.html"
    )
    return page(request, name, context)


@router.post("/inbox/c/{conversation_id}/send-template", response_class=HTMLResponse)
async def send_template(
    request: Request, session: DbDep, me: Replier, conversation_id: int
) -> Response:
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(_send_template, request, session, me, conversation_id, fields)


def _send_template(
    request: Request, session: DbDep, me: WebContext, conversation_id: int, form: dict[str, str]
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    template_id = form.get("template_id", "")
    if not template_id.isdigit():
        return _form_error(request, "Choose a template first.")
    template = _template(session, me, int(template_id))
    values = template_values(form)
    missing = missing_values(template, values)
    if missing:
        return _form_error(request, "Fill in every variable: %(names)s.", names=", ".join(missing))
    try:
        check_template_send(
            session,
            workspace_id=me.workspace.id,
            name=template.name,
            language=template.language,
            contact_id=conversation.contact_id,
            waba_id=template.waba_id,
        )
    except PuenteError as exc:
        return page(
            request,
            "inbox/_send_error.html",
            {"error": translated(request, exc)},
            status_code=exc.status_code,
        )
    content = template_content(template, values)
    return _queue(request, session, me, conversation, form.get("key", ""), "template", content)


def _form_error(request: Request, msgid: str, **params: Any) -> Response:
    return page(
        request,
        "inbox/_send_error.html",
        {"error": collab_text(request, msgid, **params)},
        status_code=422,
    )


# -- collaboration -----------------------------------------------------------------------------


def _conversation(
    request: Request, session: DbDep, me: WebContext, conversation_id: int
) -> Conversation:
    return access_conversation(session, me.actor, conversation_id)


@router.post("/inbox/c/{conversation_id}/assign")
def assign(
    request: Request,
    session: DbDep,
    me: Viewer,
    conversation_id: int,
    assignee_id: Short = "",
    team_id: Short = "",
    expected_assignee: Short = "any",
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    target = (
        me.user.id if assignee_id == "me" else (int(assignee_id) if assignee_id.isdigit() else None)
    )
    team = int(team_id) if team_id.isdigit() else None
    attempt(
        request,
        lambda: collab.do_assign(
            session,
            me.actor,
            conversation,
            assignee_id=target,
            team_id=team,
            expected_assignee=expected_assignee,
        ),
    )
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/close")
def close(
    request: Request,
    session: DbDep,
    me: Viewer,
    conversation_id: int,
    note: Text = "",
    expected_status: Short = "",
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    required = bool((me.workspace.settings or {}).get(collab.CLOSING_NOTE_SETTING))
    attempt(
        request,
        lambda: collab.do_close(
            session,
            me.actor,
            conversation,
            closing_note=note,
            note_required=required,
            expected_status=expected_status or None,
        ),
    )
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/reopen")
def reopen(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, expected_status: Short = ""
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    attempt(
        request,
        lambda: collab.do_reopen(
            session, me.actor, conversation, expected_status=expected_status or None
        ),
    )
    return done(request, _back(conversation.id))


def snooze_time(me: WebContext, preset: str, until: str, now: dt.datetime) -> dt.datetime:
    """A preset ("1h", "tomorrow", "nextweek") or a local date-time from the form, in the
    agent's own time zone."""
    try:
        zone = zoneinfo.ZoneInfo(me.user.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local_now = now.astimezone(zone)
    if preset == "1h":
        return now + dt.timedelta(hours=1)
    if preset == "4h":
        return now + dt.timedelta(hours=4)
    if preset == "tomorrow":
        morning = (local_now + dt.timedelta(days=1)).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        return morning.astimezone(dt.UTC)
    if preset == "nextweek":
        days = 7 - local_now.weekday()
        morning = (local_now + dt.timedelta(days=days)).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        return morning.astimezone(dt.UTC)
    try:
        local = dt.datetime.fromisoformat(until)
    except ValueError:
        raise collab.user_error(
            InvalidInput, "Choose a time in the future to snooze until."
        ) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(dt.UTC)


@router.post("/inbox/c/{conversation_id}/snooze")
def snooze(
    request: Request,
    session: DbDep,
    me: Viewer,
    conversation_id: int,
    preset: Short = "",
    until: Short = "",
    expected_status: Short = "",
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    now = utcnow()

    def act() -> Conversation:
        return collab.do_snooze(
            session,
            me.actor,
            conversation,
            until=snooze_time(me, preset, until, now),
            now=now,
            expected_status=expected_status or None,
        )

    attempt(request, act)
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/note", response_class=HTMLResponse)
def add_note(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, body: Text = ""
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    note = attempt(request, lambda: collab.do_add_note(session, me.actor, conversation, body))

    def fragment() -> Response:
        item = q.TimelineItem(note.created_at, "note", note=note, author_name=me.user.name)
        return page(request, "inbox/_item.html", {"item": item, "c": conversation})

    return done(request, _back(conversation.id), fragment)


@router.post("/inbox/c/{conversation_id}/labels")
def add_label(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, label: Short = ""
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    attempt(request, lambda: collab.do_add_label(session, me.actor, conversation, label))
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/labels/remove")
def remove_label(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, label: Short = ""
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    attempt(request, lambda: collab.do_remove_label(session, me.actor, conversation, label))
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/bot")
def set_bot(
    request: Request, session: DbDep, me: Viewer, conversation_id: int, paused: Short = "1"
) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    collab.do_set_bot_paused(session, me.actor, conversation, paused=paused == "1")
    return done(request, _back(conversation.id))


@router.post("/inbox/c/{conversation_id}/unread")
def mark_unread(request: Request, session: DbDep, me: Viewer, conversation_id: int) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    collab.do_mark_unread(session, me.actor, conversation)
    # Back to the list: staying would mark it read again.
    return done(request, "/inbox")


@router.post("/inbox/c/{conversation_id}/typing")
def typing(request: Request, session: DbDep, me: Viewer, conversation_id: int) -> Response:
    conversation = _conversation(request, session, me, conversation_id)
    hub = getattr(request.app.state, "inbox_hub", None)
    if hub is not None:
        hub.deliver_now(
            AgentTyping(
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                user_id=me.user.id,
                name=me.user.name,
            )
        )
    return Response(status_code=204)


@router.post("/inbox/notifications/read")
def read_notifications(request: Request, session: DbDep, me: Viewer) -> Response:
    collab.do_read_notifications(session, me.actor)
    return done(request, "/inbox")


@router.get("/inbox/c/{conversation_id}/snippets")
def composer_snippets(
    session: DbDep, me: Viewer, conversation_id: int, prefix: str = ""
) -> Response:
    """Snippets matching what follows "/" in the composer, variables filled for this contact."""
    conversation = access_conversation(session, me.actor, conversation_id)
    contact = session.get(Contact, conversation.contact_id)
    items = [
        {
            "shortcut": s.shortcut,
            "shared": s.owner_id is None,
            "text": snippets.fill_variables(s.body, contact=contact, agent_name=me.user.name),
        }
        for s in snippets.list_snippets(session, me.actor, prefix[:64])
    ]
    return JSONResponse({"items": items})


@router.post("/inbox/c/{conversation_id}/contact")
async def contact_fields(
    request: Request, session: DbDep, me: Viewer, conversation_id: int
) -> Response:
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(_contact_fields, request, session, me, conversation_id, fields)


def _contact_fields(
    request: Request, session: DbDep, me: WebContext, conversation_id: int, form: dict[str, str]
) -> Response:
    if not me.can("contacts.manage"):
        raise collab.user_error(Forbidden, "Your role does not allow editing contacts.")
    conversation = access_conversation(session, me.actor, conversation_id)
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None  # conversations go with their contact
    changes: dict[str, Any] = {}
    for key, value in form.items():
        if key.startswith("field."):
            name = key.removeprefix("field.")
            changes[name] = value.strip()[:500] or None  # an emptied field is removed
    new_key = form.get("new_key", "").strip()[:40]
    if new_key:
        changes[new_key] = form.get("new_value", "").strip()[:500] or None
    if changes:
        attempt(
            request,
            lambda: do_update_contact(session, contact, custom_fields=changes, actor=me.actor),
        )
    return done(request, _back(conversation.id))
