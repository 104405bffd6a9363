"""/dev/mail: the mail Puente would have sent, for the demo and tests without SMTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from puente.accounts.mail import list_mail
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
    return render(request, "dev/mail.html", {"mails": list_mail(session, me.actor.workspace_id)})
