"""Contacts pages: the directory (/contacts) with search, filters and counts, a new
contact, CSV import with its per-row report, CSV export, and the contact page. Editing
on the contact page lives in contacts_edit.py."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from puente.accounts.permissions import Perm
from puente.api.privacy import SPOOL_BYTES, stream_spool
from puente.contacts import consent, csv_export, csv_import, directory, segments, service, timeline
from puente.contacts.models import ContactSource, Segment
from puente.contacts.phones import to_e164
from puente.errors import Conflict, InvalidInput, NotFound, PuenteError
from puente.outbound.broadcasts.audience import normalize_phone, person_key
from puente.request_session import writes
from puente.web.deps import DbDep, WebContext, client_ip, require_permission
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Viewer = Annotated[WebContext, Depends(require_permission(Perm.INBOX))]
Editor = Annotated[WebContext, Depends(require_permission(Perm.CONTACTS_MANAGE))]
Exporter = Annotated[WebContext, Depends(require_permission(Perm.EXPORT))]
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
Text200 = Annotated[str | None, Query(max_length=200)]
Short = Annotated[str | None, Query(max_length=32)]
SegmentParam = Annotated[int | None, Query(ge=1, le=2**62)]

# Outcomes of actions that redirect back to a page, shown there as a flash message.
DONE_MESSAGES = {
    "created": "The contact was created.",
    "erased": "The contact and everything about it were erased.",
    "hold_on": "The contact is under legal hold.",
    "hold_off": "The legal hold was lifted.",
    "consent": "The consent was recorded.",
    "merged": "The contacts were merged.",
    "split": "The merge was undone: the contact is back with what it had.",
}


def flash_for(request: Request, done: str | None) -> str | None:
    message = DONE_MESSAGES.get(done or "")
    return translate(request, message) if message else None


def _filter(
    request: Request,
    q: str | None,
    tag: str | None,
    source: str | None,
    consent_: str | None,
    segment: int | None = None,
) -> tuple[directory.DirectoryFilter, str | None]:
    try:
        return directory.check_directory_filter(q, tag, source, consent_, segment), None
    except InvalidInput:
        return directory.check_directory_filter(q, tag, segment=segment), translate(
            request, "That filter is not valid; it was ignored."
        )


def _segment(
    request: Request, session: DbDep, workspace_id: int, segment_id: int | None
) -> tuple[Segment | None, str | None]:
    """The segment the list is narrowed to, or why it was dropped (deleted since)."""
    if segment_id is None:
        return None, None
    try:
        return segments.access_segment(session, workspace_id, segment_id), None
    except NotFound:
        return None, translate(request, "That segment no longer exists; it was ignored.")


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(
    request: Request,
    session: DbDep,
    me: Viewer,
    q: Text200 = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    source: Short = None,
    consent: Short = None,
    segment: SegmentParam = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    done: Short = None,
) -> Response:
    ws = me.actor.workspace_id
    chosen, gone = _segment(request, session, ws, segment)
    filters, problem = _filter(request, q, tag, source, consent, chosen.id if chosen else None)
    context = {
        "result": directory.list_directory(session, ws, filters, page=page),
        "filters": filters,
        "segment": chosen,
        "tags": directory.workspace_tags(session, ws),
        "sources": [s.value for s in ContactSource],
        "flash": flash_for(request, done),
        "error": problem or gone,
    }
    return render(request, "contacts/list.html", context)


@router.get("/contacts/export.csv")
@writes  # the export is audited
def contacts_export(
    request: Request,
    session: DbDep,
    me: Exporter,
    q: Text200 = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    source: Short = None,
    consent: Short = None,
    segment: SegmentParam = None,
) -> Response:
    chosen, _gone = _segment(request, session, me.actor.workspace_id, segment)
    filters, _problem = _filter(request, q, tag, source, consent, chosen.id if chosen else None)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by stream_spool)
    try:
        csv_export.do_export_contacts_csv(
            session, me.actor, me.actor.workspace_id, filters, spool, ip=client_ip(request)
        )
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        stream_spool(spool),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


# -- a new contact ----------------------------------------------------------------------


def _new_page(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    return render(
        request, "contacts/new.html", {"form": {}, "errors": {}, **extra}, status_code=status
    )


@router.get("/contacts/new", response_class=HTMLResponse)
def new_contact_page(request: Request, me: Editor) -> Response:
    return _new_page(request)


FIELD_ERRORS = {
    "phone": "This is not a valid phone number. Write it with its country code, e.g. +52 55 1234 5678.",
    "tags": "Each tag must be 1 to 100 characters.",
    "wa_id": "This is not a valid phone number. Write it with its country code, e.g. +52 55 1234 5678.",
}


@router.post("/contacts/new", response_class=HTMLResponse)
def new_contact(
    request: Request,
    session: DbDep,
    me: Editor,
    phone: Annotated[str, Form(max_length=40)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    tags: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    form = {"phone": phone, "name": name, "tags": tags}
    ws = me.actor.workspace_id
    if not phone.strip():
        errors = {"phone": translate(request, "A phone number is required.")}
        return _new_page(request, 422, form=form, errors=errors)
    e164 = normalize_phone(phone)
    if e164 is None:
        errors = {"phone": translate(request, FIELD_ERRORS["phone"])}
        return _new_page(request, 422, form=form, errors=errors)
    # Any spelling of the number (Mexico's +521 and +52...) is the same person.
    existing = csv_import.find_contact_by_number(session, ws, e164)
    if existing is not None:
        return _new_page(request, 409, form=form, existing_id=existing.id)
    # WhatsApp still writes Mexican mobiles as 521...: keep that as the WhatsApp id and
    # the number as the numbering plan writes it.
    valid = to_e164(e164)
    wa_id = None if valid else e164.lstrip("+")
    tag_names = [t.strip() for t in tags.split(",") if t.strip()]
    try:
        with session.begin_nested():
            contact = service.do_create_contact(
                session,
                workspace_id=ws,
                phone=valid or "+" + person_key(e164),
                wa_id=wa_id,
                name=name,
                tags=tag_names,
                source=ContactSource.MANUAL.value,
                actor=me.actor,
            )
    except Conflict as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        return _new_page(
            request, exc.status_code, form=form, existing_id=details.get("existing_id")
        )
    except InvalidInput as exc:
        fields = [str(d.get("field")) for d in exc.details or [] if isinstance(d, dict)]
        errors = {
            f: translate(request, FIELD_ERRORS.get(f, "Please check this field.")) for f in fields
        }
        return _new_page(request, exc.status_code, form=form, errors=errors)
    return RedirectResponse(f"/contacts/{contact.id}?done=created", status_code=303)


# -- CSV import -------------------------------------------------------------------------


@router.get("/contacts/import", response_class=HTMLResponse)
def import_page(request: Request, me: Editor) -> Response:
    return render(request, "contacts/import.html", {"report": None})


@router.post("/contacts/import", response_class=HTMLResponse)
def import_contacts(
    request: Request,
    session: DbDep,
    me: Editor,
    file: Annotated[UploadFile, File()],
) -> Response:
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    try:
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput("the file is larger than 10 MB; split it and import the parts")
        report = csv_import.parse_import(csv_import.decode_upload(data))
        with session.begin_nested():
            csv_import.do_import_contacts(session, me.actor.workspace_id, report, actor=me.actor)
    except PuenteError as exc:
        detail = next(
            (
                d.get("message")
                for d in exc.details or []
                if isinstance(d, dict) and d.get("message")
            ),
            None,
        )
        context = {"report": None, "error": translate(request, exc.message), "detail": detail}
        return render(request, "contacts/import.html", context, status_code=exc.status_code)
    return render(request, "contacts/import.html", {"report": report, "filename": file.filename})


# -- the contact page -------------------------------------------------------------------


def contact_context(session: DbDep, me: WebContext, contact_id: int) -> dict[str, Any]:
    ws = me.actor.workspace_id
    contact = service.access_contact(session, ws, contact_id)
    conversations = timeline.contact_conversations(session, me.actor, contact)
    consent_view = consent.access_consent(session, ws, contact.id)
    return {
        "contact": contact,
        "contact_tags": service.tags_of(session, [contact.id])[contact.id],
        "all_tags": [name for name, _count in directory.workspace_tags(session, ws)],
        "consent": consent_view,
        "consent_by": timeline.user_names(
            session, {e.by_user_id for e in consent_view.events if e.by_user_id}
        ),
        "conversations": conversations,
        "timeline": timeline.contact_timeline(
            session, me.actor, contact, [c.id for c in conversations]
        ),
    }


def contact_page_response(
    request: Request,
    session: DbDep,
    me: WebContext,
    contact_id: int,
    *,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    context = {**contact_context(session, me, contact_id), **extra}
    return render(request, "contacts/detail.html", context, status_code=status)


@router.get("/contacts/{contact_id:int}", response_class=HTMLResponse)
def contact_page(
    request: Request,
    session: DbDep,
    me: Viewer,
    contact_id: int,
    edit: Short = None,
    field: Annotated[str | None, Query(max_length=100)] = None,
    done: Short = None,
) -> Response:
    # ?edit=name or ?edit=field&field=KEY opens an editor without JavaScript; with htmx
    # the same editors are swapped in place.
    return contact_page_response(
        request,
        session,
        me,
        contact_id,
        editing=edit if me.can(Perm.CONTACTS_MANAGE) else None,
        editing_key=field,
        flash=flash_for(request, done),
    )
