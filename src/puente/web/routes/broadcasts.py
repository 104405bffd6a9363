"""Web pages for broadcasts: the list, the new-broadcast form (audience picker with CSV
upload, template and its values, estimate, schedule), and the detail page with live
progress (htmx polling of the counts, buttons and recipients together), pause/resume/
cancel/retry and the CSV export."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from puente.accounts.permissions import Perm
from puente.channels.models import Channel
from puente.contacts.models import Tag
from puente.contacts.segments import list_segments
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.outbound.broadcasts import service
from puente.outbound.broadcasts.params import FIELDS_HELP, template_targets
from puente.outbound.models import Broadcast, BroadcastState, MessageTemplate
from puente.outbound.templates.service import SENDABLE
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.templating import render, translate

router = APIRouter(include_in_schema=False)
Manager = Annotated[WebContext, Depends(require_permission(Perm.BROADCASTS))]

# Delivery and read receipts keep arriving after the last message went out: a finished
# or paused broadcast's page keeps listening this long, at a calmer pace.
SETTLING = dt.timedelta(minutes=10)


def poll_seconds(broadcast: Broadcast, now: dt.datetime | None = None) -> int | None:
    """How often the detail page re-reads the broadcast; None once nothing will change."""
    if broadcast.state in (BroadcastState.SENDING.value, BroadcastState.SCHEDULED.value):
        return 1
    if broadcast.state not in (BroadcastState.COMPLETED.value, BroadcastState.PAUSED.value):
        return None
    since = broadcast.finished_at or broadcast.updated_at
    return 5 if since is not None and (now or utcnow()) - since < SETTLING else None


def _choices(session: DbDep, workspace_id: int) -> dict[str, Any]:
    templates = list(
        session.scalars(
            select(MessageTemplate)
            .where(
                MessageTemplate.workspace_id == workspace_id,
                MessageTemplate.status.in_([s.value for s in SENDABLE]),
            )
            .order_by(MessageTemplate.name, MessageTemplate.language)
        )
    )
    return {
        "templates": [
            {
                "key": f"{t.name}|{t.language}",
                "label": f"{t.name} ({t.language}, {t.category.lower()})",
                "targets": template_targets(list(t.components or [])),
            }
            for t in templates
        ],
        "channels": list(
            session.scalars(select(Channel).where(Channel.workspace_id == workspace_id))
        ),
        "segments": list_segments(session, workspace_id),
        "tags": list(
            session.scalars(
                select(Tag.name).where(Tag.workspace_id == workspace_id).order_by(Tag.name)
            )
        ),
        "fields_help": FIELDS_HELP,
    }


@router.get("/broadcasts", response_class=HTMLResponse)
def broadcasts_page(request: Request, session: DbDep, me: Manager) -> Response:
    rows = [
        (b, service.progress(session, b))
        for b in service.list_broadcasts(session, me.actor.workspace_id, 50)
    ]
    return render(request, "broadcasts/list.html", {"rows": rows})


@router.get("/broadcasts/new", response_class=HTMLResponse)
def broadcast_new(request: Request, session: DbDep, me: Manager) -> Response:
    form = {"audience_kind": "tags", "template": ""}
    form.update({k: v for k, v in request.query_params.items() if k != "csrf_token"})
    context = {**_choices(session, me.actor.workspace_id), "form": form}
    return render(request, "broadcasts/new.html", context)


async def _form(request: Request) -> tuple[dict[str, str], str | None]:
    data = await request.form()
    form = {k: str(v) for k, v in data.items() if isinstance(v, str)}
    upload = data.get("csv_file")
    csv_text = None
    if upload is not None and not isinstance(upload, str):
        raw = await upload.read()
        if raw:
            csv_text = raw.decode("utf-8-sig", errors="replace")
    return form, csv_text


def _kwargs(form: dict[str, str], csv_text: str | None, me: WebContext) -> dict[str, Any]:
    name, _, language = form.get("template", "").partition("|")
    kind = form.get("audience_kind", "tags")
    audience: dict[str, Any] = {"kind": kind}
    if kind == "tags":
        audience["tags"] = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    elif kind == "segment":
        audience["segment_id"] = int(form.get("segment_id") or 0)
    elif kind == "contacts":
        audience["contact_ids"] = [
            c.strip()
            for c in form.get("contact_ids", "").replace("\n", ",").split(",")
            if c.strip()
        ]
    variables = {
        key[4:]: value for key, value in form.items() if key.startswith("var.") and value.strip()
    }
    channel = form.get("channel_id")
    return {
        "workspace_id": me.actor.workspace_id,
        "name": form.get("name", ""),
        "template_name": name,
        "language": language,
        "variables": variables,
        "audience": audience,
        "channel_id": int(channel) if channel else None,
        "csv_text": csv_text if kind == "csv" else None,
        "scheduled_at": form.get("scheduled_at") or None,
        "created_by_id": me.user.id,
        "actor": me.actor,
    }


@router.post("/broadcasts/new", response_class=HTMLResponse)
async def broadcast_create(request: Request, session: DbDep, me: Manager) -> Response:
    form, csv_text = await _form(request)
    estimate_only = form.get("action") == "estimate"
    try:
        nested = session.begin_nested()
        broadcast = service.do_create_broadcast(
            session, dry_run=estimate_only, **_kwargs(form, csv_text, me)
        )
        if estimate_only:
            plan = {
                "estimate": dict(broadcast.estimate or {}),
                "problems": list(broadcast.report or []),
                "total": broadcast.total,
            }
            nested.rollback()
            context = {**_choices(session, me.actor.workspace_id), "form": form, "plan": plan}
            return render(request, "broadcasts/new.html", context)
        nested.commit()
    except (PuenteError, ValueError) as exc:
        if session.in_nested_transaction():
            nested.rollback()
        message = exc.message if isinstance(exc, PuenteError) else str(exc)
        details = exc.details if isinstance(exc, PuenteError) else None
        problems = details if isinstance(details, list) else []
        context = {
            **_choices(session, me.actor.workspace_id),
            "form": form,
            "error": translate(request, message),
            "problems": problems,
        }
        status = exc.status_code if isinstance(exc, PuenteError) else 422
        return render(request, "broadcasts/new.html", context, status_code=status)
    return RedirectResponse(f"/broadcasts/{broadcast.id}", status_code=303)


def _detail_context(
    session: DbDep, me: WebContext, broadcast_id: int, state: str | None
) -> dict[str, Any]:
    broadcast = service.access_broadcast(session, me.actor.workspace_id, broadcast_id)
    return {
        "b": broadcast,
        "p": service.progress(session, broadcast),
        "recipients": list(
            service.recipient_rows(session, broadcast, state=state or None, limit=200)
        ),
        "state_filter": state or "",
        "states": service.SHOWN_STATES,
        "poll_seconds": poll_seconds(broadcast),
    }


@router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
def broadcast_detail(
    request: Request, broadcast_id: int, session: DbDep, me: Manager, state: str | None = None
) -> Response:
    context = _detail_context(session, me, broadcast_id, state)
    return render(request, "broadcasts/detail.html", context)


@router.get("/broadcasts/{broadcast_id}/progress", response_class=HTMLResponse)
def broadcast_progress(
    request: Request, broadcast_id: int, session: DbDep, me: Manager, state: str | None = None
) -> Response:
    """The progress bar and counts, polled by the detail page, with the action buttons
    and the recipients' rows (as filtered on the page) swapped out of band."""
    context = {**_detail_context(session, me, broadcast_id, state), "oob": True}
    return render(request, "broadcasts/_progress.html", context)


@router.post("/broadcasts/{broadcast_id}/{action}", response_class=HTMLResponse)
def broadcast_action(
    request: Request, broadcast_id: int, action: str, session: DbDep, me: Manager
) -> Response:
    broadcast = service.access_broadcast(session, me.actor.workspace_id, broadcast_id)
    actions = {
        "pause": service.do_pause,
        "resume": service.do_resume,
        "cancel": service.do_cancel_broadcast,
        "retry-failed": service.do_retry_failed,
    }
    act = actions.get(action)
    if act is None:
        return render(request, "error.html", {"message": "unknown action"}, status_code=404)
    try:
        with session.begin_nested():
            act(session, broadcast, me.actor)
    except PuenteError as exc:
        context = {
            **_detail_context(session, me, broadcast_id, None),
            "error": translate(request, exc.message),
        }
        return render(request, "broadcasts/detail.html", context, status_code=exc.status_code)
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


@router.get("/broadcasts/{broadcast_id}/export.csv")
def broadcast_export(broadcast_id: int, session: DbDep, me: Manager) -> Response:
    broadcast = service.access_broadcast(session, me.actor.workspace_id, broadcast_id)
    return Response(
        service.export_csv(session, broadcast),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="broadcast-{broadcast.id}.csv"'},
    )
