"""Browser-facing protections: security headers on every response, session cookies, and
the CSRF token that every state-changing web request must carry."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "puente_session"
# Before sign-in the CSRF token hangs on this random, meaningless cookie instead.
PRE_SESSION_COOKIE = "puente_pre"
LANGUAGE_COOKIE = "puente_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# FastAPI's interactive API docs load Swagger UI from a CDN with an inline bootstrap script;
# only that page gets a policy that allows them.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/api/v1/docs"})
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
)


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, whatever produced it."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") in DOCS_PATHS else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if self.hsts:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                if b"cache-control" not in present:
                    # Pages show private conversations: keep them out of shared caches.
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_basis(request: Request) -> str:
    """The cookie value the CSRF token is bound to (session, else pre-session)."""
    basis = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_SESSION_COOKIE)
    if basis:
        return basis
    # First visit: a pre-session cookie is set on the response (see `remember_pre_session`).
    fresh = getattr(request.state, "new_pre_session", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.new_pre_session = fresh
    return str(fresh)


def csrf_token_for(secret: str, basis: str) -> str:
    return hmac.new(secret.encode(), b"csrf|" + basis.encode(), hashlib.sha256).hexdigest()


async def csrf_ok(request: Request, secret: str) -> bool:
    """True when a state-changing request carries the token of its own cookie."""
    if request.method in SAFE_METHODS:
        return True
    basis = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_SESSION_COOKIE)
    if not basis:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not sent:
        return False
    return hmac.compare_digest(sent.encode(), csrf_token_for(secret, basis).encode())


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=14 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.delete_cookie(PRE_SESSION_COOKIE, path="/")


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)


def remember_pre_session(request: Request, response: Response, *, secure: bool) -> None:
    fresh = getattr(request.state, "new_pre_session", None)
    if fresh and not request.cookies.get(SESSION_COOKIE):
        response.set_cookie(
            PRE_SESSION_COOKIE, fresh, httponly=True, samesite="lax", secure=secure, path="/"
        )
