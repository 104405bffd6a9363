"""Merging contacts in the web UI: "Merge with…" on a contact's page (find the other
contact, compare them side by side, choose each field's value, confirm), the split of a
merge from the kept contact's activity, and the "Possible duplicates" page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from puente.accounts.permissions import Perm
from puente.contacts import consent, duplicates, merge, service
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from puente.errors import Conflict, PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.routes.contacts import contact_page_response
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Editor = Annotated[WebContext, Depends(require_permission(Perm.CONTACTS_MANAGE))]
SEARCH_LIMIT = 20


def _error(request: Request, exc: PuenteError) -> str:
    return translate(request, exc.template, **exc.params)


def _side(session: DbDep, contact: Contact) -> dict[str, Any]:
    """What the comparison shows of one contact besides its fields."""
    conversations = session.scalar(
        select(func.count()).where(Conversation.contact_id == contact.id)
    )
    return {
        "contact": contact,
        "tags": service.tags_of(session, [contact.id])[contact.id],
        "conversations": int(conversations or 0),
        "consent": consent.access_consent(session, contact.workspace_id, contact.id).state,
    }


def _merge_page(
    request: Request,
    session: DbDep,
    me: WebContext,
    contact_id: int,
    *,
    q: str | None = None,
    other_id: int | None = None,
    choices: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    ws = me.actor.workspace_id
    keep = service.access_contact(session, ws, contact_id)
    context: dict[str, Any] = {"keep": keep, "q": q or "", "error": error, "results": []}
    if q and q.strip():
        found = service.list_contacts(
            session, ws, service.ContactFilter(q=q.strip()), limit=SEARCH_LIMIT + 1
        )
        context["results"] = [c for c in found if c.id != keep.id][:SEARCH_LIMIT]
    if other_id is not None:
        try:
            keep, other = merge.access_merge_pair(session, ws, contact_id, other_id)
        except PuenteError as exc:
            context["error"] = _error(request, exc)
            return render(request, "contacts/merge.html", context, status_code=exc.status_code)
        try:
            merge.check_merge(session, keep, other)
        except Conflict as exc:
            context["refused"] = _error(request, exc)
        fields = merge.choosable_fields(keep, other)
        picked = choices or {}
        context.update(
            other=other,
            left=_side(session, keep),
            right=_side(session, other),
            fields=[
                {
                    "name": f,
                    "keep": merge.field_value(keep, f),
                    "other": merge.field_value(other, f),
                    "choice": picked.get(f) or merge.default_choice(keep, other, f),
                }
                for f in fields
            ],
        )
    return render(request, "contacts/merge.html", context, status_code=status)


@router.get("/contacts/{contact_id:int}/merge", response_class=HTMLResponse)
def merge_page(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    q: Annotated[str | None, Query(max_length=200)] = None,
    other: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    return _merge_page(request, session, me, contact_id, q=q, other_id=other)


@router.post("/contacts/{contact_id:int}/merge", response_class=HTMLResponse)
async def merge_contacts(request: Request, session: DbDep, me: Editor, contact_id: int) -> Response:
    form = await request.form()
    raw_other = str(form.get("other") or "")
    if not raw_other.isdigit():
        message = translate(request, "Choose the contact to merge into this one.")
        return _merge_page(request, session, me, contact_id, error=message, status=422)
    other_id = int(raw_other)
    choices = {
        str(key).removeprefix("field:"): str(value)
        for key, value in form.multi_items()
        if str(key).startswith("field:")
    }
    try:
        with session.begin_nested():
            keep, other = merge.access_merge_pair(
                session, me.actor.workspace_id, contact_id, other_id
            )
            merge.do_merge_contacts(session, keep, other, choices, actor=me.actor)
    except PuenteError as exc:
        return _merge_page(
            request,
            session,
            me,
            contact_id,
            other_id=other_id if exc.status_code != 404 else None,
            choices=choices,
            error=_error(request, exc),
            status=exc.status_code,
        )
    return RedirectResponse(f"/contacts/{contact_id}?done=merged", status_code=303)


@router.post("/contacts/{contact_id:int}/merges/{merge_id:int}/split", response_class=HTMLResponse)
def split_merge(
    request: Request, session: DbDep, me: Editor, contact_id: int, merge_id: int
) -> Response:
    try:
        with session.begin_nested():
            found = merge.access_merge(session, me.actor.workspace_id, contact_id, merge_id)
            restored = merge.do_split_merge(session, found, actor=me.actor)
            restored_id = restored.id
    except PuenteError as exc:
        if exc.status_code == 404:
            raise
        return contact_page_response(
            request, session, me, contact_id, status=exc.status_code, error=_error(request, exc)
        )
    return RedirectResponse(f"/contacts/{restored_id}?done=split", status_code=303)


@router.get("/contacts/duplicates", response_class=HTMLResponse)
def duplicates_page(request: Request, session: DbDep, me: Editor) -> Response:
    found = duplicates.find_duplicates(session, me.actor.workspace_id)
    return render(request, "contacts/duplicates.html", {"suggestions": found})
