"""Snippets management (shared and personal canned responses) and message search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from puente.contacts.models import Contact
from puente.conversations import snippets
from puente.conversations.models import Conversation
from puente.conversations.search import search_messages
from puente.web.deps import DbDep
from puente.web.inbox.common import Viewer, attempt, page
from puente.web.inbox.render import wa_format

router = APIRouter(include_in_schema=False)


@router.get("/inbox/snippets", response_class=HTMLResponse)
def snippets_page(request: Request, session: DbDep, me: Viewer) -> Response:
    items = snippets.list_snippets(session, me.actor)
    return page(request, "inbox/snippets.html", {"snippets": items, "preview": wa_format})


@router.post("/inbox/snippets")
def create_snippet(
    request: Request,
    session: DbDep,
    me: Viewer,
    shortcut: Annotated[str, Form(max_length=64)] = "",
    body: Annotated[str, Form(max_length=5000)] = "",
    shared: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    attempt(
        request,
        lambda: snippets.do_create_snippet(
            session, me.actor, shortcut=shortcut, body=body, shared=shared == "1"
        ),
    )
    return RedirectResponse("/inbox/snippets", status_code=303)


@router.post("/inbox/snippets/{snippet_id}/delete")
def delete_snippet(request: Request, session: DbDep, me: Viewer, snippet_id: int) -> Response:
    snippet = attempt(request, lambda: snippets.access_snippet(session, me.actor, snippet_id))
    attempt(request, lambda: snippets.do_delete_snippet(session, me.actor, snippet))
    return RedirectResponse("/inbox/snippets", status_code=303)


@router.get("/inbox/search", response_class=HTMLResponse)
def search(request: Request, session: DbDep, me: Viewer, q: str = "") -> Response:
    query = q.strip()[:200]
    hits = search_messages(session, me.actor, query) if query else []
    ids = {m.conversation_id for m in hits}
    names: dict[int, str] = {}
    if ids:
        rows = session.execute(
            select(Conversation.id, Contact.name, Contact.profile_name, Contact.phone_e164)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Conversation.id.in_(ids), Conversation.workspace_id == me.workspace.id)
        ).all()
        names = {r[0]: r[1] or r[2] or r[3] or "" for r in rows}
    return page(request, "inbox/search.html", {"q": query, "hits": hits, "names": names})
