"""The composer's attachments and questions with options: thin routes that check the file
or the question, then queue the message in the outbox and answer inbox.js with the
message fragment (pending), or the refusal in the agent's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from puente.accounts.gate import access_conversation
from puente.conversations import collab
from puente.conversations.models import Conversation, Message
from puente.errors import InvalidInput, PuenteError
from puente.outbound.outbox import attachments as att
from puente.outbound.outbox.questions import check_question, question_from_form
from puente.runtime import Runtime
from puente.web.deps import DbDep, WebContext
from puente.web.inbox.actions import _message_fragment, _queue, _send_error
from puente.web.inbox.common import Replier, done, page

router = APIRouter(include_in_schema=False)
# Meta's largest kind (documents) is 100 MB; the form around it adds a little.
MAX_UPLOAD = att.KINDS["document"].max_bytes + 64 * 1024


def _refused(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 422)
    response = page(
        request, "inbox/_send_error.html", {"error": _send_error(request, exc)}, status_code=status
    )
    if getattr(exc, "code", "") == "window_closed":
        response.headers["X-Inbox-Refresh"] = "composer"
    return response


# -- attachments ---------------------------------------------------------------------------


@router.post("/inbox/c/{conversation_id}/send-media", response_class=HTMLResponse)
async def send_media(
    request: Request, session: DbDep, me: Replier, conversation_id: int
) -> Response:
    # A body far over the largest file WhatsApp takes is refused before it is read at all.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD + 1024 * 1024:
        return _refused(
            request,
            collab.user_error(
                InvalidInput,
                "The file is too big: WhatsApp takes no file over %(limit)s.",
                limit="100 MB",
            ),
        )
    form = await request.form(max_part_size=64 * 1024)
    upload = form.get("file")
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _refused(request, collab.user_error(InvalidInput, "Choose a file to send."))
    # The size is known before reading: an oversized file is refused without loading it.
    if upload.size is not None and upload.size > MAX_UPLOAD:
        data = b""
        oversized = True
    else:
        data = await upload.read(MAX_UPLOAD + 1)
        oversized = len(data) > MAX_UPLOAD
    return await run_in_threadpool(
        _send_media,
        request,
        session,
        me,
        conversation_id,
        fields,
        upload.filename,
        upload.content_type or "",
        data,
        oversized,
    )


def _send_media(
    request: Request,
    session: DbDep,
    me: WebContext,
    conversation_id: int,
    form: dict[str, str],
    filename: str,
    declared_type: str,
    data: bytes,
    oversized: bool,
) -> Response:
    conversation = access_conversation(session, me.actor, conversation_id)
    runtime: Runtime = request.app.state.runtime
    try:
        if oversized:
            raise collab.user_error(
                InvalidInput,
                "The file %(name)s is too big: WhatsApp takes files of this type up to %(limit)s.",
                name=Path(filename).name,
                limit="100 MB",
            )
        attachment = att.check_attachment(filename, declared_type, data, form.get("caption"))

        def send() -> Message:
            return att.do_queue_attachment(
                session,
                runtime.settings.data_dir,
                workspace_id=me.workspace.id,
                conversation_id=conversation.id,
                attachment=attachment,
                reply_to=form.get("reply_to") or None,
                sender_user_id=me.user.id,
                actor=me.actor,
            )

        # A retried press of Send shows its message without storing or queueing again.
        message, _new = collab.do_send_once(session, me.workspace.id, form.get("key", ""), send)
    except PuenteError as exc:
        return _refused(request, exc)
    return done(
        request,
        f"/inbox/c/{conversation.id}",
        lambda: _message_fragment(request, session, conversation, message),
    )


# -- questions with options -------------------------------------------------------------------


@router.post("/inbox/c/{conversation_id}/send-question", response_class=HTMLResponse)
async def send_question(
    request: Request, session: DbDep, me: Replier, conversation_id: int
) -> Response:
    form = await request.form()
    options = [str(v) for v in form.getlist("option")][:20]
    descriptions = [str(v) for v in form.getlist("description")][:20]
    fields = {k: str(v)[:5000] for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(
        _send_question, request, session, me, conversation_id, fields, options, descriptions
    )


def _send_question(
    request: Request,
    session: DbDep,
    me: WebContext,
    conversation_id: int,
    form: dict[str, str],
    options: list[str],
    descriptions: list[str],
) -> Response:
    conversation: Conversation = access_conversation(session, me.actor, conversation_id)
    question = question_from_form(
        form.get("body", ""),
        options,
        descriptions,
        style=form.get("style", "buttons"),
        header=form.get("header", ""),
        footer=form.get("footer", ""),
        list_button=form.get("list_button", ""),
        section_title=form.get("section_title", ""),
    )
    try:
        wire: dict[str, Any] = check_question(question)
    except PuenteError as exc:
        return _refused(request, exc)
    return _queue(
        request,
        session,
        me,
        conversation,
        form.get("key", ""),
        "interactive",
        wire,
        form.get("reply_to") or None,
    )
