"""Workspace administration: users and invitations, teams, security settings, audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from puente.accounts import audit
from puente.accounts.auth import (
    do_invite,
    do_issue_member_reset,
    do_resend_invitation,
    do_reset_member_totp,
    do_revoke_invitation,
    list_pending_invitations,
)
from puente.accounts.mail import do_queue_mail
from puente.accounts.models import Role
from puente.accounts.permissions import ASSIGNABLE_ROLES, Perm, Scope
from puente.accounts.service import (
    do_change_role,
    do_create_team,
    do_delete_team,
    do_set_member_active,
    do_set_member_permissions,
    do_set_team_members,
    do_update_security_settings,
    list_members,
    list_teams,
    mfa_policy,
    retention_days,
)
from puente.db.base import utcnow
from puente.errors import InvalidInput, PuenteError
from puente.request_session import writes
from puente.web.deps import DbDep, RuntimeDep, WebContext, client_ip, require_permission
from puente.web.i18n import N_, error_message, translations
from puente.web.routes.routing import routing_context
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Admin = Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))]
Auditor = Annotated[WebContext, Depends(require_permission(Perm.AUDIT))]


def _users(
    request: Request, session: DbDep, me: WebContext, status: int = 200, **extra: object
) -> HTMLResponse:
    role = me.actor.role
    members = list_members(session, me.actor.workspace_id)
    invitations = list_pending_invitations(session, me.actor.workspace_id)
    now = utcnow()
    context = {
        "members": members,
        "assignable": [r.value for r in ASSIGNABLE_ROLES[role]] if role else [],
        "scopes": [s.value for s in Scope],
        "invitations": invitations,
        "expired": {i.id for i in invitations if i.expires_at <= now},
        "inviters": {user.id: user.name for user, _m in members},
        **extra,
    }
    return render(request, "settings/users.html", context, status_code=status)


def _attempt(
    request: Request,
    session: DbDep,
    me: WebContext,
    action: Callable[[], object],
    ok: str,
    show: Callable[..., HTMLResponse] | None = None,
) -> HTMLResponse:
    """Run one change in a savepoint and show the page again (the users page unless
    `show` says which) with its confirmation or the reason it was refused."""
    show = show or _users
    try:
        with session.begin_nested():
            action()
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        return show(request, session, me, exc.status_code, error=error)
    return show(request, session, me, flash=translate(request, ok))


@router.get("/settings/users", response_class=HTMLResponse)
def users_page(request: Request, session: DbDep, me: Admin) -> Response:
    return _users(request, session, me)


def _parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise InvalidInput("choose owner, admin, supervisor or agent") from exc


def _mail_invitation(
    session: DbDep, runtime: RuntimeDep, me: WebContext, email: str, token: str
) -> None:
    """The invitation e-mail, in the inviter's language (the invitee has none yet)."""
    link = f"{runtime.settings.base_url.rstrip('/')}/invite/{token}"
    tr = translations(me.user.locale or "en")
    do_queue_mail(
        session,
        runtime.db,
        runtime.settings,
        workspace_id=me.actor.workspace_id,
        to=email.strip().lower(),
        subject=tr.gettext("You are invited to %(workspace)s on Puente")
        % {"workspace": me.workspace.name},
        body=tr.gettext(
            "%(name)s invited you to the %(workspace)s team inbox on Puente.\n\n"
            "Accept within 7 days:\n%(link)s"
        )
        % {"name": me.user.name, "workspace": me.workspace.name, "link": link},
    )


@router.post("/settings/users/invite", response_class=HTMLResponse)
def users_invite(
    request: Request,
    session: DbDep,
    runtime: RuntimeDep,
    me: Admin,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=16)],
) -> Response:
    def invite() -> None:
        target_role = _parse_role(role)
        if me.actor.role is None or target_role not in ASSIGNABLE_ROLES[me.actor.role]:
            raise InvalidInput("you cannot invite someone with this role")
        token = do_invite(
            session,
            workspace_id=me.actor.workspace_id,
            email=email,
            role=target_role,
            invited_by=me.user,
            actor=me.actor,
            ip=client_ip(request),
        )
        _mail_invitation(session, runtime, me, email, token)

    return _attempt(request, session, me, invite, _invitation_outcome(runtime, sent_again=False))


@router.post("/settings/invitations/{link_id}/resend", response_class=HTMLResponse)
def invitation_resend(
    request: Request, session: DbDep, runtime: RuntimeDep, me: Admin, link_id: int
) -> Response:
    def resend() -> None:
        link, token = do_resend_invitation(
            session, me.actor, link_id, invited_by=me.user, ip=client_ip(request)
        )
        _mail_invitation(session, runtime, me, link.email, token)

    return _attempt(request, session, me, resend, _invitation_outcome(runtime, sent_again=True))


def _invitation_outcome(runtime: RuntimeDep, *, sent_again: bool) -> str:
    """What the admin is told. Without a mail server nothing reached the person, and the
    link is shown to nobody else (it may be for someone with an account elsewhere)."""
    if not runtime.settings.smtp_url and not runtime.settings.dev_mail:
        return N_(
            "The invitation is saved but was not mailed: no mail server is set up "
            "(PUENTE_SMTP_URL). Ask the operator to set one up, then send it again."
        )
    return N_("The invitation was sent again.") if sent_again else N_("Invitation sent.")


@router.post("/settings/invitations/{link_id}/revoke", response_class=HTMLResponse)
def invitation_revoke(request: Request, session: DbDep, me: Admin, link_id: int) -> Response:
    def revoke() -> None:
        do_revoke_invitation(session, me.actor, link_id, ip=client_ip(request))

    return _attempt(request, session, me, revoke, N_("The invitation was withdrawn."))


@router.post("/settings/users/{user_id}/role", response_class=HTMLResponse)
def users_role(
    request: Request,
    session: DbDep,
    me: Admin,
    user_id: int,
    role: Annotated[str, Form(max_length=16)],
) -> Response:
    def change() -> None:
        do_change_role(session, me.actor, user_id, _parse_role(role), ip=client_ip(request))

    return _attempt(request, session, me, change, N_("Role changed."))


@router.post("/settings/users/{user_id}/permissions", response_class=HTMLResponse)
def users_permissions(
    request: Request,
    session: DbDep,
    me: Admin,
    user_id: int,
    scope: Annotated[str, Form(max_length=16)] = "",
    grants: Annotated[list[str] | None, Form()] = None,
    denials: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def change() -> None:
        try:
            chosen = Scope(scope) if scope else None
            overrides = {Perm(p).value: True for p in grants or []}
            overrides.update({Perm(p).value: False for p in denials or []})
        except ValueError as exc:
            raise InvalidInput("unknown permission or scope") from exc
        do_set_member_permissions(
            session, me.actor, user_id, scope=chosen, grants=overrides, ip=client_ip(request)
        )

    return _attempt(request, session, me, change, N_("Permissions changed."))


@router.post("/settings/users/{user_id}/deactivate", response_class=HTMLResponse)
def users_deactivate(request: Request, session: DbDep, me: Admin, user_id: int) -> Response:
    def change() -> None:
        do_set_member_active(session, me.actor, user_id, active=False, ip=client_ip(request))

    return _attempt(request, session, me, change, N_("User deactivated."))


@router.post("/settings/users/{user_id}/reactivate", response_class=HTMLResponse)
def users_reactivate(request: Request, session: DbDep, me: Admin, user_id: int) -> Response:
    def change() -> None:
        do_set_member_active(session, me.actor, user_id, active=True, ip=client_ip(request))

    return _attempt(request, session, me, change, N_("User reactivated."))


@router.post("/settings/users/{user_id}/reset-2fa", response_class=HTMLResponse)
def users_reset_2fa(request: Request, session: DbDep, me: Admin, user_id: int) -> Response:
    def change() -> None:
        do_reset_member_totp(session, me.actor, user_id, ip=client_ip(request))

    return _attempt(
        request,
        session,
        me,
        change,
        N_("Two-factor sign-in was reset. They sign in with their password and set it up again."),
    )


@router.post("/settings/users/{user_id}/reset-password", response_class=HTMLResponse)
def users_reset_password(
    request: Request, session: DbDep, runtime: RuntimeDep, me: Admin, user_id: int
) -> Response:
    """A reset link for a member: mailed to them with SMTP, else shown once, here, to
    this admin to pass on (audited either way; never for owners, see the service)."""
    smtp = bool(runtime.settings.smtp_url)
    try:
        with session.begin_nested():
            user, token = do_issue_member_reset(session, me.actor, user_id, ip=client_ip(request))
            link = f"{runtime.settings.base_url.rstrip('/')}/reset/{token}"
            if smtp:
                _mail_reset(session, runtime, me, user.email, user.locale, link)
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        return _users(request, session, me, exc.status_code, error=error)
    if smtp:
        flash = translate(
            request, "A password reset link was mailed to %(email)s.", email=user.email
        )
        return _users(request, session, me, flash=flash)
    return _users(request, session, me, reset_link=link, reset_for=user.email)


def _mail_reset(
    session: DbDep, runtime: RuntimeDep, me: WebContext, to: str, locale: str | None, link: str
) -> None:
    tr = translations(locale or "en")
    do_queue_mail(
        session,
        runtime.db,
        runtime.settings,
        workspace_id=me.actor.workspace_id,
        to=to,
        subject=tr.gettext("Reset your Puente password"),
        body=tr.gettext(
            "Someone asked to reset the password of your Puente account.\n\n"
            "Choose a new password here (the link works for one hour):\n%(link)s\n\n"
            "If it was not you, ignore this message."
        )
        % {"link": link},
    )


# --- Teams ---------------------------------------------------------------------------------


def _teams(
    request: Request, session: DbDep, me: WebContext, status: int = 200, **extra: object
) -> HTMLResponse:
    context = {
        "teams": list_teams(session, me.actor.workspace_id),
        "members": list_members(session, me.actor.workspace_id),
        **routing_context(session, me),
        **extra,
    }
    return render(request, "settings/teams.html", context, status_code=status)


# Supervisors see the teams too: they set how each team's conversations are assigned
# (web/routes/routing.py); the team's members stay the admins' to change.
@router.get("/settings/teams", response_class=HTMLResponse)
def teams_page(
    request: Request,
    session: DbDep,
    me: Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))],
) -> Response:
    return _teams(request, session, me)


@router.post("/settings/teams", response_class=HTMLResponse)
def teams_create(
    request: Request, session: DbDep, me: Admin, name: Annotated[str, Form(max_length=120)]
) -> Response:
    return _attempt(
        request,
        session,
        me,
        lambda: do_create_team(session, me.actor, name, ip=client_ip(request)),
        N_("Team created."),
        show=_teams,
    )


@router.post("/settings/teams/{team_id}/members", response_class=HTMLResponse)
def teams_members(
    request: Request,
    session: DbDep,
    me: Admin,
    team_id: int,
    user_ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    return _attempt(
        request,
        session,
        me,
        lambda: do_set_team_members(
            session, me.actor, team_id, user_ids or [], ip=client_ip(request)
        ),
        N_("Team members saved."),
        show=_teams,
    )


@router.post("/settings/teams/{team_id}/delete", response_class=HTMLResponse)
def teams_delete(request: Request, session: DbDep, me: Admin, team_id: int) -> Response:
    return _attempt(
        request,
        session,
        me,
        lambda: do_delete_team(session, me.actor, team_id, ip=client_ip(request)),
        N_("Team deleted."),
        show=_teams,
    )


# --- Security ------------------------------------------------------------------------------


def _security(request: Request, me: WebContext, status: int = 200, **extra: object) -> HTMLResponse:
    context = {
        "policy": mfa_policy(me.workspace),
        "retention": retention_days(me.workspace),
        **extra,
    }
    return render(request, "settings/security.html", context, status_code=status)


@router.get("/settings/security", response_class=HTMLResponse)
def security_page(request: Request, me: Admin) -> Response:
    return _security(request, me)


@router.post("/settings/security", response_class=HTMLResponse)
def security_submit(
    request: Request,
    session: DbDep,
    me: Admin,
    require_2fa: Annotated[str, Form(max_length=16)],
    retention_days_: Annotated[str, Form(alias="retention_days", max_length=8)] = "",
) -> Response:
    try:
        with session.begin_nested():
            value = retention_days_.strip()
            if value and not value.isdigit():
                raise InvalidInput("retention must be a number of days")
            do_update_security_settings(
                session,
                me.actor,
                require_2fa=require_2fa,
                retention=int(value) if value else None,
                ip=client_ip(request),
            )
    except PuenteError as exc:
        session.refresh(me.workspace)
        return _security(request, me, exc.status_code, error=translate(request, exc.message))
    return _security(request, me, flash=translate(request, "Security settings saved."))


# --- Audit log -----------------------------------------------------------------------------


@router.get("/settings/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, session: DbDep, me: Auditor, before: int | None = None
) -> Response:
    entries = audit.list_entries(session, me.actor.workspace_id, limit=100, before_seq=before)
    return render(
        request,
        "settings/audit.html",
        {"entries": entries, "total": audit.count_entries(session, me.actor.workspace_id)},
    )


@router.get("/settings/audit.csv")
@writes  # the export is itself audited
def audit_export(request: Request, session: DbDep, runtime: RuntimeDep, me: Auditor) -> Response:
    workspace_id = me.actor.workspace_id
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=me.actor,
        action=audit.Action.AUDIT_EXPORTED,
        ip=client_ip(request),
    )

    def rows() -> Iterator[str]:
        # The request's session closes before streaming starts; read with a fresh one.
        with runtime.db.read(scope=workspace_id) as reader:
            yield from audit.export_csv(reader, workspace_id)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{me.workspace.slug}.csv"'},
    )
