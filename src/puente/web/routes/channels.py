"""The Channels pages: the numbers with their connection state and live history progress,
the onboarding wizard (coexistence, new number or by hand; sandbox or Meta's Embedded
Signup), a number's page (health, sync requests, costs, what works where) and its actions."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.automation.hours import hours_of
from puente.channels import onboarding as ob
from puente.channels.costs import month_costs
from puente.channels.features import MIN_APP_VERSION, countries, feature_table
from puente.channels.health import access_sync, channel_health, reason_parts
from puente.channels.models import (
    Channel,
    ChannelMode,
    OnboardingMethod,
    OnboardingState,
)
from puente.channels.service import (
    NewChannel,
    access_channel,
    do_change_channel_settings,
    do_create_channel,
    list_channels,
)
from puente.channels.sync import history_messages_by_phase
from puente.conversations.inbound import OWNER_PAUSE_MINUTES
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.request_session import own_transactions
from puente.web.deps import DbDep, RuntimeDep, WebContext, require_permission
from puente.web.routes import business_hours, chat_links
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
# A number's business hours are one of its pages.
router.include_router(business_hours.router)
# So are its chat links and QR codes.
router.include_router(chat_links.router)
Manager = Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))]

FLASHES = {
    "connected": "The number is connected.",
    "retried": "The request was sent to Meta again.",
    "saved": "Saved.",
}
# Meta's Embedded Signup page needs its SDK and its popup to talk back to this page.
SIGNUP_CSP = (
    "default-src 'self'; script-src 'self' https://connect.facebook.net; "
    "style-src 'self'; img-src 'self' data: https://*.facebook.com https://*.fbcdn.net; "
    "connect-src 'self' https://*.facebook.com; frame-src https://*.facebook.com; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _flash(request: Request) -> str | None:
    key = request.query_params.get("flash")
    return translate(request, FLASHES[key]) if key in FLASHES else None


def _error_words(request: Request, row: Any) -> dict[str, str] | None:
    """The attempt's failure in the reader's language where the words are fixed ones
    (translated here, in Python, so Meta's own text is never marked safe for HTML)."""
    if not row.error:
        return None
    return {
        "message": translate(request, str(row.error.get("message") or "")),
        "next_step": translate(request, str(row.error.get("next_step") or "")),
    }


def _reason_words(request: Request, reason: str | None) -> str | None:
    if not reason:
        return None
    return " ".join(translate(request, part) for part in reason_parts(reason))


def _sandbox_base(request: Request) -> str:
    return str(request.app.state.runtime.settings.graph_base_url).rstrip("/")


# --- the list --------------------------------------------------------------------------------


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, session: DbDep, me: Manager) -> Response:
    runtime = request.app.state.runtime
    now = utcnow()
    rows = [
        (c, channel_health(c, access_sync(session, c), now))
        for c in list_channels(session, me.workspace.id)
    ]
    attempts = [
        (o, _error_words(request, o))
        for o in ob.list_onboardings(session, me.workspace.id, limit=5)
        if o.state == OnboardingState.FAILED.value
    ]
    limit = runtime.settings.max_channels_per_workspace
    return render(
        request,
        "channels/list.html",
        {
            "rows": rows,
            "failed": attempts[:3],
            "limit": limit,
            "full": len(rows) >= limit,
            "flash": _flash(request),
        },
    )


# --- the wizard ------------------------------------------------------------------------------


@router.get("/channels/new", response_class=HTMLResponse)
def channel_new(request: Request, me: Manager, method: str | None = None) -> Response:
    runtime = request.app.state.runtime
    settings = runtime.settings
    sandbox = ob.is_sandbox(settings)
    context: dict[str, Any] = {
        "method": method if method in ("coexistence", "new_number", "manual") else None,
        "sandbox": sandbox,
        "countries": countries(),
        "min_version": MIN_APP_VERSION,
        "app_id": settings.meta_app_id,
        "config_id": settings.meta_config_id,
        "api_version": settings.graph_api_version,
        "error": request.query_params.get("error"),
    }
    response = render(request, "channels/new.html", context)
    if not sandbox and context["method"] in ("coexistence", "new_number"):
        response.headers["content-security-policy"] = SIGNUP_CSP
        response.headers["cross-origin-opener-policy"] = "same-origin-allow-popups"
    return response


@router.post("/channels/onboard", response_class=HTMLResponse)
def channel_onboard_start(
    request: Request,
    session: DbDep,
    me: Manager,
    method: Annotated[OnboardingMethod, Form()],
    phone: Annotated[str, Form(max_length=40)],
    import_history: Annotated[str | None, Form(max_length=8)] = None,
    business_name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    row = ob.do_start_sandbox_signup(
        session,
        request.app.state.runtime.settings,
        workspace_id=me.workspace.id,
        method=method,
        phone=phone,
        import_history=import_history == "yes",
        business_name=business_name or None,
        actor=me.actor,
    )
    return RedirectResponse(f"/channels/onboarding/{row.id}", status_code=303)


@router.get("/channels/onboarding/{onboarding_id}", response_class=HTMLResponse)
def onboarding_page(request: Request, onboarding_id: int, session: DbDep, me: Manager) -> Response:
    row = ob.access_onboarding(session, me.workspace.id, onboarding_id)
    if row.state == OnboardingState.CONNECTED.value and row.channel_id:
        return RedirectResponse(f"/channels/{row.channel_id}?flash=connected", status_code=303)
    return render(
        request,
        "channels/onboarding.html",
        {
            "o": row,
            "failure": _error_words(request, row),
            "sandbox_url": _sandbox_base(request),
            "number_id": _number_of(request, row),
        },
    )


def _number_of(request: Request, row: Any) -> str | None:
    """The sandbox's phone number id for the owner's phone link (sandbox mode only)."""
    if not ob.is_sandbox(request.app.state.runtime.settings):
        return None
    return str(row.phone_number_id) if row.phone_number_id else None


@router.get("/channels/onboarding/{onboarding_id}/status", response_class=HTMLResponse)
def onboarding_status(
    request: Request, onboarding_id: int, runtime: RuntimeDep, me: Manager
) -> Response:
    row = ob.watch_onboarding(runtime, me.workspace.id, onboarding_id, me.actor)
    if row.state == OnboardingState.CONNECTED.value and row.channel_id:
        target = f"/channels/{row.channel_id}?flash=connected"
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    context = {"o": row, "failure": _error_words(request, row)}
    return render(request, "channels/_onboarding_status.html", context)


@router.post("/channels/onboard/finish", response_class=HTMLResponse)
@own_transactions
def channel_onboard_finish(
    request: Request,
    runtime: RuntimeDep,
    me: Manager,
    method: Annotated[OnboardingMethod, Form()],
    code: Annotated[str, Form(min_length=1, max_length=2048)],
    waba_id: Annotated[str, Form(pattern=r"^[0-9]{1,64}$")],
    phone_number_id: Annotated[str | None, Form(pattern=r"^[0-9]{0,64}$")] = None,
    import_history: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    """Meta's Embedded Signup finished in the browser: exchange the code right away."""
    signup = ob.SignupResult(method, code, waba_id, phone_number_id or None)
    try:
        row = ob.finish_signup(
            runtime,
            workspace_id=me.workspace.id,
            signup=signup,
            import_history=import_history == "yes",
            actor=me.actor,
        )
    except ob.OnboardingFailed as exc:
        return RedirectResponse(f"/channels/onboarding/{exc.onboarding_id}", status_code=303)
    return RedirectResponse(f"/channels/{row.channel_id}?flash=connected", status_code=303)


@router.post("/channels/manual", response_class=HTMLResponse)
def channel_manual(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Manager,
    phone_number_id: Annotated[str, Form(max_length=64)],
    waba_id: Annotated[str, Form(max_length=64)],
    display_phone_number: Annotated[str, Form(max_length=40)],
    access_token: Annotated[str, Form(max_length=4096)],
    mode: Annotated[ChannelMode, Form()] = ChannelMode.CLOUD_API,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    try:
        with session.begin_nested():
            channel = do_create_channel(
                session,
                runtime.settings,
                runtime.secrets,
                workspace_id=me.workspace.id,
                new=NewChannel(
                    phone_number_id=phone_number_id,
                    waba_id=waba_id,
                    display_phone_number=display_phone_number,
                    access_token=access_token,
                    name=name,
                    mode=mode,
                ),
                actor=me.actor,
            )
    except PuenteError as exc:
        context = {
            "method": "manual",
            "sandbox": ob.is_sandbox(runtime.settings),
            "countries": countries(),
            "min_version": MIN_APP_VERSION,
            "error": exc.message,
            "form": {"phone_number_id": phone_number_id, "waba_id": waba_id, "name": name or ""},
        }
        return render(request, "channels/new.html", context, status_code=exc.status_code)
    return RedirectResponse(f"/channels/{channel.id}?flash=connected", status_code=303)


# --- one number ------------------------------------------------------------------------------


def _detail_context(request: Request, session: Session, channel: Channel) -> dict[str, Any]:
    now = utcnow()
    groups, notes = feature_table(request_language(request))
    return {
        "c": channel,
        "h": (health := channel_health(channel, access_sync(session, channel), now)),
        "reason": _reason_words(request, health.reason),
        "requests": ob.sync_requests(session, channel),
        "retryable": ob.retryable_syncs(session, channel, now),
        "window_closes": ob.sync_window_closes(channel),
        "costs": month_costs(session, channel, now),
        "groups": groups,
        "notes": notes,
        "labels": ob.SYNC_LABELS,
        "coexistence": channel.mode == ChannelMode.COEXISTENCE.value,
        "phase_messages": history_messages_by_phase(session, channel),
        "pause_bot": (channel.settings or {}).get("pause_bot_on_owner_reply", True),
        "pause_minutes": (channel.settings or {}).get("owner_pause_minutes", OWNER_PAUSE_MINUTES),
        "pause_minutes_max": MAX_OWNER_PAUSE_MINUTES,
        "hours_status": business_hours.status_words(request, hours := hours_of(channel), now),
        "hours_away": hours is not None and hours.away_enabled,
    }


@router.get("/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(request: Request, channel_id: int, session: DbDep, me: Manager) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    context = _detail_context(request, session, channel)
    context["flash"] = _flash(request)
    context["error"] = request.query_params.get("error")
    return render(request, "channels/detail.html", context)


@router.get("/channels/{channel_id}/progress", response_class=HTMLResponse)
def channel_progress(request: Request, channel_id: int, session: DbDep, me: Manager) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    return render(request, "channels/_progress.html", _detail_context(request, session, channel))


@router.post("/channels/{channel_id}/sync/{sync_type}", response_class=HTMLResponse)
@own_transactions
def channel_sync_retry(
    request: Request,
    channel_id: int,
    sync_type: str,
    session: DbDep,
    runtime: RuntimeDep,
    me: Manager,
) -> Response:
    access_channel(session, me.workspace.id, channel_id)
    try:
        ob.do_request_sync(runtime, me.workspace.id, channel_id, sync_type, me.actor)
    except PuenteError as exc:
        return RedirectResponse(
            f"/channels/{channel_id}?error={quote(exc.message)}", status_code=303
        )
    return RedirectResponse(f"/channels/{channel_id}?flash=retried", status_code=303)


@router.post("/channels/{channel_id}/settings", response_class=HTMLResponse)
def channel_settings(
    request: Request,
    channel_id: int,
    session: DbDep,
    me: Manager,
    pause_bot_on_owner_reply: Annotated[str | None, Form(max_length=8)] = None,
    owner_pause_minutes: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    changes: dict[str, Any] = {"pause_bot_on_owner_reply": pause_bot_on_owner_reply == "yes"}
    if owner_pause_minutes is not None:
        minutes = _pause_minutes(owner_pause_minutes)
        if minutes is None:
            context = _detail_context(request, session, channel)
            context["pause_minutes"] = owner_pause_minutes
            context["error"] = translate(
                request,
                "The pause after the owner answers must be a whole number of minutes from 0 "
                "to %(most)s (0: until someone resumes the bot).",
                most=MAX_OWNER_PAUSE_MINUTES,
            )
            return render(request, "channels/detail.html", context, status_code=422)
        changes["owner_pause_minutes"] = minutes
    do_change_channel_settings(session, channel, changes, me.actor)
    return RedirectResponse(f"/channels/{channel_id}?flash=saved", status_code=303)


# A week: longer and the owner would rather switch the bot off in the conversation.
MAX_OWNER_PAUSE_MINUTES = 7 * 24 * 60


def _pause_minutes(raw: str) -> int | None:
    """The form's minutes, or None when they are not a whole number in range."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_OWNER_PAUSE_MINUTES:
        return None
    return int(text)
