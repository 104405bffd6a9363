"""Jinja2 environment and `render`, which gives every page its language, user, CSRF
token and navigation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from puente.web import i18n
from puente.web.security import LANGUAGE_COOKIE, csrf_basis, csrf_token_for, remember_pre_session

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# (path, label, permission) for the main navigation; a link shows only when permitted.
# Only pages that exist are listed: the list used to be filtered by reading the app's
# routes, and when FastAPI began including routers lazily that filter hid every link.
# The browser walk (tests/e2e/test_walk.py) reaches each page through this bar.
NAV = (
    ("/dashboard", "Dashboard", "reports.view"),
    ("/inbox", "Inbox", "inbox.use"),
    ("/contacts", "Contacts", "inbox.use"),
    ("/channels", "Channels", "settings.manage"),
    ("/templates", "Templates", "templates.manage"),
    ("/broadcasts", "Broadcasts", "broadcasts.manage"),
    ("/workflows", "Workflows", "automation.manage"),
    ("/bot", "Bot", "automation.manage"),
    # Every member: an agent sees their own figures (puente.reports.access).
    ("/reports", "Reports", "inbox.use"),
    ("/settings/profile", "Settings", "inbox.use"),
)

env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    # Templates ship with the package and do not change while Puente runs (restart after
    # editing one). With reloading on, every include (one per row of the inbox list, per
    # message of a conversation) stats the template file: under load that was 40 % of
    # rendering the inbox.
    auto_reload=False,
    autoescape=select_autoescape(["html", "xml"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]


def _gettext_for(lang: str) -> tuple[Any, Any]:
    tr = i18n.translations(lang)

    @pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        rv: str = tr.gettext(message)
        if context.eval_ctx.autoescape:
            rv = Markup(rv)  # noqa: S704 (our own catalog text; variables are escaped by %)
        return rv % variables if variables else rv

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        rv: str = tr.ngettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            rv = Markup(rv)  # noqa: S704 (our own catalog text; variables are escaped by %)
        return rv % variables

    return gettext, ngettext


def request_language(request: Request) -> str:
    ctx = getattr(request.state, "web", None)
    user_choice = ctx.user.locale if ctx is not None else request.query_params.get("lang")
    return i18n.pick_language(
        user_choice,
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def translate(request: Request, message: str, **variables: Any) -> str:
    """Translate a message in Python code (flash messages, errors) for this request."""
    text = i18n.translations(request_language(request)).gettext(message)
    return text % variables if variables else text


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    runtime = request.app.state.runtime
    secret = request.app.state.session_secret
    ctx = getattr(request.state, "web", None)
    lang = request_language(request)
    tz = ctx.user.timezone if ctx is not None else "UTC"
    gettext, ngettext = _gettext_for(lang)

    def when(value: dt.datetime | None, fmt: str = "medium") -> str:
        return i18n.format_when(value, lang, tz, fmt)

    def said(template: str | None, params: dict[str, Any] | None = None) -> str:
        """A stored catalogue text with its values (a workflow run's reason, a step's
        detail) in the reader's language; plain text, so the page escapes it."""
        if not template:
            return ""
        text = str(i18n.translations(lang).gettext(template))
        try:
            return text % params if params else text
        except (KeyError, TypeError, ValueError):
            return template

    values: dict[str, Any] = {
        "request": request,
        "me": ctx,
        "lang": lang,
        "languages": i18n.LANGUAGE_NAMES,
        "csrf_token": csrf_token_for(secret, csrf_basis(request)),
        "nav": [item for item in NAV if ctx is not None and ctx.can(item[2])],
        "current_path": request.url.path,
        "when": when,
        "said": said,
        "gettext": gettext,
        "ngettext": ngettext,
        "_": gettext,
        **(context or {}),
    }
    html = env.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    remember_pre_session(request, response, secure=runtime.settings.secure_cookies)
    if ctx is None and request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, request.query_params["lang"], samesite="lax")
    return response
