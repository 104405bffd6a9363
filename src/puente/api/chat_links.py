"""REST API for a number's chat links: `wa.me` links with prefilled text and a tracking
reference, their QR codes, and how many conversations each started."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.channels import chat_links as cl
from puente.channels.chat_links_models import ChatLink
from puente.channels.models import Channel
from puente.channels.service import access_channel

router = APIRouter(prefix="/channels/{channel_id}/chat-links", tags=["chat-links"])

ReadCaller = Annotated[ApiCaller, scoped("channels:read")]
WriteCaller = Annotated[ApiCaller, scoped("channels:write")]
ChannelId = Annotated[int, Path(ge=1, le=2**62)]
LinkId = Annotated[int, Path(ge=1, le=2**62)]
Scale = Annotated[
    int, Query(ge=1, le=40, description="pixels (PNG) or units (SVG) per module of the code")
]


class ChatLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=cl.MAX_NAME, description="for the team's eyes")
    text: str = Field(
        default="",
        max_length=cl.MAX_TEXT,
        description="what the customer finds written; Puente adds the reference after it",
    )


class ChatLinkPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=cl.MAX_NAME)
    text: str | None = Field(default=None, max_length=cl.MAX_TEXT)


class ChatLinkOut(BaseModel):
    id: int
    channel_id: int
    name: str
    text: str = Field(description="the prefilled text as written, without the reference")
    code: str = Field(description="the tracking reference, e.g. K7P2QX")
    prefilled_text: str = Field(description='what the chat opens with: text + " (ref: CODE)"')
    url: str = Field(description="the wa.me link")
    conversations: int = Field(description="conversations the link started")
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    qr_svg: str = Field(description="the API path of its QR code as SVG")
    qr_png: str = Field(description="the API path of its QR code as PNG")

    @classmethod
    def of(cls, view: cl.LinkView) -> ChatLinkOut:
        link = view.link
        base = f"/api/v1/channels/{link.channel_id}/chat-links/{link.id}"
        return cls(
            id=link.id,
            channel_id=link.channel_id,
            name=link.name,
            text=link.text,
            code=link.code,
            prefilled_text=view.prefilled,
            url=view.url,
            conversations=view.conversations,
            created_by=link.created_by,
            created_at=link.created_at,
            updated_at=link.updated_at,
            qr_svg=f"{base}/qr.svg",
            qr_png=f"{base}/qr.png",
        )


def _link(
    session: Session, caller: ApiCaller, channel_id: int, link_id: int
) -> tuple[Channel, ChatLink]:
    channel = access_channel(session, caller.workspace_id, channel_id)
    return channel, cl.access_link(session, channel, link_id)


@router.get(
    "",
    response_model=list[ChatLinkOut],
    summary="List a number's chat links with the conversations each started",
    responses=error_responses(403, 404),
)
def list_chat_links(
    channel_id: ChannelId, caller: ReadCaller, session: SessionDep
) -> list[ChatLinkOut]:
    channel = access_channel(session, caller.workspace_id, channel_id)
    return [ChatLinkOut.of(v) for v in cl.list_links(session, channel)]


@router.post(
    "",
    response_model=ChatLinkOut,
    status_code=201,
    summary="Create a chat link (a wa.me link with prefilled text and a reference)",
    responses=error_responses(400, 403, 404),
)
def create_chat_link(
    channel_id: ChannelId, body: ChatLinkIn, caller: WriteCaller, session: SessionDep
) -> ChatLinkOut:
    channel = access_channel(session, caller.workspace_id, channel_id)
    link = cl.do_create_link(session, channel, name=body.name, text=body.text, actor=caller.actor)
    return ChatLinkOut.of(cl.view_of(session, channel, link))


@router.get(
    "/{link_id}",
    response_model=ChatLinkOut,
    summary="Get a chat link",
    responses=error_responses(403, 404),
)
def get_chat_link(
    channel_id: ChannelId, link_id: LinkId, caller: ReadCaller, session: SessionDep
) -> ChatLinkOut:
    channel, link = _link(session, caller, channel_id, link_id)
    return ChatLinkOut.of(cl.view_of(session, channel, link))


@router.patch(
    "/{link_id}",
    response_model=ChatLinkOut,
    summary="Rename a chat link or change its text (its reference stays)",
    responses=error_responses(400, 403, 404),
)
def update_chat_link(
    channel_id: ChannelId,
    link_id: LinkId,
    body: ChatLinkPatch,
    caller: WriteCaller,
    session: SessionDep,
) -> ChatLinkOut:
    channel, link = _link(session, caller, channel_id, link_id)
    cl.do_update_link(session, link, name=body.name, text=body.text, actor=caller.actor)
    return ChatLinkOut.of(cl.view_of(session, channel, link))


@router.delete(
    "/{link_id}",
    status_code=204,
    summary="Delete a chat link (codes already printed stop counting)",
    responses=error_responses(403, 404),
)
def delete_chat_link(
    channel_id: ChannelId, link_id: LinkId, caller: WriteCaller, session: SessionDep
) -> Response:
    _channel, link = _link(session, caller, channel_id, link_id)
    cl.do_delete_link(session, link, actor=caller.actor)
    return Response(status_code=204)


def _image(content: bytes, media_type: str, name: str) -> Response:
    headers = {"Content-Disposition": f'inline; filename="{name}"'}
    return Response(content, media_type=media_type, headers=headers)


def _image_responses(media_type: str) -> dict[int | str, dict[str, Any]]:
    described: dict[int | str, dict[str, Any]] = {
        200: {"content": {media_type: {}}, "description": "the QR code of the link"}
    }
    return {**described, **error_responses(403, 404)}


@router.get(
    "/{link_id}/qr.svg",
    response_class=Response,
    summary="The link's QR code as SVG (for print)",
    responses=_image_responses("image/svg+xml"),
)
def chat_link_qr_svg(
    channel_id: ChannelId,
    link_id: LinkId,
    caller: ReadCaller,
    session: SessionDep,
    scale: Scale = 10,
) -> Response:
    channel, link = _link(session, caller, channel_id, link_id)
    svg = cl.qr_svg(cl.url_of(channel, link), scale=scale, title=link.name)
    return _image(svg, "image/svg+xml", f"chat-link-{link.code}.svg")


@router.get(
    "/{link_id}/qr.png",
    response_class=Response,
    summary="The link's QR code as PNG",
    responses=_image_responses("image/png"),
)
def chat_link_qr_png(
    channel_id: ChannelId,
    link_id: LinkId,
    caller: ReadCaller,
    session: SessionDep,
    scale: Scale = 10,
) -> Response:
    channel, link = _link(session, caller, channel_id, link_id)
    png = cl.qr_png(cl.url_of(channel, link), scale=scale)
    return _image(png, "image/png", f"chat-link-{link.code}.png")
