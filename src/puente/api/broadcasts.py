"""REST API for broadcasts and messaging-limit tiers (thin: the rules live in
`puente.outbound.broadcasts.service`; segments are `api/segments.py`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from puente.api.common import MAX_PAGE_SIZE, error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.channels.models import Channel
from puente.errors import NotFound
from puente.outbound.broadcasts import service
from puente.outbound.broadcasts.tiers import do_set_tier, portfolio_of, tier_of, tier_room
from puente.outbound.models import Broadcast

router = APIRouter(tags=["broadcasts"])

ReadCaller = Annotated[ApiCaller, scoped("broadcasts:read")]
WriteCaller = Annotated[ApiCaller, scoped("broadcasts:write")]
BroadcastId = Annotated[int, Path(ge=1, le=2**62, description="the broadcast's id")]
ChannelId = Annotated[int, Path(ge=1, le=2**62, description="the number's id")]


class TemplateRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=1, max_length=16)


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="segment, tags, contacts, csv or all")
    segment_id: int | None = Field(None, ge=1, le=2**62)
    tags: list[str] = Field(default_factory=list, max_length=100)
    contact_ids: list[int] = Field(default_factory=list, max_length=200_000)
    csv: str | None = Field(None, description="the CSV file's text (kind csv)")


class BroadcastIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200)
    channel_id: int | None = Field(None, ge=1, le=2**62)
    template: TemplateRef
    variables: dict[str, str] = Field(
        default_factory=dict,
        description='target -> value with {field|fallback} parts, e.g. {"body.1": "{first_name|amigo}"}',
    )
    audience: AudienceIn
    scheduled_at: dt.datetime | None = Field(
        None, description="start time; without an offset it is in the workspace's time zone"
    )
    dry_run: bool = Field(False, description="plan and estimate only; nothing is saved")


class BroadcastOut(BaseModel):
    id: int | None
    name: str
    state: str
    channel_id: int
    template_name: str
    template_language: str
    template_category: str
    audience: dict[str, Any]
    variables: dict[str, str]
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    total: int
    estimate: dict[str, Any]
    problems: list[dict[str, Any]]
    progress: dict[str, Any] | None = None

    @classmethod
    def of(cls, b: Broadcast, progress: dict[str, Any] | None = None) -> BroadcastOut:
        return cls(
            id=b.id,
            name=b.name,
            state=b.state,
            channel_id=b.channel_id,
            template_name=b.template_name,
            template_language=b.template_language,
            template_category=b.template_category,
            audience=b.audience or {},
            variables=b.variables or {},
            scheduled_at=b.scheduled_at,
            started_at=b.started_at,
            finished_at=b.finished_at,
            total=b.total,
            estimate=b.estimate or {},
            problems=b.report or [],
            progress=progress,
        )


class RecipientOut(BaseModel):
    id: int
    contact_id: int | None
    phone: str | None
    state: str
    reason: str | None
    csv_line: int | None
    message_id: int | None
    wamid: str | None
    replied_at: dt.datetime | None


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: str = Field(description="250, 2000, 10000, 100000 or unlimited")
    business_portfolio_id: str | None = Field(None, max_length=64)


class TierOut(BaseModel):
    channel_id: int
    tier: str
    business_portfolio_id: str
    reached_24h: int
    left: int | None


def _actor(caller: ApiCaller) -> str:
    return f"API token '{caller.token.name}'"


@router.post(
    "/broadcasts",
    status_code=201,
    response_model=BroadcastOut,
    summary="Plan a broadcast (starts now unless scheduled; dry_run only estimates)",
    responses=error_responses(403, 404, 409),
)
def create_broadcast(body: BroadcastIn, caller: WriteCaller, session: SessionDep) -> Any:
    audience = body.audience.model_dump(exclude={"csv"}, exclude_none=True)
    kwargs: dict[str, Any] = {
        "workspace_id": caller.workspace_id,
        "name": body.name,
        "template_name": body.template.name,
        "language": body.template.language,
        "variables": body.variables,
        "audience": audience,
        "channel_id": body.channel_id,
        "csv_text": body.audience.csv,
        "scheduled_at": body.scheduled_at,
        "actor": _actor(caller),
    }
    if body.dry_run:
        nested = session.begin_nested()
        broadcast = service.do_create_broadcast(session, dry_run=True, **kwargs)
        out = BroadcastOut.of(broadcast).model_copy(update={"id": None, "state": "dry_run"})
        nested.rollback()
        return out
    broadcast = service.do_create_broadcast(session, **kwargs)
    return BroadcastOut.of(broadcast, service.progress(session, broadcast))


@router.get("/broadcasts", response_model=list[BroadcastOut], summary="Recent broadcasts")
def get_broadcasts(
    caller: ReadCaller,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> Any:
    return [
        BroadcastOut.of(b) for b in service.list_broadcasts(session, caller.workspace_id, limit)
    ]


@router.get(
    "/broadcasts/{broadcast_id}",
    response_model=BroadcastOut,
    summary="A broadcast with its progress",
    responses=error_responses(404),
)
def get_broadcast(broadcast_id: BroadcastId, caller: ReadCaller, session: SessionDep) -> Any:
    broadcast = service.access_broadcast(session, caller.workspace_id, broadcast_id)
    return BroadcastOut.of(broadcast, service.progress(session, broadcast))


@router.get(
    "/broadcasts/{broadcast_id}/recipients",
    response_model=list[RecipientOut],
    summary="Recipients with their state (queued, sent, delivered, read, replied, failed...)",
    responses=error_responses(404),
)
def get_recipients(
    broadcast_id: BroadcastId,
    caller: ReadCaller,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Any:
    broadcast = service.access_broadcast(session, caller.workspace_id, broadcast_id)
    return [
        RecipientOut(
            id=r.id,
            contact_id=r.contact_id,
            phone=r.phone,
            state=r.state,
            reason=r.reason,
            csv_line=r.line,
            message_id=r.message_id,
            wamid=r.wamid,
            replied_at=r.replied_at,
        )
        for r in service.recipient_rows(
            session, broadcast, state=state or None, offset=offset, limit=limit
        )
    ]


@router.get(
    "/broadcasts/{broadcast_id}/export",
    summary="Every recipient's result as CSV",
    responses={200: {"content": {"text/csv": {}}}, **error_responses(404)},
)
def export_broadcast(
    broadcast_id: BroadcastId, caller: ReadCaller, session: SessionDep
) -> Response:
    broadcast = service.access_broadcast(session, caller.workspace_id, broadcast_id)
    return Response(
        service.export_csv(session, broadcast),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="broadcast-{broadcast.id}.csv"'},
    )


def _action(name: str, summary: str) -> None:
    def act(broadcast_id: BroadcastId, caller: WriteCaller, session: SessionDep) -> Any:
        broadcast = service.access_broadcast(session, caller.workspace_id, broadcast_id)
        actor = _actor(caller)
        if name == "pause":
            service.do_pause(session, broadcast, actor)
        elif name == "resume":
            service.do_resume(session, broadcast, actor)
        elif name == "cancel":
            service.do_cancel_broadcast(session, broadcast, actor)
        else:
            service.do_retry_failed(session, broadcast, actor)
        return BroadcastOut.of(broadcast, service.progress(session, broadcast))

    act.__name__ = f"broadcast_{name.replace('-', '_')}"
    router.post(
        f"/broadcasts/{{broadcast_id}}/{name}",
        response_model=BroadcastOut,
        summary=summary,
        responses=error_responses(403, 404, 409),
    )(act)


_action("pause", "Pause: queued messages are held")
_action("resume", "Resume a paused broadcast")
_action("cancel", "Cancel: nothing more is sent")
_action("retry-failed", "Send again to the recipients whose message failed")


def _channel(session: SessionDep, workspace_id: int, channel_id: int) -> Channel:
    channel = session.scalar(
        select(Channel).where(Channel.id == channel_id, Channel.workspace_id == workspace_id)
    )
    if channel is None:
        raise NotFound(f"no channel {channel_id} in this workspace")
    return channel


def _tier_out(session: SessionDep, channel: Channel) -> TierOut:
    room = tier_room(session, channel)
    return TierOut(
        channel_id=channel.id,
        tier=tier_of(channel),
        business_portfolio_id=portfolio_of(channel),
        reached_24h=len(room.reached),
        left=room.left,
    )


@router.get(
    "/channels/{channel_id}/messaging-limit",
    response_model=TierOut,
    summary="The number's messaging-limit tier and its use in the last 24 h",
    responses=error_responses(404),
)
def get_tier(channel_id: ChannelId, caller: ReadCaller, session: SessionDep) -> Any:
    return _tier_out(session, _channel(session, caller.workspace_id, channel_id))


@router.put(
    "/channels/{channel_id}/messaging-limit",
    response_model=TierOut,
    summary="Set the number's messaging-limit tier (and business portfolio)",
    responses=error_responses(403, 404),
)
def put_tier(channel_id: ChannelId, body: TierIn, caller: WriteCaller, session: SessionDep) -> Any:
    channel = _channel(session, caller.workspace_id, channel_id)
    do_set_tier(session, channel, body.tier, body.business_portfolio_id, caller.actor)
    return _tier_out(session, channel)
