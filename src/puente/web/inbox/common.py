"""What the inbox's route modules share: the gates, error translation, and the template
context every inbox page and fragment gets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from babel import Locale
from babel.dates import format_datetime, format_time
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from puente.accounts.permissions import Perm
from puente.conversations.models import MessageSource
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.web.deps import WebContext, require_permission
from puente.web.i18n import error_message, safe_zone
from puente.web.inbox import render as r
from puente.web.templating import render, request_language

Viewer = Annotated[WebContext, Depends(require_permission(Perm.INBOX))]
Replier = Annotated[WebContext, Depends(require_permission(Perm.CONVERSATIONS_REPLY))]
Manager = Annotated[WebContext, Depends(require_permission(Perm.TEMPLATES))]

T = TypeVar("T")


def translated(request: Request, exc: PuenteError) -> str:
    return error_message(request_language(request), exc)


def attempt(request: Request, action: Callable[[], T]) -> T:
    """Run a domain action; its error comes back in the reader's language."""
    try:
        return action()
    except PuenteError as exc:
        message = translated(request, exc)
        raise type(exc)(message, code=exc.code) from None


def from_script(request: Request) -> bool:
    """Requests made by inbox.js (fetch) get fragments; plain form posts get redirects."""
    return request.headers.get("x-inbox") == "1" or bool(request.headers.get("hx-request"))


def done(request: Request, back: str, fragment: Callable[[], Response] | None = None) -> Response:
    if from_script(request):
        return fragment() if fragment is not None else Response(status_code=204)
    return RedirectResponse(back, status_code=303)


def _when_for(request: Request) -> Callable[..., str]:
    """`when` for this request with the locale and zone resolved once: inbox pages format
    a hundred times each, and parsing the locale every time was a third of the render."""
    ctx = getattr(request.state, "web", None)
    locale = Locale.parse(request_language(request))
    zone = safe_zone(ctx.user.timezone if ctx is not None else "UTC")

    def when(value: dt.datetime | None, fmt: str = "medium") -> str:
        """`value` in the viewer's zone and language; fmt "time" gives the hour alone."""
        if value is None:
            return ""
        if fmt == "time":
            return str(format_time(value, "short", tzinfo=zone, locale=locale))
        return str(format_datetime(value, fmt, tzinfo=zone, locale=locale))

    return when


def page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    values = {
        "when": _when_for(request),
        "fmt": r.wa_format,
        "tick_for": r.tick_for,
        "failure_reason": r.failure_reason,
        "map_link": r.map_link,
        "tel_link": r.tel_link,
        "source_labels": r.SOURCE_LABELS,
        "source_icons": r.SOURCE_ICONS,
        "sources": [s.value for s in MessageSource],
        "now": utcnow(),
        **context,
    }
    return render(request, template, values, status_code=status_code)
