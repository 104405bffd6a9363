"""Sign-in pages: first-run set-up, login with the TOTP step, logout, password reset and
invitations."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from puente.accounts import auth
from puente.accounts.audit import Action, record, record_when_done
from puente.accounts.mail import do_queue_mail
from puente.accounts.models import User, Workspace
from puente.accounts.presence import do_arrive, do_leave
from puente.accounts.service import do_setup, needs_setup
from puente.accounts.sessions import do_create_session, do_end_session, load_session
from puente.errors import PuenteError
from puente.web.deps import DbDep, MaybeMember, RuntimeDep, client_ip, public_page
from puente.web.i18n import common_timezones, error_message
from puente.web.security import SESSION_COOKIE, clear_session_cookie, set_session_cookie
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Public = Depends(public_page)


def safe_next(value: str | None) -> str:
    """Only same-site paths, so a crafted login link cannot send people elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, template: str, error: PuenteError, **ctx: object) -> HTMLResponse:
    return render(
        request,
        template,
        {"error": error_message(request_language(request), error), **ctx},
        status_code=error.status_code,
    )


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request, session: DbDep, _me: MaybeMember) -> Response:
    if not needs_setup(session):
        return _redirect("/login")
    return render(request, "auth/setup.html", {"form": {}, "timezones": common_timezones()})


@router.post("/setup", response_class=HTMLResponse)
def setup_submit(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    _me: MaybeMember,
    workspace: Annotated[str, Form(max_length=200)],
    name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
) -> Response:
    form = {"workspace": workspace, "name": name, "email": email, "timezone": timezone}
    try:
        with session.begin_nested():
            ws, user = do_setup(
                session,
                workspace_name=workspace,
                email=email,
                password=password,
                name=name,
                timezone=timezone,
                ip=client_ip(request),
            )
    except PuenteError as exc:
        return _error_page(request, "auth/setup.html", exc, form=form, timezones=common_timezones())
    return _start_session(request, runtime, session, user, ws.id, "/")


def _start_session(
    request: Request,
    runtime: RuntimeDep,
    session: DbDep,
    user: User,
    workspace_id: int,
    next_url: str,
    stage: str = "full",
) -> Response:
    token = do_create_session(
        session,
        user=user,
        workspace_id=workspace_id,
        stage=stage,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        replaces=request.cookies.get(SESSION_COOKIE),
    )
    if stage == "full":
        do_arrive(session, user)
    target = next_url if stage == "full" else f"/login/code?next={next_url}"
    response = _redirect(target)
    set_session_cookie(response, token, secure=runtime.settings.secure_cookies)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, session: DbDep, me: MaybeMember, next: str | None = None
) -> Response:
    if needs_setup(session):
        return _redirect("/setup")
    if me is not None:
        return _redirect(safe_next(next))
    return render(request, "auth/login.html", {"next": safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    _me: MaybeMember,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    outcome = auth.do_login(session, email=email, password=password, ip=client_ip(request))
    if outcome.error is not None:
        return _error_page(
            request, "auth/login.html", outcome.error, email=email, next=safe_next(next)
        )
    assert outcome.user is not None and outcome.membership is not None
    target = safe_next(next)
    if outcome.must_enrol:
        target = "/settings/profile?enrol=1"
    stage = "mfa" if outcome.needs_code else "full"
    return _start_session(
        request, runtime, session, outcome.user, outcome.membership.workspace_id, target, stage
    )


def _pending_user(request: Request, session: DbDep) -> User | None:
    row = load_session(session, request.cookies.get(SESSION_COOKIE))
    if row is None or row.stage != "mfa":
        return None
    return session.get(User, row.user_id)


@router.get("/login/code", response_class=HTMLResponse)
def code_page(
    request: Request, session: DbDep, _me: MaybeMember, next: str | None = None
) -> Response:
    if _pending_user(request, session) is None:
        return _redirect("/login")
    return render(request, "auth/mfa.html", {"next": safe_next(next)})


@router.post("/login/code", response_class=HTMLResponse)
def code_submit(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    _me: MaybeMember,
    code: Annotated[str, Form(max_length=64)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    user = _pending_user(request, session)
    if user is None:
        return _redirect("/login")
    outcome = auth.do_second_factor(
        session, runtime.secrets, user=user, code=code, ip=client_ip(request)
    )
    if outcome.error is not None:
        return _error_page(request, "auth/mfa.html", outcome.error, next=safe_next(next))
    assert outcome.membership is not None
    return _start_session(
        request, runtime, session, user, outcome.membership.workspace_id, safe_next(next)
    )


@router.post("/logout")
def logout(request: Request, session: DbDep, runtime: RuntimeDep, me: MaybeMember) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        do_end_session(session, token)
    if me is not None:
        do_leave(session, me.user)
        record(
            session,
            workspace_id=me.actor.workspace_id,
            actor=me.actor,
            action=Action.LOGOUT,
            ip=client_ip(request),
        )
    response = _redirect("/login")
    clear_session_cookie(response, secure=runtime.settings.secure_cookies)
    return response


@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_page(request: Request, runtime: RuntimeDep, _me: MaybeMember) -> Response:
    no_mail = not runtime.settings.smtp_url and not runtime.settings.dev_mail
    return render(request, "auth/forgot.html", {"no_mail": no_mail})


@router.post("/forgot-password", response_class=HTMLResponse)
def forgot_submit(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    _me: MaybeMember,
    email: Annotated[str, Form(max_length=320)],
) -> Response:
    if not runtime.settings.smtp_url and not runtime.settings.dev_mail:
        # No mail can reach anyone, so no link is made (a kept link would only be readable
        # by others); the answer is the same whether the address has an account or not.
        return render(request, "auth/forgot.html", {"no_mail": True})
    issued = auth.do_request_reset(session, email=email, ip=client_ip(request))
    if issued is not None:
        user, token = issued
        link = f"{runtime.settings.base_url.rstrip('/')}/reset/{token}"
        lang = user.locale or "en"
        from puente.web.i18n import translations

        tr = translations(lang)
        do_queue_mail(
            session,
            runtime.db,
            runtime.settings,
            workspace_id=_workspace_of(session, user),
            to=user.email,
            subject=tr.gettext("Reset your Puente password"),
            body=tr.gettext(
                "Someone asked to reset the password of your Puente account.\n\n"
                "Choose a new password here (the link works for one hour):\n%(link)s\n\n"
                "If it was not you, ignore this message."
            )
            % {"link": link},
        )
    return render(request, "auth/forgot.html", {"sent": True})


def _workspace_of(session: DbDep, user: User) -> int | None:
    from puente.accounts.service import first_membership

    membership = first_membership(session, user)
    return membership.workspace_id if membership else None


def _refused_link(
    request: Request, session: DbDep, template: str, exc: PuenteError, **ctx: object
) -> HTMLResponse:
    # In its own transaction after the request: the link pages only read otherwise.
    record_when_done(
        session,
        workspace_id=None,
        actor="anonymous",
        action=Action.LINK_REFUSED,
        target=request.url.path.split("/")[1],
        details={"reason": exc.code},
        ip=client_ip(request),
    )
    return _error_page(request, template, exc, link_ok=False, **ctx)


@router.get("/reset/{token}", response_class=HTMLResponse)
def reset_page(request: Request, session: DbDep, _me: MaybeMember, token: str) -> Response:
    try:
        auth.access_link(session, "reset", token)
    except PuenteError as exc:
        return _refused_link(request, session, "auth/reset.html", exc)
    return render(request, "auth/reset.html", {"link_ok": True, "token": token})


@router.post("/reset/{token}", response_class=HTMLResponse)
def reset_submit(
    request: Request,
    session: DbDep,
    _me: MaybeMember,
    token: str,
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        with session.begin_nested():
            auth.do_reset_password(session, token=token, password=password, ip=client_ip(request))
    except PuenteError as exc:
        if exc.code.startswith("link_"):
            return _refused_link(request, session, "auth/reset.html", exc)
        return _error_page(request, "auth/reset.html", exc, link_ok=True, token=token)
    return render(
        request,
        "auth/login.html",
        {"flash": translate(request, "Your password was changed. Sign in with it now.")},
    )


@router.get("/invite/{token}", response_class=HTMLResponse)
def invite_page(request: Request, session: DbDep, _me: MaybeMember, token: str) -> Response:
    try:
        link = auth.access_link(session, "invite", token)
    except PuenteError as exc:
        return _refused_link(request, session, "auth/invite.html", exc)
    ws = session.get(Workspace, link.workspace_id)
    existing = session.scalar(select(User.id).where(User.email == link.email))
    return render(
        request,
        "auth/invite.html",
        {
            "link_ok": True,
            "token": token,
            "email": link.email,
            "workspace_name": ws.name if ws else "",
            "existing": existing is not None,
        },
    )


@router.post("/invite/{token}", response_class=HTMLResponse)
def invite_submit(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    _me: MaybeMember,
    token: str,
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        with session.begin_nested():
            user, workspace_id = auth.do_accept_invitation(
                session, token=token, name=name, password=password, ip=client_ip(request)
            )
    except PuenteError as exc:
        if exc.code.startswith("link_"):
            return _refused_link(request, session, "auth/invite.html", exc)
        return _error_page(request, "auth/invite.html", exc, link_ok=True, token=token)
    return _start_session(request, runtime, session, user, workspace_id, "/")
