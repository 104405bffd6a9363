"""The outgoing webhooks' pages (admins, under Settings): the endpoints, a form to add or
change one, its secret shown once, and each endpoint's delivery log with its attempts and
resends. The rules and the sending are puente.integrations.webhooks'."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.channels.service import list_channels
from puente.errors import InvalidInput, NotFound, PuenteError
from puente.integrations.webhooks import service as hooks
from puente.integrations.webhooks.models import WebhookDelivery, WebhookEndpoint
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import N_, error_message, translations
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Admin = Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))]
BASE = "/settings/webhooks"
PAGE_SIZE = 50

EVENT_LABELS = {
    "message.created": N_("A message is sent or received"),
    "message.updated": N_("A message changes (delivered, read, failed, edited, deleted)"),
    "conversation.created": N_("A conversation starts"),
    "conversation.updated": N_("A conversation changes"),
    "conversation.assigned": N_("A conversation is assigned"),
    "conversation.status_changed": N_("A conversation is opened, put on hold or closed"),
    "contact.created": N_("A contact is added"),
    "contact.updated": N_("A contact changes"),
    "contact.merged": N_("Two contacts are merged"),
    "contact.erased": N_("A contact is erased"),
    "broadcast.progress": N_("A broadcast makes progress"),
    "broadcast.finished": N_("A broadcast finishes"),
    "workflow_run.finished": N_("A workflow run finishes"),
    "channel.connection_changed": N_("A number connects or disconnects"),
    "webhook.test": N_("Test event"),
}
STATE_LABELS = {
    "pending": N_("Pending"),
    "delivered": N_("Delivered"),
    "failed": N_("Failed"),
}
# What a redirect's ?done= tells the admin after a change.
DONE = {
    "saved": N_("Endpoint saved."),
    "enabled": N_("Endpoint enabled: deliveries are sent again."),
    "disabled": N_("Endpoint disabled: events are no longer sent to it."),
    "deleted": N_("Endpoint deleted."),
    "test": N_("Test event queued: it appears in the delivery log below."),
    "resent": N_("Delivery queued to be sent again."),
}


@dataclass
class Draft:
    """What the add or edit form shows: the admin's last input, kept on a refusal."""

    url: str = ""
    description: str = ""
    events: set[str] = field(default_factory=set)
    channel_id: int | None = None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> Draft:
        return cls(endpoint.url, endpoint.description, set(endpoint.events), endpoint.channel_id)


def _labels(request: Request, labels: dict[str, str]) -> dict[str, str]:
    return {key: translate(request, text) for key, text in labels.items()}


def _channel_id(value: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput("unknown number") from exc


def _numbers(session: Session, me: WebContext) -> dict[int, str]:
    return {
        c.id: f"{c.name} (+{c.display_phone_number})"
        for c in list_channels(session, me.actor.workspace_id)
    }


def _last_states(session: Session, endpoints: list[WebhookEndpoint]) -> dict[int, WebhookDelivery]:
    last: dict[int, WebhookDelivery] = {}
    for endpoint in endpoints:
        found = hooks.list_deliveries(session, endpoint.id, limit=1)
        if found:
            last[endpoint.id] = found[0]
    return last


def _error(request: Request, exc: PuenteError) -> str:
    return error_message(request_language(request), exc)


# --- The list of endpoints ------------------------------------------------------------------


@router.get(BASE, response_class=HTMLResponse)
def webhooks_list(request: Request, session: DbDep, me: Admin) -> Response:
    endpoints = hooks.list_endpoints(session)
    done = DONE.get(request.query_params.get("done", ""))
    context = {
        "endpoints": endpoints,
        "last": _last_states(session, endpoints),
        "numbers": _numbers(session, me),
        "event_labels": _labels(request, EVENT_LABELS),
        "state_labels": _labels(request, STATE_LABELS),
        "flash": translate(request, done) if done else None,
    }
    return render(request, "settings/webhooks/list.html", context)


# --- Adding and changing an endpoint --------------------------------------------------------


def _form(
    request: Request,
    session: Session,
    me: WebContext,
    draft: Draft,
    *,
    endpoint: WebhookEndpoint | None = None,
    status_code: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    context = {
        "draft": draft,
        "endpoint": endpoint,
        "event_types": [t for t in hooks.EVENT_TYPES],
        "event_labels": _labels(request, EVENT_LABELS),
        "numbers": _numbers(session, me),
        "error": error,
    }
    return render(request, "settings/webhooks/form.html", context, status_code=status_code)


@router.get(BASE + "/new", response_class=HTMLResponse)
def webhooks_new(request: Request, session: DbDep, me: Admin) -> Response:
    return _form(request, session, me, Draft())


@router.post(BASE, response_class=HTMLResponse)
def webhooks_create(
    request: Request,
    session: DbDep,
    me: Admin,
    url: Annotated[str, Form(max_length=2000)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
    events: Annotated[list[str] | None, Form()] = None,
    channel_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    draft = Draft(url.strip(), description.strip(), set(events or []))
    try:
        with session.begin_nested():
            draft.channel_id = _channel_id(channel_id)
            endpoint, secret = hooks.create_endpoint(
                session,
                url=draft.url,
                events=sorted(draft.events),
                channel_id=draft.channel_id,
                description=draft.description,
                actor=me.actor,
            )
    except PuenteError as exc:
        return _form(
            request, session, me, draft, status_code=exc.status_code, error=_error(request, exc)
        )
    flash = translate(request, "Endpoint added.")
    return _endpoint_page(request, session, me, endpoint, new_secret=secret, flash=flash)


@router.get(BASE + "/{endpoint_id}/edit", response_class=HTMLResponse)
def webhooks_edit(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    endpoint = hooks.get_endpoint(session, endpoint_id)
    return _form(request, session, me, Draft.of(endpoint), endpoint=endpoint)


@router.post(BASE + "/{endpoint_id}", response_class=HTMLResponse)
def webhooks_update(
    request: Request,
    session: DbDep,
    me: Admin,
    endpoint_id: int,
    url: Annotated[str, Form(max_length=2000)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
    events: Annotated[list[str] | None, Form()] = None,
    channel_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    endpoint = hooks.get_endpoint(session, endpoint_id)
    draft = Draft(url.strip(), description.strip(), set(events or []))
    try:
        with session.begin_nested():
            draft.channel_id = _channel_id(channel_id)
            hooks.update_endpoint(
                session,
                endpoint_id,
                url=draft.url,
                events=sorted(draft.events),
                channel_id=draft.channel_id,
                description=draft.description,
                enabled=endpoint.enabled,
                actor=me.actor,
            )
    except PuenteError as exc:
        session.refresh(endpoint)
        return _form(
            request,
            session,
            me,
            draft,
            endpoint=endpoint,
            status_code=exc.status_code,
            error=_error(request, exc),
        )
    return RedirectResponse(f"{BASE}/{endpoint_id}?done=saved", status_code=303)


def _set_enabled(session: Session, me: WebContext, endpoint_id: int, enabled: bool) -> None:
    endpoint = hooks.get_endpoint(session, endpoint_id)
    hooks.update_endpoint(
        session,
        endpoint_id,
        url=endpoint.url,
        events=list(endpoint.events),
        channel_id=endpoint.channel_id,
        description=endpoint.description,
        enabled=enabled,
        actor=me.actor,
    )


def _change(
    request: Request,
    session: Session,
    me: WebContext,
    endpoint_id: int,
    action: Any,
    done: str,
) -> Response:
    """Run one change on an endpoint, then back to its page with what happened, or the
    page again with the reason the change was refused."""
    try:
        with session.begin_nested():
            action()
    except NotFound:
        raise
    except PuenteError as exc:
        endpoint = hooks.get_endpoint(session, endpoint_id)
        return _endpoint_page(
            request, session, me, endpoint, status_code=exc.status_code, error=_error(request, exc)
        )
    return RedirectResponse(f"{BASE}/{endpoint_id}?done={done}", status_code=303)


@router.post(BASE + "/{endpoint_id}/enable", response_class=HTMLResponse)
def webhooks_enable(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    return _change(
        request,
        session,
        me,
        endpoint_id,
        lambda: _set_enabled(session, me, endpoint_id, True),
        "enabled",
    )


@router.post(BASE + "/{endpoint_id}/disable", response_class=HTMLResponse)
def webhooks_disable(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    return _change(
        request,
        session,
        me,
        endpoint_id,
        lambda: _set_enabled(session, me, endpoint_id, False),
        "disabled",
    )


@router.post(BASE + "/{endpoint_id}/rotate", response_class=HTMLResponse)
def webhooks_rotate(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    secret = hooks.rotate_secret(session, endpoint_id, actor=me.actor)
    endpoint = hooks.get_endpoint(session, endpoint_id)
    flash = translate(request, "New secret made: the old one no longer signs deliveries.")
    return _endpoint_page(request, session, me, endpoint, new_secret=secret, flash=flash)


@router.post(BASE + "/{endpoint_id}/delete", response_class=HTMLResponse)
def webhooks_delete(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    hooks.delete_endpoint(session, endpoint_id, actor=me.actor)
    return RedirectResponse(f"{BASE}?done=deleted", status_code=303)


@router.post(BASE + "/{endpoint_id}/test", response_class=HTMLResponse)
def webhooks_test(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    return _change(
        request,
        session,
        me,
        endpoint_id,
        lambda: hooks.send_test(session, endpoint_id, actor=me.actor),
        "test",
    )


# --- One endpoint and its delivery log ------------------------------------------------------


def _endpoint_page(
    request: Request,
    session: Session,
    me: WebContext,
    endpoint: WebhookEndpoint,
    *,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    state = request.query_params.get("state") or None
    if state not in STATE_LABELS:
        state = None
    before = request.query_params.get("before", "")
    before_id = int(before) if before.isdigit() else None
    deliveries = hooks.list_deliveries(
        session, endpoint.id, state=state, limit=PAGE_SIZE, before_id=before_id
    )
    context = {
        "endpoint": endpoint,
        "deliveries": deliveries,
        "state": state,
        "older": deliveries[-1].id if len(deliveries) == PAGE_SIZE else None,
        "paged": before_id is not None,
        "numbers": _numbers(session, me),
        "event_labels": _labels(request, EVENT_LABELS),
        "state_labels": _labels(request, STATE_LABELS),
        **extra,
    }
    return render(request, "settings/webhooks/endpoint.html", context, status_code=status_code)


@router.get(BASE + "/{endpoint_id}", response_class=HTMLResponse)
def webhooks_endpoint(request: Request, session: DbDep, me: Admin, endpoint_id: int) -> Response:
    endpoint = hooks.get_endpoint(session, endpoint_id)
    done = DONE.get(request.query_params.get("done", ""))
    flash = translate(request, done) if done else None
    resent = request.query_params.get("resent", "")
    if resent.isdigit():
        flash = _resent(request, resent)
    return _endpoint_page(request, session, me, endpoint, flash=flash)


def _delivery_of(session: Session, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = hooks.get_delivery(session, delivery_id)
    if delivery.endpoint_id != endpoint_id:
        raise NotFound("No such delivery.", code="not_found")
    return delivery


@router.get(BASE + "/{endpoint_id}/deliveries/{delivery_id}", response_class=HTMLResponse)
def webhooks_delivery(
    request: Request, session: DbDep, me: Admin, endpoint_id: int, delivery_id: int
) -> Response:
    """A delivery's attempts: the fragment a row of the log opens (htmx), or a page of its
    own for a browser without scripts."""
    endpoint = hooks.get_endpoint(session, endpoint_id)
    delivery = _delivery_of(session, endpoint_id, delivery_id)
    context = {
        "endpoint": endpoint,
        "delivery": delivery,
        "attempts": hooks.attempts_of(session, delivery_id),
        "event_labels": _labels(request, EVENT_LABELS),
        "state_labels": _labels(request, STATE_LABELS),
    }
    if request.headers.get("hx-request"):
        return render(request, "settings/webhooks/_attempts.html", context)
    return render(request, "settings/webhooks/delivery.html", context)


@router.post(BASE + "/{endpoint_id}/deliveries/{delivery_id}/resend", response_class=HTMLResponse)
def webhooks_resend(
    request: Request, session: DbDep, me: Admin, endpoint_id: int, delivery_id: int
) -> Response:
    _delivery_of(session, endpoint_id, delivery_id)
    return _change(
        request,
        session,
        me,
        endpoint_id,
        lambda: hooks.resend(session, delivery_id, actor=me.actor),
        "resent",
    )


@router.post(BASE + "/{endpoint_id}/resend-failed", response_class=HTMLResponse)
def webhooks_resend_failed(
    request: Request, session: DbDep, me: Admin, endpoint_id: int
) -> Response:
    hooks.get_endpoint(session, endpoint_id)
    count = hooks.resend_failed(session, endpoint_id, actor=me.actor)
    return RedirectResponse(f"{BASE}/{endpoint_id}?resent={count}", status_code=303)


def _resent(request: Request, value: str) -> str:
    count = int(value)
    if count == 0:
        return translate(request, "No failed deliveries to send again.")
    text = translations(request_language(request)).ngettext(
        "%(count)s failed delivery queued to be sent again.",
        "%(count)s failed deliveries queued to be sent again.",
        count,
    )
    return text % {"count": count}
