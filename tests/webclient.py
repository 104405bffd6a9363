"""A browser-like client for web tests: signs in through the real form and sends the
CSRF token with every state-changing request, the way our pages and htmx do."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pyotp

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str | None:
    found = CSRF_META.search(html) or CSRF_FIELD.search(html)
    return found.group(1) if found else None


class WebClient:
    """Wraps an httpx.Client (a live server's URL or starlette's TestClient)."""

    def __init__(self, client: httpx.Client) -> None:
        self.http = client
        self.csrf: str | None = None

    def _remember(self, response: httpx.Response) -> httpx.Response:
        if "text/html" in response.headers.get("content-type", ""):
            token = csrf_from(response.text)
            if token:
                self.csrf = token
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"accept": "text/html", **kwargs.pop("headers", {})}
        return self._remember(self.http.get(path, headers=headers, **kwargs))

    def refresh_csrf(self, path: str = "/login") -> str:
        self.get(path)
        assert self.csrf, f"no CSRF token on {path}"
        return self.csrf

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf or self.refresh_csrf())
        headers = {"accept": "text/html", **kwargs.pop("headers", {})}
        return self._remember(self.http.post(path, data=form, headers=headers, **kwargs))

    def htmx(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"hx-request": "true", "x-csrf-token": self.csrf or self.refresh_csrf()}
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, path, headers=headers, **kwargs)

    def login(self, email: str, password: str, *, totp_secret: str | None = None) -> httpx.Response:
        """Sign in through /login (and /login/code when a TOTP secret is given)."""
        self.refresh_csrf("/login")
        response = self.post(
            "/login", {"email": email, "password": password}, follow_redirects=True
        )
        if totp_secret is not None:
            response = self.post(
                "/login/code", {"code": pyotp.TOTP(totp_secret).now()}, follow_redirects=True
            )
        return response

    def logout(self) -> httpx.Response:
        return self.post("/logout", follow_redirects=False)


def previous_code(totp_secret: str) -> str:
    """The code of the step before the current one (accepted as clock drift): enrolling with
    it leaves the current code for the sign-in that follows, since each code works once."""
    return str(pyotp.TOTP(totp_secret).at(time.time() - 30))
