"""/settings/privacy: contacts under legal hold, and placing or lifting a hold, exporting or
erasing one contact found by phone number. Every action goes through the gate
(privacy.manage; exporting also data.export) and is audited by the privacy service."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from puente.accounts import privacy, privacy_export
from puente.accounts.permissions import Perm
from puente.api.privacy import SPOOL_BYTES, stream_spool
from puente.errors import InvalidInput, PuenteError
from puente.web.deps import DbDep, RuntimeDep, WebContext, require_permission
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Guardian = Annotated[WebContext, Depends(require_permission(Perm.PRIVACY))]
Phone = Annotated[str, Form(max_length=40)]


def _page(
    request: Request, session: DbDep, me: WebContext, status: int = 200, **extra: object
) -> HTMLResponse:
    context = {"held": privacy.list_legal_holds(session, me.actor.workspace_id), **extra}
    return render(request, "settings/privacy.html", context, status_code=status)


def _attempt(
    request: Request, session: DbDep, me: WebContext, action: Callable[[], str]
) -> HTMLResponse:
    try:
        with session.begin_nested():
            flash = action()
    except PuenteError as exc:
        return _page(request, session, me, exc.status_code, error=translate(request, exc.message))
    return _page(request, session, me, flash=flash)


@router.get("/settings/privacy", response_class=HTMLResponse)
def privacy_page(request: Request, session: DbDep, me: Guardian) -> Response:
    return _page(request, session, me)


@router.post("/settings/privacy/hold", response_class=HTMLResponse)
def privacy_hold(
    request: Request,
    session: DbDep,
    me: Guardian,
    phone: Phone,
    hold: Annotated[str, Form(max_length=8)] = "on",
) -> Response:
    def change() -> str:
        ws = me.actor.workspace_id
        contact = privacy.access_contact_by_phone(session, ws, phone)
        privacy.do_set_legal_hold(session, me.actor, ws, contact.id, hold != "off")
        if hold == "off":
            return translate(request, "The legal hold was lifted.")
        return translate(request, "The contact is under legal hold.")

    return _attempt(request, session, me, change)


@router.post("/settings/privacy/export", response_class=HTMLResponse)
def privacy_export_contact(
    request: Request, session: DbDep, runtime: RuntimeDep, me: Guardian, phone: Phone
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by stream_spool)
    try:
        with session.begin_nested():
            ws = me.actor.workspace_id
            contact = privacy.access_contact_by_phone(session, ws, phone)
            privacy_export.do_export_contact(
                session, me.actor, ws, contact.id, runtime.settings.data_dir / "media", spool
            )
    except PuenteError as exc:
        spool.close()
        return _page(request, session, me, exc.status_code, error=translate(request, exc.message))
    return StreamingResponse(
        stream_spool(spool),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact.id}.zip"'},
    )


@router.post("/settings/privacy/erase", response_class=HTMLResponse)
def privacy_erase(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Guardian,
    phone: Phone,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    def erase() -> str:
        # The page asks in the browser too; this holds without JavaScript.
        if confirm != "yes":
            raise InvalidInput("tick the box to confirm: erasing cannot be undone")
        ws = me.actor.workspace_id
        contact = privacy.access_contact_by_phone(session, ws, phone)
        counts = privacy.do_erase_contact(
            session, me.actor, ws, contact.id, runtime.settings.data_dir / "media"
        )
        return translate(
            request,
            "The contact was erased: %(conversations)d conversations, %(messages)d messages.",
            conversations=counts.conversations,
            messages=counts.messages,
        )

    return _attempt(request, session, me, erase)
