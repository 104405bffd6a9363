"""The web UI's door to the authorization gate.

Every web route declares one of `require_permission(...)` or `public_page` as a
dependency. Both check the CSRF token of state-changing requests; the first also
resolves the signed-in member and asks the gate. tests/accounts/test_route_walk.py
walks `app.routes` and fails for any web route that declares neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, HTTPException, Request
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, actor_scope, member_actor
from puente.accounts.models import Role, User, WebSession, Workspace
from puente.accounts.permissions import Perm
from puente.accounts.service import mfa_required_for
from puente.accounts.sessions import (
    do_touch_session,
    load_session_member,
    session_touch_due,
)
from puente.db.base import utcnow
from puente.db.scope import set_scope, unscoped
from puente.errors import Forbidden, PuenteError
from puente.request_session import request_session, touch_after_response
from puente.runtime import Runtime
from puente.secrets import session_secret
from puente.web.security import SESSION_COOKIE, csrf_ok

GATE_ATTR = "__puente_gate__"
PUBLIC = "public"


class LoginRequired(PuenteError):
    status_code = 401
    code = "not_authenticated"


class CsrfRefused(Forbidden):
    code = "csrf_failed"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def web_db(request: Request) -> Iterator[Session]:
    """The request's unit of work, committed before the response is sent (a read-only
    session for GET pages, see `puente.request_session`)."""
    db = get_runtime(request).db
    deferred: list[dict[str, Any]] = []
    try:
        with request_session(request, db) as session:
            try:
                yield session
            finally:
                deferred = audit.take_deferred(session)
    finally:
        # Refusals are audited even though the refused request rolled back.
        audit.write_deferred(db, deferred)


# scope="function": commit before the response leaves, so the browser's next request
# (following a redirect) always sees what this one wrote.
DbDep = Annotated[Session, Depends(web_db, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass
class WebContext:
    """The signed-in member, as seen by templates and handlers."""

    actor: Actor
    user: User
    workspace: Workspace
    web_session: WebSession
    session_token: str

    def can(self, permission: Perm | str) -> bool:
        return Perm(permission) in self.actor.permissions


async def csrf_check(request: Request) -> bool:
    secret = getattr(request.app.state, "session_secret", None)
    if secret is None:
        secret = session_secret(get_runtime(request).settings)
        request.app.state.session_secret = secret
    return await csrf_ok(request, secret)


CsrfDep = Annotated[bool, Depends(csrf_check)]


def _refuse_csrf(request: Request, session: Session, ctx: WebContext | None) -> None:
    audit.record_when_done(
        session,
        workspace_id=ctx.actor.workspace_id if ctx else None,
        actor=ctx.actor.label if ctx else "anonymous",
        action=Action.CSRF_REFUSED,
        target=f"{request.method} {request.url.path}"[:200],
        ip=client_ip(request),
    )
    raise CsrfRefused(
        "this form has expired or did not come from Puente; reload the page and try again"
    )


def resolve_member(
    request: Request, session: Session, background: BackgroundTasks | None = None
) -> WebContext | None:
    """The signed-in member for this request, or None (cached on request.state). With
    `background`, the session's last-seen time is recorded after the response."""
    if hasattr(request.state, "web"):
        cached: WebContext | None = request.state.web
        return cached
    ctx = None
    token = request.cookies.get(SESSION_COOKIE)
    with unscoped(session, "finding whose sign-in cookie this is"):
        found = load_session_member(session, token)
        if found is not None and background is not None:
            _touch_later(request, background, found.session)
        if found is not None and found.session.stage == "full" and token:
            row, user, workspace = found.session, found.user, found.workspace
            actor = (
                member_actor(session, user, found.membership, row.workspace_id, found.team_ids)
                if user
                else None
            )
            if actor is not None and user is not None and workspace is not None:
                ctx = WebContext(actor, user, workspace, row, token)
    if ctx is not None:
        # From here on every query of this request sees only what this member may see.
        set_scope(session, actor_scope(ctx.actor))
    request.state.web = ctx
    return ctx


def _touch_later(request: Request, background: BackgroundTasks, row: WebSession) -> None:
    now = utcnow()
    if session_touch_due(row, now):
        row_id = row.id
        touch_after_response(
            request, background, f"session:{row_id}", lambda s: do_touch_session(s, row_id, now)
        )


# What a member who must enrol in two-factor sign-in may still reach (sign-out and the
# sign-in pages are public and always reachable).
ENROL_PAGE = "/settings/profile?enrol=1"
ENROL_PATHS = {
    ("GET", "/settings/profile"),
    ("POST", "/settings/profile/2fa/start"),
    ("POST", "/settings/profile/2fa/confirm"),
    ("POST", "/me/language"),
}


class EnrolmentRequired(HTTPException):
    """The workspace requires two-factor sign-in and this member has not set it up: every
    page but enrolment sends them there (htmx requests get HX-Redirect)."""

    def __init__(self, htmx: bool) -> None:
        if htmx:
            super().__init__(403, "set up two-factor sign-in first", {"HX-Redirect": ENROL_PAGE})
        else:
            super().__init__(303, "set up two-factor sign-in first", {"Location": ENROL_PAGE})


def must_enrol(ctx: WebContext) -> bool:
    role = ctx.actor.role
    return (
        not ctx.user.totp_enabled
        and role is not None
        and mfa_required_for(ctx.workspace, Role(role))
    )


def require_permission(permission: Perm | str) -> Callable[..., WebContext]:
    """A route dependency admitting signed-in members who hold `permission`."""
    perm = Perm(permission)

    def gate(
        request: Request, session: DbDep, csrf_passed: CsrfDep, background: BackgroundTasks
    ) -> WebContext:
        ctx = resolve_member(request, session, background)
        if ctx is None:
            raise LoginRequired("sign in to continue")
        if not csrf_passed:
            _refuse_csrf(request, session, ctx)
        if must_enrol(ctx) and (request.method, request.url.path) not in ENROL_PATHS:
            raise EnrolmentRequired(htmx=bool(request.headers.get("hx-request")))
        if perm not in ctx.actor.permissions:
            audit.record_when_done(
                session,
                workspace_id=ctx.actor.workspace_id,
                actor=ctx.actor,
                action=Action.ACCESS_DENIED,
                target=f"{request.method} {request.url.path}"[:200],
                details={"permission": perm.value},
                ip=client_ip(request),
            )
            raise Forbidden(
                "your role does not allow this page",
                code="permission_denied",
                details={"permission": perm.value},
            )
        return ctx

    setattr(gate, GATE_ATTR, perm.value)
    return gate


def public_page(
    request: Request, session: DbDep, csrf_passed: CsrfDep, background: BackgroundTasks
) -> WebContext | None:
    """For pages anyone may open (sign-in, set-up, links from emails). Still CSRF-checked."""
    ctx = resolve_member(request, session, background)
    if not csrf_passed:
        _refuse_csrf(request, session, ctx)
    return ctx


setattr(public_page, GATE_ATTR, PUBLIC)


def gate_of(dependency: Any) -> str | None:
    return getattr(dependency, GATE_ATTR, None)


Member = Annotated[WebContext, Depends(require_permission(Perm.INBOX))]
MaybeMember = Annotated[WebContext | None, Depends(public_page)]
