"""A number's chat links page (reached from the number's page): create, rename, change the
text of and delete `wa.me` links, copy them, download their QR codes as SVG or PNG,
print one, and see how many conversations each started."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.channels import chat_links as cl
from puente.channels import onboarding as ob
from puente.channels.chat_links_models import ChatLink
from puente.channels.models import Channel
from puente.channels.service import access_channel
from puente.errors import PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import N_, error_message
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Manager = Annotated[WebContext, Depends(require_permission(Perm.SETTINGS))]
Name = Annotated[str, Form(max_length=1000)]
Text = Annotated[str, Form(max_length=10_000)]

FLASHES = {
    "added": N_("Chat link created."),
    "saved": N_("Chat link saved."),
    "deleted": N_("Chat link deleted."),
}


def _base(channel_id: int) -> str:
    return f"/channels/{channel_id}/chat-links"


def _page(
    request: Request,
    session: Session,
    channel: Channel,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    flash = FLASHES.get(request.query_params.get("flash", ""))
    settings = request.app.state.runtime.settings
    context: dict[str, Any] = {
        "c": channel,
        "links": cl.list_links(session, channel),
        "form": form or {"name": "", "text": ""},
        "error": error,
        "flash": translate(request, flash) if flash else None,
        "max_name": cl.MAX_NAME,
        "max_text": cl.MAX_TEXT,
        "sandbox_url": str(settings.graph_base_url).rstrip("/")
        if ob.is_sandbox(settings)
        else None,
    }
    return render(request, "channels/chat_links.html", context, status_code=status_code)


@router.get("/channels/{channel_id}/chat-links", response_class=HTMLResponse)
def chat_links_page(request: Request, channel_id: int, session: DbDep, me: Manager) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    return _page(request, session, channel)


@router.get("/channels/{channel_id}/chat-links/summary", response_class=HTMLResponse)
def chat_links_summary(request: Request, channel_id: int, session: DbDep, me: Manager) -> Response:
    """The number's page shows how its links are doing (htmx swaps this line in)."""
    channel = access_channel(session, me.workspace.id, channel_id)
    links = cl.list_links(session, channel)
    context = {
        "c": channel,
        "links": len(links),
        "started": sum(v.conversations for v in links),
        "best": max(links, key=lambda v: v.conversations) if links else None,
    }
    return render(request, "channels/_chat_links_summary.html", context)


@router.post("/channels/{channel_id}/chat-links", response_class=HTMLResponse)
def chat_link_create(
    request: Request, channel_id: int, session: DbDep, me: Manager, name: Name, text: Text = ""
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    try:
        with session.begin_nested():
            link = cl.do_create_link(session, channel, name=name, text=text, actor=me.actor)
    except PuenteError as exc:
        message = error_message(request_language(request), exc)
        form = {"name": name, "text": text}
        return _page(request, session, channel, form=form, error=message, status_code=422)
    return RedirectResponse(f"{_base(channel_id)}?flash=added#link-{link.id}", status_code=303)


def _link(
    session: Session, me: WebContext, channel_id: int, link_id: int
) -> tuple[Channel, ChatLink]:
    channel = access_channel(session, me.workspace.id, channel_id)
    return channel, cl.access_link(session, channel, link_id)


@router.get("/channels/{channel_id}/chat-links/{link_id}", response_class=HTMLResponse)
def chat_link_edit(
    request: Request, channel_id: int, link_id: int, session: DbDep, me: Manager
) -> Response:
    channel, link = _link(session, me, channel_id, link_id)
    form = {"name": link.name, "text": link.text}
    return _edit_page(request, channel, link, form)


def _edit_page(
    request: Request,
    channel: Channel,
    link: ChatLink,
    form: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "c": channel,
        "link": link,
        "form": form,
        "error": error,
        "max_name": cl.MAX_NAME,
        "max_text": cl.MAX_TEXT,
    }
    return render(request, "channels/chat_link_edit.html", context, status_code=status_code)


@router.post("/channels/{channel_id}/chat-links/{link_id}", response_class=HTMLResponse)
def chat_link_update(
    request: Request,
    channel_id: int,
    link_id: int,
    session: DbDep,
    me: Manager,
    name: Name,
    text: Text = "",
) -> Response:
    channel, link = _link(session, me, channel_id, link_id)
    try:
        with session.begin_nested():
            cl.do_update_link(session, link, name=name, text=text, actor=me.actor)
    except PuenteError as exc:
        session.refresh(link)
        message = error_message(request_language(request), exc)
        form = {"name": name, "text": text}
        return _edit_page(request, channel, link, form, message, status_code=422)
    return RedirectResponse(f"{_base(channel_id)}?flash=saved#link-{link_id}", status_code=303)


@router.post("/channels/{channel_id}/chat-links/{link_id}/delete", response_class=HTMLResponse)
def chat_link_delete(
    request: Request, channel_id: int, link_id: int, session: DbDep, me: Manager
) -> Response:
    _channel, link = _link(session, me, channel_id, link_id)
    cl.do_delete_link(session, link, actor=me.actor)
    return RedirectResponse(f"{_base(channel_id)}?flash=deleted", status_code=303)


def _disposition(download: bool, name: str) -> dict[str, str]:
    kind = "attachment" if download else "inline"
    return {"Content-Disposition": f'{kind}; filename="{name}"', "Cache-Control": "no-store"}


@router.get("/channels/{channel_id}/chat-links/{link_id}/qr.svg")
def chat_link_qr_svg(
    channel_id: int,
    link_id: int,
    session: DbDep,
    me: Manager,
    download: Annotated[bool, Query()] = False,
) -> Response:
    channel, link = _link(session, me, channel_id, link_id)
    svg = cl.qr_svg(cl.url_of(channel, link), title=link.name)
    headers = _disposition(download, f"chat-link-{link.code}.svg")
    return Response(svg, media_type="image/svg+xml", headers=headers)


@router.get("/channels/{channel_id}/chat-links/{link_id}/qr.png")
def chat_link_qr_png(
    channel_id: int,
    link_id: int,
    session: DbDep,
    me: Manager,
    download: Annotated[bool, Query()] = False,
) -> Response:
    channel, link = _link(session, me, channel_id, link_id)
    png = cl.qr_png(cl.url_of(channel, link), scale=12)
    headers = _disposition(download, f"chat-link-{link.code}.png")
    return Response(png, media_type="image/png", headers=headers)


@router.get("/channels/{channel_id}/chat-links/{link_id}/print", response_class=HTMLResponse)
def chat_link_print(
    request: Request, channel_id: int, link_id: int, session: DbDep, me: Manager
) -> Response:
    """A page made for paper: the code large, the number and what to do, nothing else."""
    channel, link = _link(session, me, channel_id, link_id)
    url = cl.url_of(channel, link)
    qr = cl.qr_code(url).svg_inline(
        scale=8, border=4, light="#fff", svgclass="chat-link-qr", title=link.name, omitsize=True
    )
    context = {
        "c": channel,
        "link": link,
        "url": url,
        "prefilled": cl.prefilled_text(link.text, link.code),
        "qr": Markup(qr),  # noqa: S704 (segno's own SVG of our link)
    }
    return render(request, "channels/chat_link_print.html", context)
