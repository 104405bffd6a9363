"""Personal settings (profile, two-factor sign-in) and API tokens."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from puente.accounts import auth
from puente.accounts.credentials import remaining_recovery_codes, totp_uri
from puente.accounts.permissions import Perm
from puente.accounts.presence import do_set_availability
from puente.accounts.service import do_update_profile, mfa_required_for
from puente.accounts.sessions import do_end_user_sessions
from puente.accounts.tokens import (
    ALL_SCOPES,
    do_issue_token_audited,
    do_revoke_token_audited,
    list_tokens,
)
from puente.conversations.notifications import KINDS as NOTIFICATION_KINDS
from puente.conversations.notifications import do_set_notification_prefs, wants
from puente.errors import PuenteError
from puente.web.deps import DbDep, Member, RuntimeDep, WebContext, client_ip, require_permission
from puente.web.i18n import common_timezones, error_message
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Admin = Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))]


def _profile(
    request: Request, session: DbDep, me: WebContext, status: int = 200, **extra: object
) -> HTMLResponse:
    role = me.actor.role
    context = {
        "timezones": common_timezones(),
        "recovery_left": remaining_recovery_codes(session, me.user) if me.user.totp_enabled else 0,
        "mfa_required": role is not None and mfa_required_for(me.workspace, role),
        "enrol": request.query_params.get("enrol") == "1",
        "notification_kinds": NOTIFICATION_KINDS,
        "wants_notification": lambda kind, way: wants(me.user.notification_prefs, kind, way),
        **extra,
    }
    return render(request, "settings/profile.html", context, status_code=status)


@router.get("/settings", response_class=HTMLResponse)
def settings_index(me: Member) -> Response:
    target = "/settings/users" if me.can(Perm.SETTINGS) else "/settings/profile"
    return RedirectResponse(target, status_code=303)


@router.get("/settings/profile", response_class=HTMLResponse)
def profile_page(request: Request, session: DbDep, me: Member) -> Response:
    return _profile(request, session, me)


@router.post("/settings/profile", response_class=HTMLResponse)
def profile_submit(
    request: Request,
    session: DbDep,
    me: Member,
    name: Annotated[str, Form(max_length=200)],
    language: Annotated[str, Form(max_length=8)],
    timezone: Annotated[str, Form(max_length=64)],
    availability: Annotated[str, Form(max_length=16)],
) -> Response:
    try:
        with session.begin_nested():
            do_update_profile(
                session, me.user, name=name, locale=language, timezone=timezone, actor=me.actor
            )
            do_set_availability(session, me.user, availability)
    except PuenteError as exc:
        session.refresh(me.user)
        return _profile(
            request,
            session,
            me,
            exc.status_code,
            error=error_message(request_language(request), exc),
        )
    return _profile(request, session, me, flash=translate(request, "Your profile was saved."))


@router.post("/settings/profile/notifications", response_class=HTMLResponse)
def notification_prefs_submit(
    request: Request,
    session: DbDep,
    me: Member,
    on: Annotated[list[str] | None, Form()] = None,
) -> Response:
    do_set_notification_prefs(session, me.user, set(on or []))
    return _profile(
        request, session, me, flash=translate(request, "Your notification choices were saved.")
    )


@router.post("/settings/profile/password", response_class=HTMLResponse)
def password_submit(
    request: Request,
    session: DbDep,
    me: Member,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    new_password_again: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        with session.begin_nested():
            auth.do_change_password(
                session,
                me.user,
                me.actor.workspace_id,
                current=current_password,
                new=new_password,
                again=new_password_again,
                keep_session=me.session_token,
                ip=client_ip(request),
            )
    except PuenteError as exc:
        session.refresh(me.user)
        error = error_message(request_language(request), exc)
        return _profile(request, session, me, exc.status_code, password_error=error)
    return _profile(
        request,
        session,
        me,
        flash=translate(request, "Your password was changed. Your other sessions were signed out."),
    )


def _totp_setup(
    request: Request, me: WebContext, secret: str, status: int = 200, **extra: object
) -> HTMLResponse:
    """The enrolment page: the key as a QR code to scan, and as text to type."""
    uri = totp_uri(secret, me.user.email, f"Puente ({me.workspace.name})")
    # Inline SVG (no script, no style attribute): the CSP allows it as it is.
    qr = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, light="#fff", svgclass="totp-qr", title=translate(request, "QR code")
    )
    context = {"secret": secret, "uri": uri, "qr": Markup(qr), **extra}  # noqa: S704 (segno's own SVG)
    return render(request, "settings/totp_setup.html", context, status_code=status)


@router.post("/settings/profile/2fa/start", response_class=HTMLResponse)
def totp_start(request: Request, session: DbDep, runtime: RuntimeDep, me: Member) -> Response:
    secret = auth.do_start_totp(session, runtime.secrets, me.user)
    return _totp_setup(request, me, secret)


@router.post("/settings/profile/2fa/confirm", response_class=HTMLResponse)
def totp_confirm(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Member,
    code: Annotated[str, Form(max_length=16)],
) -> Response:
    try:
        with session.begin_nested():
            codes = auth.do_confirm_totp(
                session, runtime.secrets, me.user, me.actor.workspace_id, code, client_ip(request)
            )
    except PuenteError as exc:
        from puente.accounts.credentials import user_totp_secret

        secret = user_totp_secret(runtime.secrets, me.user) or ""
        error = error_message(request_language(request), exc)
        return _totp_setup(request, me, secret, exc.status_code, error=error)
    # Other sessions were opened without the second factor: end them.
    do_end_user_sessions(session, me.user.id, keep=me.session_token)
    return render(request, "settings/recovery_codes.html", {"codes": codes})


@router.post("/settings/profile/2fa/disable", response_class=HTMLResponse)
def totp_disable(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Member,
    # Room for a recovery code ("xxxxxxxx-xxxxxxxx") as well as a 6-digit code.
    code: Annotated[str, Form(max_length=64)],
) -> Response:
    try:
        with session.begin_nested():
            auth.do_disable_totp(
                session, runtime.secrets, me.user, me.actor.workspace_id, code, client_ip(request)
            )
    except PuenteError as exc:
        session.refresh(me.user)
        return _profile(
            request,
            session,
            me,
            exc.status_code,
            error=error_message(request_language(request), exc),
        )
    return _profile(
        request, session, me, flash=translate(request, "Two-factor sign-in is now off.")
    )


# --- API tokens ----------------------------------------------------------------------------


def _tokens(
    request: Request, session: DbDep, me: WebContext, status: int = 200, **extra: object
) -> HTMLResponse:
    context = {
        "tokens": list_tokens(session, me.actor.workspace_id),
        "scopes": ALL_SCOPES,
        **extra,
    }
    return render(request, "settings/tokens.html", context, status_code=status)


@router.get("/settings/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, session: DbDep, me: Admin) -> Response:
    return _tokens(request, session, me)


@router.post("/settings/tokens", response_class=HTMLResponse)
def tokens_create(
    request: Request,
    session: DbDep,
    me: Admin,
    name: Annotated[str, Form(max_length=120)],
    scopes: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        with session.begin_nested():
            issued = do_issue_token_audited(
                session,
                workspace_id=me.actor.workspace_id,
                actor=me.actor,
                name=name,
                scopes=scopes or None,
                created_by_id=me.user.id,
                ip=client_ip(request),
            )
    except PuenteError as exc:
        return _tokens(
            request,
            session,
            me,
            exc.status_code,
            error=error_message(request_language(request), exc),
        )
    return _tokens(request, session, me, new_secret=issued.secret, new_name=issued.token.name)


@router.post("/settings/tokens/{token_id}/revoke", response_class=HTMLResponse)
def tokens_revoke(request: Request, session: DbDep, me: Admin, token_id: int) -> Response:
    do_revoke_token_audited(
        session,
        workspace_id=me.actor.workspace_id,
        token_id=token_id,
        actor=me.actor,
        ip=client_ip(request),
    )
    return _tokens(request, session, me, flash=translate(request, "The token was revoked."))
