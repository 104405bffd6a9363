"""The start page and the user menu's quick settings (language, availability)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import iter_route_contexts

from puente.accounts.permissions import Perm
from puente.accounts.presence import do_set_availability
from puente.accounts.service import do_update_profile
from puente.web.deps import DbDep, Member
from puente.web.templating import render

router = APIRouter(include_in_schema=False)


def _back(request: Request) -> str:
    # Return to the page the menu was used on, if it was one of ours.
    referer = request.headers.get("referer", "")
    base = str(request.base_url)
    if referer.startswith(base):
        return "/" + referer[len(base) :]
    return "/"


@router.get("/", response_class=HTMLResponse)
def home(request: Request, me: Member) -> Response:
    # Who watches the team (reports.view) starts on the dashboard, everybody else in the
    # inbox; each once it exists.
    paths = {r.path for r in iter_route_contexts(request.app.routes)}
    if me.can(Perm.REPORTS) and "/dashboard" in paths:
        return RedirectResponse("/dashboard", status_code=303)
    if "/inbox" in paths:
        return RedirectResponse("/inbox", status_code=303)
    return render(request, "home.html")


@router.post("/me/language")
def set_language(
    request: Request, session: DbDep, me: Member, language: Annotated[str, Form(max_length=8)]
) -> Response:
    do_update_profile(session, me.user, locale=language)
    return RedirectResponse(_back(request), status_code=303)


@router.post("/me/availability")
def set_availability(
    request: Request,
    session: DbDep,
    me: Member,
    availability: Annotated[str, Form(max_length=16)],
) -> Response:
    do_set_availability(session, me.user, availability)
    if request.headers.get("hx-request"):
        return Response(status_code=204)
    return RedirectResponse(_back(request), status_code=303)
