"""Segments pages under /contacts/segments: the list with live counts, the form that
builds a filter and counts it as it changes (htmx), and deletion with its confirmation.
The contacts list shows a segment's contacts (/contacts?segment=ID)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, QueryParams

from puente.accounts.permissions import Perm
from puente.channels.models import Channel
from puente.contacts import directory, segment_filter, segments
from puente.contacts.models import Segment
from puente.errors import Conflict, InvalidInput, PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Viewer = Annotated[WebContext, Depends(require_permission(Perm.INBOX))]
Editor = Annotated[WebContext, Depends(require_permission(Perm.CONTACTS_MANAGE))]
Short = Annotated[str | None, Query(max_length=32)]
MAX_FIELD_KEYS = 200
EMPTY_FIELD_ROWS = 2

DONE_MESSAGES = {
    "created": "The segment was saved.",
    "saved": "The segment was saved.",
    "deleted": "The segment was deleted.",
}


# -- the form <-> the filter -------------------------------------------------------------


def _names(text_value: str) -> list[str]:
    return [t.strip() for t in text_value.split(",") if t.strip()]


def filter_from_form(form: FormData | QueryParams) -> dict[str, Any]:
    """The filter's JSON from the form's fields (what the API takes)."""
    data: dict[str, Any] = {}
    for key in ("tags_any", "tags_all", "tags_none"):
        names = _names(str(form.get(key) or ""))
        if names:
            data[key] = names
    rules: list[dict[str, str]] = []
    for raw_key, raw_op, raw_value in zip(
        form.getlist("field_key"),
        form.getlist("field_op"),
        form.getlist("field_value"),
        strict=False,
    ):
        if str(raw_key).strip():
            rule = {"key": str(raw_key).strip(), "op": str(raw_op)}
            if raw_op == "equals":
                rule["value"] = str(raw_value)
            rules.append(rule)
    if rules:
        data["fields"] = rules
    if form.get("consent"):
        data["consent"] = str(form.get("consent"))
    for key in ("sources", "conversation_status"):
        chosen = [str(v) for v in form.getlist(key) if v]
        if chosen:
            data[key] = chosen
    ids = [str(v) for v in form.getlist("channel_ids") if v]
    if ids:
        data["channel_ids"] = [int(v) if v.isdigit() else v for v in ids]
    op = str(form.get("lm_op") or "")
    if op == "within":
        days = str(form.get("lm_days") or "").strip()
        data["last_message"] = {"op": op, "days": int(days) if days.isdigit() else days}
    elif op in ("before", "after"):
        data["last_message"] = {"op": op, "date": str(form.get("lm_date") or "").strip()}
    return data


def form_from_filter(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the form shows for a saved filter (or for what was just posted)."""
    lm = data.get("last_message") or {}
    return {
        "name": name,
        "tags_any": ", ".join(data.get("tags_any") or []),
        "tags_all": ", ".join(data.get("tags_all") or []),
        "tags_none": ", ".join(data.get("tags_none") or []),
        "fields": [
            {"key": r.get("key", ""), "op": r.get("op", "equals"), "value": r.get("value", "")}
            for r in data.get("fields") or []
            if isinstance(r, dict)
        ],
        "consent": data.get("consent") or "",
        "sources": [str(s) for s in data.get("sources") or []],
        "channel_ids": [str(c) for c in data.get("channel_ids") or []],
        "conversation_status": [str(s) for s in data.get("conversation_status") or []],
        "lm_op": lm.get("op", ""),
        "lm_days": lm.get("days", ""),
        "lm_date": lm.get("date", ""),
    }


def _errors(request: Request, exc: PuenteError) -> dict[str, str]:
    """Each problem beside its part of the form (tags_any, fields, last_message...)."""
    if isinstance(exc, segment_filter.FilterNotValid):
        errors: dict[str, str] = {}
        for problem in exc.problems:
            parts = problem.field.split(".")
            place = parts[1] if len(parts) > 1 else "filter"
            errors.setdefault(place, translate(request, problem.message, **problem.params))
        return errors
    details = exc.details if isinstance(exc.details, list) else []
    field = next((str(d.get("field")) for d in details if isinstance(d, dict)), "name")
    if isinstance(exc, Conflict):
        return {"name": translate(request, "There is already a segment with this name.")}
    if field == "name":
        return {"name": translate(request, "Give the segment a name (up to 100 characters).")}
    return {"filter": translate(request, exc.template, **exc.params)}


# -- choices the form offers -------------------------------------------------------------


def field_keys(session: Session, workspace_id: int) -> list[str]:
    """The custom fields the workspace's contacts carry, for the form's suggestions."""
    if session.get_bind().dialect.name == "postgresql":
        query = (
            "SELECT DISTINCT k FROM contacts, jsonb_object_keys(contacts.custom_fields) AS k "
            "WHERE contacts.workspace_id = :ws AND jsonb_typeof(contacts.custom_fields) = 'object' "
            "ORDER BY k LIMIT :n"
        )
    else:
        query = (
            "SELECT DISTINCT je.key FROM contacts, json_each(contacts.custom_fields) AS je "
            "WHERE contacts.workspace_id = :ws ORDER BY je.key LIMIT :n"
        )
    rows = session.execute(text(query), {"ws": workspace_id, "n": MAX_FIELD_KEYS})
    return [str(key) for key in rows.scalars()]


def _channels(session: Session, workspace_id: int) -> list[Channel]:
    return list(
        session.scalars(
            select(Channel).where(Channel.workspace_id == workspace_id).order_by(Channel.name)
        )
    )


def _form_context(session: Session, me: WebContext, **extra: Any) -> dict[str, Any]:
    ws = me.actor.workspace_id
    return {
        "tags": [name for name, _count in directory.workspace_tags(session, ws)],
        "field_keys": field_keys(session, ws),
        "channels": _channels(session, ws),
        "sources": list(segment_filter.SOURCES),
        "statuses": list(segment_filter.STATUSES),
        "field_ops": list(segment_filter.FIELD_OPS),
        "empty_rows": EMPTY_FIELD_ROWS,
        "errors": {},
        **extra,
    }


def _count(session: Session, workspace_id: int, data: dict[str, Any]) -> int:
    return segments.count_matching(
        session, workspace_id, segments.check_segment_filter(session, workspace_id, data)
    )


# -- pages -------------------------------------------------------------------------------


@router.get("/contacts/segments", response_class=HTMLResponse)
def segments_page(request: Request, session: DbDep, me: Viewer, done: Short = None) -> Response:
    ws = me.actor.workspace_id
    found = segments.list_segments(session, ws)
    message = DONE_MESSAGES.get(done or "")
    context = {
        "rows": list(zip(found, segments.segment_counts(session, ws, found), strict=True)),
        "channels": {c.id: c for c in _channels(session, ws)},
        "flash": translate(request, message) if message else None,
    }
    return render(request, "contacts/segments/list.html", context)


@router.get("/contacts/segments/count", response_class=HTMLResponse)
def segment_count(request: Request, session: DbDep, me: Viewer) -> Response:
    """The live count under the form: the form's fields as query parameters."""
    try:
        count: int | None = _count(
            session, me.actor.workspace_id, filter_from_form(request.query_params)
        )
        problem = None
    except PuenteError as exc:
        count, problem = None, next(iter(_errors(request, exc).values()), None)
    return render(request, "contacts/segments/_count.html", {"count": count, "problem": problem})


@router.get("/contacts/segments/new", response_class=HTMLResponse)
def new_segment_page(request: Request, session: DbDep, me: Editor) -> Response:
    form = form_from_filter("", {})
    count = _count(session, me.actor.workspace_id, {})
    return render(
        request, "contacts/segments/form.html", _form_context(session, me, form=form, count=count)
    )


def _form_error(
    request: Request,
    session: Session,
    me: WebContext,
    exc: PuenteError,
    form: dict[str, Any],
    segment: Segment | None = None,
) -> Response:
    context = _form_context(session, me, form=form, segment=segment, count=None)
    context["errors"] = _errors(request, exc)
    return render(request, "contacts/segments/form.html", context, status_code=exc.status_code)


@router.post("/contacts/segments/new", response_class=HTMLResponse)
async def create_segment(request: Request, session: DbDep, me: Editor) -> Response:
    posted = await request.form()
    name, data = str(posted.get("name") or ""), filter_from_form(posted)
    try:
        with session.begin_nested():
            segment = segments.do_create_segment(
                session, workspace_id=me.actor.workspace_id, name=name, filter_=data, actor=me.actor
            )
    except (InvalidInput, Conflict) as exc:
        return _form_error(request, session, me, exc, form_from_filter(name, data))
    return RedirectResponse(
        f"/contacts/segments?done=created#segment-{segment.id}", status_code=303
    )


@router.get("/contacts/segments/{segment_id:int}", response_class=HTMLResponse)
def segment_page(request: Request, session: DbDep, me: Viewer, segment_id: int) -> Response:
    ws = me.actor.workspace_id
    segment = segments.access_segment(session, ws, segment_id)
    count = segments.count_matching(session, ws, segments.filter_of(segment))
    form = form_from_filter(segment.name, segment.filter or {})
    context = _form_context(session, me, form=form, segment=segment, count=count)
    return render(request, "contacts/segments/form.html", context)


@router.post("/contacts/segments/{segment_id:int}/edit", response_class=HTMLResponse)
async def save_segment(request: Request, session: DbDep, me: Editor, segment_id: int) -> Response:
    segment = segments.access_segment(session, me.actor.workspace_id, segment_id)
    posted = await request.form()
    name, data = str(posted.get("name") or ""), filter_from_form(posted)
    try:
        with session.begin_nested():
            segments.do_update_segment(session, segment, name=name, filter_=data, actor=me.actor)
    except (InvalidInput, Conflict) as exc:
        session.refresh(segment)
        return _form_error(request, session, me, exc, form_from_filter(name, data), segment)
    return RedirectResponse(f"/contacts/segments?done=saved#segment-{segment.id}", status_code=303)


@router.get("/contacts/segments/{segment_id:int}/delete", response_class=HTMLResponse)
def delete_segment_page(request: Request, session: DbDep, me: Editor, segment_id: int) -> Response:
    segment = segments.access_segment(session, me.actor.workspace_id, segment_id)
    context = {
        "segment": segment,
        "broadcasts": segments.scheduled_broadcasts_using(session, segment),
    }
    return render(request, "contacts/segments/delete.html", context)


@router.post("/contacts/segments/{segment_id:int}/delete")
def delete_segment(request: Request, session: DbDep, me: Editor, segment_id: int) -> Response:
    segment = segments.access_segment(session, me.actor.workspace_id, segment_id)
    segments.do_delete_segment(session, segment, actor=me.actor)
    return RedirectResponse("/contacts/segments?done=deleted", status_code=303)
