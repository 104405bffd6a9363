"""REST API for segments, saved contact filters: list (with counts), create, change,
delete, their contacts page by page, and a count for a filter without saving it (thin:
the rules live in `puente.contacts.segments`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from puente.api.common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
    error_responses,
)
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.contacts import segments
from puente.contacts.models import Contact, Segment
from puente.contacts.schemas import ContactOut
from puente.contacts.service import tags_of

router = APIRouter(prefix="/segments", tags=["segments"])

ReadCaller = Annotated[ApiCaller, scoped("contacts:read")]
WriteCaller = Annotated[ApiCaller, scoped("contacts:write")]
SegmentId = Annotated[int, Path(ge=1, le=2**62, description="the segment's id")]

FILTER_HELP = (
    "Every part given must hold. tags_any / tags_all / tags_none: tag names; fields: "
    '[{"key": "plan", "op": "equals", "value": "gold"}, {"key": "email", "op": "set"}] '
    "(op equals, set or not_set); consent: opt_in, opt_out or unknown (marketing); sources: "
    "any of whatsapp, business_app, history, api, manual, import; channel_ids: has a "
    'conversation on any of these numbers; last_message: {"op": "within", "days": 30} or '
    '{"op": "before" | "after", "date": "2026-11-01"} (the workspace\'s days); '
    "conversation_status: any of open, pending, snoozed, resolved. Number, status and last "
    "message look at the conversations on the numbers given (all of them when none)."
)


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: dict[str, Any] = Field(default_factory=dict, description=FILTER_HELP)


class SegmentIn(FilterIn):
    name: str = Field(min_length=1, max_length=100)


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    filter: dict[str, Any] | None = Field(None, description=FILTER_HELP)


class SegmentOut(BaseModel):
    id: int
    name: str
    filter: dict[str, Any]
    count: int = Field(description="contacts it selects now")

    @classmethod
    def of(cls, segment: Segment, count: int) -> SegmentOut:
        return cls(id=segment.id, name=segment.name, filter=segment.filter or {}, count=count)


class PreviewOut(BaseModel):
    count: int
    filter: dict[str, Any] = Field(description="the filter as it would be saved")


def _out(session: SessionDep, segment: Segment) -> SegmentOut:
    count = segments.count_matching(session, segment.workspace_id, segments.filter_of(segment))
    return SegmentOut.of(segment, count)


@router.get(
    "",
    response_model=list[SegmentOut],
    summary="Saved segments with their counts",
    responses=error_responses(403),
)
def list_segments(caller: ReadCaller, session: SessionDep) -> Any:
    found = segments.list_segments(session, caller.workspace_id)
    counts = segments.segment_counts(session, caller.workspace_id, found)
    return [SegmentOut.of(s, n) for s, n in zip(found, counts, strict=True)]


@router.post(
    "",
    status_code=201,
    response_model=SegmentOut,
    summary="Save a segment",
    responses=error_responses(400, 403, 409),
)
def create_segment(body: SegmentIn, caller: WriteCaller, session: SessionDep) -> Any:
    segment = segments.do_create_segment(
        session,
        workspace_id=caller.workspace_id,
        name=body.name,
        filter_=body.filter,
        actor=caller.actor,
    )
    return _out(session, segment)


@router.post(
    "/preview",
    response_model=PreviewOut,
    summary="How many contacts a filter selects, without saving it",
    responses=error_responses(400, 403),
)
def preview_segment(body: FilterIn, caller: ReadCaller, session: SessionDep) -> Any:
    parsed = segments.check_segment_filter(session, caller.workspace_id, body.filter)
    count = segments.count_matching(session, caller.workspace_id, parsed)
    return PreviewOut(count=count, filter=parsed.as_json())


@router.get(
    "/{segment_id}",
    response_model=SegmentOut,
    summary="A segment with its count",
    responses=error_responses(403, 404),
)
def get_segment(segment_id: SegmentId, caller: ReadCaller, session: SessionDep) -> Any:
    return _out(session, segments.access_segment(session, caller.workspace_id, segment_id))


@router.patch(
    "/{segment_id}",
    response_model=SegmentOut,
    summary="Rename a segment or change its filter",
    responses=error_responses(400, 403, 404, 409),
)
def update_segment(
    segment_id: SegmentId, body: SegmentPatch, caller: WriteCaller, session: SessionDep
) -> Any:
    segment = segments.access_segment(session, caller.workspace_id, segment_id)
    segments.do_update_segment(
        session, segment, name=body.name, filter_=body.filter, actor=caller.actor
    )
    return _out(session, segment)


@router.delete(
    "/{segment_id}",
    status_code=204,
    summary="Delete a segment (broadcasts planned from it keep their recipients)",
    responses=error_responses(403, 404),
)
def delete_segment(segment_id: SegmentId, caller: WriteCaller, session: SessionDep) -> Response:
    segment = segments.access_segment(session, caller.workspace_id, segment_id)
    segments.do_delete_segment(session, segment, actor=caller.actor)
    return Response(status_code=204)


@router.get(
    "/{segment_id}/contacts",
    response_model=Page[ContactOut],
    summary="The segment's contacts, newest first",
    responses=error_responses(403, 404),
)
def segment_contacts(
    segment_id: SegmentId,
    caller: ReadCaller,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Page[ContactOut]:
    segment = segments.access_segment(session, caller.workspace_id, segment_id)
    condition = segments.workspace_condition(
        session, caller.workspace_id, segments.filter_of(segment)
    )
    query = select(Contact).where(condition).order_by(Contact.id.desc()).limit(limit + 1)
    if cursor:
        query = query.where(Contact.id < int(decode_cursor(cursor, 1)[0]))
    found = list(session.scalars(query))
    page = found[:limit]
    tags = tags_of(session, [c.id for c in page])
    return Page[ContactOut](
        items=[ContactOut.of(c, tags[c.id]) for c in page],
        next_cursor=encode_cursor([page[-1].id]) if len(found) > limit else None,
    )
