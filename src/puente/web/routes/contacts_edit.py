"""Changes made on the contact page: the name and custom fields edited in place (htmx
swaps the block; without JavaScript the form posts and the page reloads), tags, a
consent record, and the privacy actions (legal hold, export, erase) through the privacy
services, which check the permission again and audit."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from puente.accounts import privacy, privacy_export
from puente.accounts.permissions import Perm
from puente.api.privacy import SPOOL_BYTES, stream_spool
from puente.contacts import consent, service
from puente.contacts.consent import ConsentSource
from puente.contacts.models import ConsentKind, Contact
from puente.errors import InvalidInput, PuenteError
from puente.web.deps import DbDep, RuntimeDep, WebContext, require_permission
from puente.web.routes.contacts import contact_page_response
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Editor = Annotated[WebContext, Depends(require_permission(Perm.CONTACTS_MANAGE))]
Exporter = Annotated[WebContext, Depends(require_permission(Perm.EXPORT))]
Guardian = Annotated[WebContext, Depends(require_permission(Perm.PRIVACY))]
FieldKey = Annotated[str, Form(max_length=100)]
FieldValue = Annotated[str, Form(max_length=500)]


def _htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def _back(contact_id: int, done: str | None = None) -> RedirectResponse:
    suffix = f"?done={done}" if done else ""
    return RedirectResponse(f"/contacts/{contact_id}{suffix}", status_code=303)


def _block(
    request: Request, session: DbDep, contact: Contact, template: str, **extra: Any
) -> HTMLResponse:
    context = {
        "contact": contact,
        "contact_tags": service.tags_of(session, [contact.id])[contact.id],
        **extra,
    }
    return render(request, f"contacts/{template}", context)


def _change(
    request: Request,
    session: DbDep,
    me: WebContext,
    contact_id: int,
    template: str,
    action: Callable[[Contact], object],
) -> Response:
    """Run `action` on the contact; answer htmx with the block, a form post with a redirect.
    A refused change shows its reason in the block (or the page) instead."""
    contact = service.access_contact(session, me.actor.workspace_id, contact_id)
    try:
        with session.begin_nested():
            action(contact)
    except InvalidInput as exc:
        error = translate(request, exc.message)
        if _htmx(request):
            return _block(request, session, contact, template, error=error)
        return contact_page_response(request, session, me, contact_id, status=422, error=error)
    if _htmx(request):
        return _block(request, session, contact, template)
    return _back(contact_id)


# -- the name --------------------------------------------------------------------------


@router.get("/contacts/{contact_id:int}/name/edit", response_class=HTMLResponse)
def name_editor(request: Request, session: DbDep, me: Editor, contact_id: int) -> Response:
    contact = service.access_contact(session, me.actor.workspace_id, contact_id)
    return _block(request, session, contact, "_name.html", editing="name")


@router.get("/contacts/{contact_id:int}/name", response_class=HTMLResponse)
def name_view(request: Request, session: DbDep, me: Editor, contact_id: int) -> Response:
    contact = service.access_contact(session, me.actor.workspace_id, contact_id)
    return _block(request, session, contact, "_name.html")


@router.post("/contacts/{contact_id:int}/name", response_class=HTMLResponse)
def name_save(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def save(contact: Contact) -> None:
        service.do_update_contact(session, contact, name=name, actor=me.actor)

    return _change(request, session, me, contact_id, "_name.html", save)


# -- custom fields ---------------------------------------------------------------------


@router.get("/contacts/{contact_id:int}/fields", response_class=HTMLResponse)
def fields_view(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    edit: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The custom fields block, with the field `edit` opened for editing."""
    contact = service.access_contact(session, me.actor.workspace_id, contact_id)
    return _block(request, session, contact, "_fields.html", editing_key=edit)


@router.post("/contacts/{contact_id:int}/fields", response_class=HTMLResponse)
def field_save(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    key: FieldKey = "",
    value: FieldValue = "",
) -> Response:
    def save(contact: Contact) -> None:
        name = key.strip()
        if not name:
            raise InvalidInput("Give the field a name.")
        # An emptied value removes the field, as in the inbox's contact panel.
        service.do_update_contact(
            session, contact, custom_fields={name: value.strip() or None}, actor=me.actor
        )

    return _change(request, session, me, contact_id, "_fields.html", save)


@router.post("/contacts/{contact_id:int}/fields/remove", response_class=HTMLResponse)
def field_remove(
    request: Request, session: DbDep, me: Editor, contact_id: int, key: FieldKey = ""
) -> Response:
    def remove(contact: Contact) -> None:
        if key in (contact.custom_fields or {}):
            service.do_update_contact(session, contact, custom_fields={key: None}, actor=me.actor)

    return _change(request, session, me, contact_id, "_fields.html", remove)


# -- tags ------------------------------------------------------------------------------


@router.post("/contacts/{contact_id:int}/tags", response_class=HTMLResponse)
def tag_add(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    tag: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    def add(contact: Contact) -> None:
        names = [t.strip() for t in tag.split(",") if t.strip()]
        if not names or any(len(n) > service.MAX_TAG_LENGTH for n in names):
            raise InvalidInput("Each tag must be 1 to 100 characters.")
        service.do_add_tags(session, contact, names, me.actor)

    return _change(request, session, me, contact_id, "_tags.html", add)


@router.post("/contacts/{contact_id:int}/tags/remove", response_class=HTMLResponse)
def tag_remove(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    tag: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    def remove(contact: Contact) -> None:
        service.do_remove_tag(session, contact, tag, me.actor)

    return _change(request, session, me, contact_id, "_tags.html", remove)


# -- consent ---------------------------------------------------------------------------


@router.post("/contacts/{contact_id:int}/consent", response_class=HTMLResponse)
def consent_record(
    request: Request,
    session: DbDep,
    me: Editor,
    contact_id: int,
    kind: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    contact = service.access_contact(session, me.actor.workspace_id, contact_id)
    if kind not in (ConsentKind.OPT_IN, ConsentKind.OPT_OUT):
        error = translate(request, "Choose opt-in or opt-out.")
        return contact_page_response(request, session, me, contact_id, status=422, error=error)
    consent.do_record_consent(
        session,
        contact=contact,
        kind=kind,
        source=ConsentSource.AGENT,
        by_user_id=me.user.id,
        note=note.strip() or None,
        actor=me.actor,
    )
    return _back(contact_id, "consent")


# -- privacy: legal hold, export, erase ------------------------------------------------


def _attempt(
    request: Request, session: DbDep, me: WebContext, contact_id: int, action: Callable[[], str]
) -> Response:
    try:
        with session.begin_nested():
            done = action()
    except PuenteError as exc:
        if exc.status_code == 404:
            raise
        error = translate(request, exc.message)
        return contact_page_response(
            request, session, me, contact_id, status=exc.status_code, error=error
        )
    return RedirectResponse(done, status_code=303)


@router.post("/contacts/{contact_id:int}/hold", response_class=HTMLResponse)
def legal_hold(
    request: Request,
    session: DbDep,
    me: Guardian,
    contact_id: int,
    hold: Annotated[str, Form(max_length=8)] = "on",
) -> Response:
    def change() -> str:
        on = hold != "off"
        privacy.do_set_legal_hold(session, me.actor, me.actor.workspace_id, contact_id, on)
        return f"/contacts/{contact_id}?done={'hold_on' if on else 'hold_off'}"

    return _attempt(request, session, me, contact_id, change)


@router.post("/contacts/{contact_id:int}/export")
def export_contact(
    request: Request, session: DbDep, runtime: RuntimeDep, me: Exporter, contact_id: int
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by stream_spool)
    try:
        privacy_export.do_export_contact(
            session,
            me.actor,
            me.actor.workspace_id,
            contact_id,
            runtime.settings.data_dir / "media",
            spool,
        )
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        stream_spool(spool),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.zip"'},
    )


@router.post("/contacts/{contact_id:int}/erase", response_class=HTMLResponse)
def erase_contact(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Guardian,
    contact_id: int,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    def erase() -> str:
        # The page asks in the browser too; this holds without JavaScript.
        if confirm != "yes":
            raise InvalidInput("tick the box to confirm: erasing cannot be undone")
        privacy.do_erase_contact(
            session,
            me.actor,
            me.actor.workspace_id,
            contact_id,
            runtime.settings.data_dir / "media",
        )
        return "/contacts?done=erased"

    return _attempt(request, session, me, contact_id, erase)
