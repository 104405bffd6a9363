"""/dev/mail: the mail Puente kept, for the demo and development without SMTP. Mounted
only with PUENTE_DEV_MAIL on (`puente demo` turns it on); in production it does not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from puente.accounts.mail import list_mail_for_viewer
from puente.accounts.permissions import Perm
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/dev/mail", response_class=HTMLResponse)
def mail_outbox(
    request: Request,
    session: DbDep,
    me: Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))],
) -> Response:
    mails = list_mail_for_viewer(session, me.actor.workspace_id, me.user.email)
    return render(request, "dev/mail.html", {"mails": mails})
