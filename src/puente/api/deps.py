"""Request dependencies for the REST API: the unit of work and the calling token.

Refusals (an unknown or revoked token, a token without the scope or permission a route
needs) are audited in their own transaction, since the refused request rolls back, and
rate-limited per token or address so that a flood cannot fill the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, actor_scope, token_actor
from puente.accounts.models import ApiToken
from puente.accounts.tokens import access_token, do_touch_token, has_scope, token_touch_due
from puente.db.base import utcnow
from puente.db.scope import set_scope, unscoped
from puente.errors import Forbidden, NotAuthenticated, PuenteError
from puente.request_session import request_session, touch_after_response
from puente.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API token from `puente tokens create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# Refusal codes worth an audit entry: a presented token that is wrong, or a real token
# reaching for more than it was given. A request with no token at all is not audited.
AUDITED_REFUSALS = {"invalid_token", "missing_scope", "permission_denied"}
TOKEN_REFUSED = "api.token_refused"  # noqa: S105 (an action name)


@dataclass
class RefusalLimiter:
    """At most `burst` audit entries per key (token or address) per `window` seconds; the
    rest are counted and reported as `suppressed` on the next entry that is written."""

    burst: int = 10
    window: float = 60.0
    _seen: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, key: str, now: float | None = None) -> int | None:
        """None to drop this entry; otherwise how many were dropped before it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            start, written, dropped = self._seen.get(key, (now, 0, 0))
            if now - start >= self.window:
                start, written = now, 0
            if written >= self.burst:
                self._seen[key] = (start, written, dropped + 1)
                return None
            self._seen[key] = (start, written + 1, 0)
            if len(self._seen) > 10_000:  # forget old keys so the map stays small
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
            return dropped


def _limiter(request: Request) -> RefusalLimiter:
    limiter: RefusalLimiter | None = getattr(request.app.state, "refusal_limiter", None)
    if limiter is None:
        limiter = request.app.state.refusal_limiter = RefusalLimiter()
    return limiter


def _audit_refusal(request: Request, session: Session, exc: PuenteError) -> None:
    token: ApiTokenRef | None = getattr(request.state, "api_token", None)
    ip = request.client.host if request.client else None
    key = f"token:{token.id}" if token is not None else f"ip:{ip}"
    dropped = _limiter(request).admit(key)
    if dropped is None:
        return
    details: dict[str, Any] = {"code": exc.code}
    if isinstance(exc.details, dict) and "permission" in exc.details:
        details["permission"] = exc.details["permission"]
    if dropped:
        details["suppressed"] = dropped
    audit.record_when_done(
        session,
        workspace_id=token.workspace_id if token is not None else None,
        actor=f"token {token.prefix}" if token is not None else "anonymous",
        action=TOKEN_REFUSED if exc.code == "invalid_token" else Action.ACCESS_DENIED,
        target=f"{request.method} {request.url.path}"[:200],
        details=details,
        ip=ip,
    )


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed when the handler returns without error (a
    read-only one for GET routes, see `puente.request_session`)."""
    db = get_runtime(request).db
    deferred: list[dict[str, Any]] = []
    try:
        with request_session(request, db) as session:
            try:
                yield session
            except PuenteError as exc:
                if exc.code in AUDITED_REFUSALS:
                    _audit_refusal(request, session, exc)
                raise
            finally:
                deferred = audit.take_deferred(session)
    finally:
        audit.write_deferred(db, deferred)


@dataclass(frozen=True)
class ApiCaller:
    token: ApiToken

    @property
    def workspace_id(self) -> int:
        return self.token.workspace_id

    @property
    def actor(self) -> Actor:
        """The token as the gate and the audit log know it ("token <prefix>")."""
        return token_actor(self.token)

    def require(self, scope: str) -> None:
        if not has_scope(self.token, scope):
            raise Forbidden(f"this token lacks the '{scope}' scope", code="missing_scope")


def get_caller(
    request: Request,
    session: Annotated[Session, Depends(get_session, scope="function")],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    background: BackgroundTasks,
) -> ApiCaller:
    if credentials is None:
        raise NotAuthenticated("send an API token as 'Authorization: Bearer <token>'")
    with unscoped(session, "finding whose API token this is"):
        token = access_token(session, credentials.credentials)
    if token is None:
        raise NotAuthenticated("this API token is unknown or revoked", code="invalid_token")
    # From here on every query of this request sees only the token's workspace.
    set_scope(session, actor_scope(token_actor(token)))
    now = utcnow()
    if token_touch_due(token, now):
        token_id = token.id
        touch_after_response(
            request, background, f"token:{token_id}", lambda s: do_touch_token(s, token_id, now)
        )
    # For the refusal audit in get_session: plain values survive the rollback.
    request.state.api_token = ApiTokenRef(token.id, token.workspace_id, token.prefix)
    return ApiCaller(token)


@dataclass(frozen=True)
class ApiTokenRef:
    id: int
    workspace_id: int
    prefix: str


# scope="function": the transaction commits before the response leaves, so a client's
# next request always sees what this one wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CallerDep = Annotated[ApiCaller, Depends(get_caller)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def scoped(scope: str) -> object:
    """A dependency that admits only tokens carrying `scope`."""

    def check(caller: CallerDep) -> ApiCaller:
        caller.require(scope)
        return caller

    return Depends(check)
