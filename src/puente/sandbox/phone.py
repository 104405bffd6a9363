"""The simulated phone page (`/_sandbox/phone`): chat as a customer, or act as the owner's
Business app (send, edit, revoke, contacts, history consent, signup confirmation); and the
Embedded Signup page (`/_sandbox/signup`). Server-rendered Jinja2 with htmx, no inline scripts;
threads update live over server-sent events (htmx-ext-sse)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from puente.sandbox import people, signup
from puente.sandbox.engine import Sandbox
from puente.sandbox.render import bubble
from puente.sandbox.state import Number

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
PREFIX = "/_sandbox/phone"
# An event stream ends after this long and the browser reconnects, so a server shutting down
# never waits on an open phone page for longer.
STREAM_SECONDS = 10.0
# The front-end libraries come from the npm lockfile, never committed: the build (setup.py,
# which reads this table) copies them into the package as static/vendor/<name>; a checkout
# serves them from its node_modules.
ASSETS = {
    "htmx.min.js": ("PUENTE_HTMX_PATH", "htmx.org/dist/htmx.min.js"),
    "sse.js": ("PUENTE_HTMX_SSE_PATH", "htmx-ext-sse/dist/sse.min.js"),
}
PACKAGED_DIR = HERE / "static" / "vendor"


def find_asset(name: str) -> Path | None:
    """The variable's file when set, else the wheel's copy, else the checkout's node_modules
    (above the package): never the working directory, which a service manager chooses."""
    env, relative = ASSETS[name]
    override = os.environ.get(env)
    if override:
        return Path(override)
    packaged = PACKAGED_DIR / name
    if packaged.is_file():
        return packaged
    for base in HERE.resolve().parents:
        candidate = base / "node_modules" / relative
        if candidate.exists():
            return candidate
    return None


def find_htmx() -> Path | None:
    return find_asset("htmx.min.js")


def sb_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


def number_of(request: Request) -> Number:
    number = sb_of(request).world.numbers.get(request.path_params["number_id"])
    if number is None:
        raise people.PeopleError("unknown phone number")
    return number


def back(url: str, error: str | None = None) -> RedirectResponse:
    sep = "&" if "?" in url else "?"
    return RedirectResponse(url + (f"{sep}error={quote(error)}" if error else ""), status_code=303)


async def form_of(request: Request) -> dict[str, Any]:
    form = await request.form()
    return dict(form.items())


# -- pages --------------------------------------------------------------------------------------
async def index(request: Request) -> Response:
    sb = sb_of(request)
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "numbers": list(sb.world.numbers.values()),
            "customers": list(sb.world.customers.values()),
            "link": request.query_params.get("link", ""),
            "error": request.query_params.get("error"),
        },
    )


def parse_chat_link(link: str) -> tuple[str, str]:
    """The number's digits and the prefilled text of a click-to-chat link, as WhatsApp
    reads them: https://wa.me/<number>?text=... or api.whatsapp.com/send?phone=...&text=..."""
    raw = link.strip()
    parts = urlsplit(raw if "://" in raw else "https://" + raw)
    query = parse_qs(parts.query)
    host = (parts.hostname or "").lower()
    if host == "wa.me":
        phone = parts.path.strip("/")
    elif host in ("api.whatsapp.com", "whatsapp.com", "www.whatsapp.com"):
        phone = (query.get("phone") or [""])[0]
    else:
        raise people.PeopleError("not a WhatsApp chat link (https://wa.me/<number>?text=...)")
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not digits:
        raise people.PeopleError("the link names no phone number")
    return digits, (query.get("text") or [""])[0]


async def open_link(request: Request) -> Response:
    """A customer opens a chat link (or scans its QR code): the chat with that number,
    the composer holding the link's text, as WhatsApp does. Nothing is sent yet."""
    sb = sb_of(request)
    link = request.query_params.get("link", "")
    wa_id = "".join(ch for ch in request.query_params.get("customer", "") if ch.isdigit())
    try:
        digits, text = parse_chat_link(link)
        if not wa_id:
            raise people.PeopleError("choose who opens the link")
        number = next(
            (n for n in sb.world.numbers.values() if n.display_phone_number == digits), None
        )
        if number is None:
            raise people.PeopleError(f"no number +{digits} in the sandbox")
    except people.PeopleError as exc:
        return back(f"{PREFIX}?link={quote(link, safe='')}", str(exc))
    with sb.store.lock:
        sb.customer(wa_id)
    return RedirectResponse(
        f"{PREFIX}/{number.id}/chat/{wa_id}?text={quote(text, safe='')}", status_code=303
    )


def thread_signature(sb: Sandbox, number_id: str, wa_id: str) -> str:
    """Changes whenever anything a bubble shows changes (new message, tick, edit, reaction)."""
    state = tuple(
        (m.wamid, m.status, m.edited, m.revoked, m.reaction) for m in sb.chat(number_id, wa_id)
    )
    return format(hash(state) & 0xFFFFFFFFFFFF, "x")


def thread_context(sb: Sandbox, number: Number, wa_id: str, viewer: str) -> dict[str, Any]:
    messages = [
        m for m in sb.chat(number.id, wa_id) if m.type not in ("edit", "revoke", "reaction")
    ]
    bubbles = [bubble(m, viewer=viewer) for m in messages]
    texts = {b["id"]: b["text"] for b in bubbles}
    for b in bubbles:
        b["quoted_text"] = texts.get(b["quoted"] or "", "")
    return {
        "number": number,
        "wa_id": wa_id,
        "viewer": viewer,
        "bubbles": bubbles,
        "signature": thread_signature(sb, number.id, wa_id),
    }


async def thread_events(request: Request) -> Response:
    """Server-sent events: `changed` whenever the thread differs from the `since` signature the
    page was rendered with; the page then fetches the fragment (no 1 s polling)."""
    sb = sb_of(request)
    try:
        number = number_of(request)
    except people.PeopleError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    wa_id = request.path_params["wa_id"]
    since = request.query_params.get("since", "")

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        yield "retry: 500\n\n"
        while (left := deadline - loop.time()) > 0:
            revision = sb.revision
            if thread_signature(sb, number.id, wa_id) != since:
                # One event is enough: the swapped-in thread reconnects with its own signature.
                yield f"event: changed\ndata: {revision}\n\n"
                return
            await sb.wait_change(revision, left)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def customer_page(request: Request) -> Response:
    sb = sb_of(request)
    try:
        number = number_of(request)
    except people.PeopleError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    wa_id = request.path_params["wa_id"]
    customer = sb.customer(wa_id)
    ctx = thread_context(sb, number, wa_id, "customer")
    reply = request.query_params.get("reply")
    replying = next((b for b in ctx["bubbles"] if b["id"] == reply), None)
    return templates.TemplateResponse(
        request,
        "customer.html",
        {
            **ctx,
            "customer": customer,
            "replying": replying,
            "prefilled": request.query_params.get("text", ""),
            "error": request.query_params.get("error"),
        },
    )


async def thread_fragment(request: Request) -> Response:
    sb = sb_of(request)
    try:
        number = number_of(request)
    except people.PeopleError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    viewer = "owner" if request.query_params.get("view") == "owner" else "customer"
    ctx = thread_context(sb, number, request.path_params["wa_id"], viewer)
    return templates.TemplateResponse(request, "_thread.html", ctx)


async def owner_page(request: Request) -> Response:
    sb = sb_of(request)
    try:
        number = number_of(request)
    except people.PeopleError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    chats = sorted({k.split(":", 1)[1] for k in sb.world.chats if k.startswith(number.id + ":")})
    current = request.query_params.get("chat") or (chats[0] if chats else None)
    ctx = thread_context(sb, number, current, "owner") if current else {"bubbles": []}
    return templates.TemplateResponse(
        request,
        "owner.html",
        {
            **ctx,
            "number": number,
            "chats": chats,
            "current": current,
            "customers": sb.world.customers,
            "address_book": sorted(number.address_book.items()),
            "signups": signup.pending_for_number(sb, number.id),
            "error": request.query_params.get("error"),
        },
    )


# -- customer actions ---------------------------------------------------------------------------
async def customer_send(request: Request) -> Response:
    sb = sb_of(request)
    number_id, wa_id = request.path_params["number_id"], request.path_params["wa_id"]
    url = f"{PREFIX}/{number_id}/chat/{wa_id}"
    form = await request.form()
    kind = str(form.get("kind", "text"))
    reply_to = str(form.get("reply_to") or "") or None
    try:
        if kind == "text":
            people.do_inbound(
                sb,
                number_id,
                wa_id,
                "text",
                {"body": str(form.get("text", ""))},
                context_id=reply_to,
            )
        elif kind == "location":
            people.do_inbound(
                sb,
                number_id,
                wa_id,
                "location",
                {
                    "latitude": float(str(form.get("latitude"))),
                    "longitude": float(str(form.get("longitude"))),
                    "name": str(form.get("place") or ""),
                },
                context_id=reply_to,
            )
        elif kind == "choice":
            # A tapped reply button or list row: WhatsApp sends its id and title back.
            reply_kind, choice_id, title = str(form.get("choice", "")).split("|", 2)
            if reply_kind not in ("button_reply", "list_reply"):
                raise people.PeopleError(f"unknown choice {reply_kind}")
            people.do_inbound(
                sb,
                number_id,
                wa_id,
                "interactive",
                {"type": reply_kind, reply_kind: {"id": choice_id, "title": title}},
                context_id=reply_to,
            )
        elif kind == "reaction":
            people.do_inbound(
                sb,
                number_id,
                wa_id,
                "reaction",
                {"message_id": reply_to, "emoji": str(form.get("emoji", "👍"))},
            )
        elif kind == "media":
            media_kind, media = await _upload(form)
            people.do_inbound(sb, number_id, wa_id, media_kind, media=media, context_id=reply_to)
        else:
            raise people.PeopleError(f"unknown kind {kind}")
    except (people.PeopleError, ValueError) as exc:
        return back(url, str(exc))
    return back(url)


async def _upload(form: FormData) -> tuple[str, dict[str, Any]]:
    """The file chosen in the browser, as the sandbox's media object (kind from its type)."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise people.PeopleError("choose a file to send")
    data = await upload.read()
    if not data:
        raise people.PeopleError("the file is empty")
    kind = _kind_for(upload.content_type or "")
    media: dict[str, Any] = {
        "data_b64": base64.b64encode(data).decode(),
        "mime_type": upload.content_type or "application/octet-stream",
        "filename": upload.filename,
    }
    if kind not in ("audio", "sticker"):
        media["caption"] = str(form.get("caption") or upload.filename)
    return kind, media


def _kind_for(mime: str) -> str:
    for prefix, kind in (
        ("image/webp", "sticker"),
        ("image/", "image"),
        ("video/", "video"),
        ("audio/", "audio"),
    ):
        if mime.startswith(prefix):
            return kind
    return "document"


# -- owner actions ------------------------------------------------------------------------------
async def owner_action(request: Request) -> Response:
    sb = sb_of(request)
    number_id, action = request.path_params["number_id"], request.path_params["action"]
    raw_form = await request.form()
    form: dict[str, Any] = dict(raw_form.items())
    to = str(form.get("to") or "")
    url = f"{PREFIX}/{number_id}/owner" + (f"?chat={to}" if to else "")
    try:
        if action == "send":
            people.do_owner_send(
                sb,
                number_id,
                to,
                "text",
                {"body": form.get("text", "")},
                context_id=form.get("reply_to") or None,
            )
        elif action == "media":
            media_kind, media = await _upload(raw_form)
            people.do_owner_send(sb, number_id, to, media_kind, media=media)
        elif action == "location":
            people.do_owner_send(
                sb,
                number_id,
                to,
                "location",
                {
                    "latitude": float(str(form.get("latitude"))),
                    "longitude": float(str(form.get("longitude"))),
                    "name": str(form.get("place") or ""),
                },
            )
        elif action == "edit":
            people.do_owner_send(
                sb,
                number_id,
                to,
                "edit",
                {"original_message_id": form.get("wamid"), "text": form.get("text")},
            )
        elif action == "revoke":
            people.do_owner_send(
                sb, number_id, to, "revoke", {"original_message_id": form.get("wamid")}
            )
        elif action == "contact":
            people.do_set_contact(
                sb, number_id, str(form.get("phone", "")), str(form.get("full_name", "")), None
            )
        elif action == "remove-contact":
            people.do_remove_contact(sb, number_id, str(form.get("phone", "")))
        elif action == "history":
            people.do_history_decision(sb, number_id, form.get("share") == "yes")
        elif action == "signup":
            signup.do_confirm_signup(
                sb,
                str(form.get("signup_id")),
                str(form.get("confirm_code", "")),
                form.get("share_history") == "yes",
            )
        else:
            return PlainTextResponse("unknown action", status_code=404)
    except (people.PeopleError, signup.SignupError, ValueError) as exc:
        return back(url, str(exc))
    return back(url)


# -- embedded signup ----------------------------------------------------------------------------
async def signup_start(request: Request) -> Response:
    if request.method == "GET":
        return templates.TemplateResponse(
            request, "signup.html", {"item": None, "error": request.query_params.get("error")}
        )
    form = await form_of(request)
    try:
        item = signup.do_start_signup(
            sb_of(request),
            str(form.get("mode", "coexistence")),
            str(form.get("phone", "")).strip().lstrip("+"),
            str(form.get("business_name") or "") or None,
        )
    except (signup.SignupError, ValueError) as exc:
        return back("/_sandbox/signup", str(exc))
    return back(f"/_sandbox/signup/{item.id}")


async def signup_page(request: Request) -> Response:
    item = sb_of(request).world.signups.get(request.path_params["signup_id"])
    if item is None:
        return PlainTextResponse("unknown signup", status_code=404)
    name = "_signup_status.html" if request.url.path.endswith("/status") else "signup.html"
    return templates.TemplateResponse(
        request, name, {"item": signup.signup_view(item), "error": None}
    )


def node_asset(name: str) -> Route:
    async def serve(_: Request) -> Response:
        path = find_asset(name)
        if path is None or not path.exists():
            return PlainTextResponse("front-end assets not installed (npm ci)", status_code=404)
        return FileResponse(path, media_type="text/javascript")

    return Route(f"/_sandbox/static/{name}", serve)


ROUTES: list[BaseRoute] = [
    *(node_asset(name) for name in ASSETS),
    Mount(
        "/_sandbox/static", app=StaticFiles(directory=str(HERE / "static")), name="sandbox-static"
    ),
    Route(PREFIX, index),
    Route(PREFIX + "/open", open_link),
    Route(PREFIX + "/{number_id}/chat/{wa_id}", customer_page),
    Route(PREFIX + "/{number_id}/chat/{wa_id}/thread", thread_fragment),
    Route(PREFIX + "/{number_id}/chat/{wa_id}/events", thread_events),
    Route(PREFIX + "/{number_id}/chat/{wa_id}/send", customer_send, methods=["POST"]),
    Route(PREFIX + "/{number_id}/owner", owner_page),
    Route(PREFIX + "/{number_id}/owner/{action}", owner_action, methods=["POST"]),
    Route("/_sandbox/signup", signup_start, methods=["GET", "POST"]),
    Route("/_sandbox/signup/{signup_id}", signup_page),
    Route("/_sandbox/signup/{signup_id}/status", signup_page),
]
