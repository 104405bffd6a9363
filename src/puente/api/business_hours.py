"""REST API for a number's business hours and away message."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.automation import hours as bh
from puente.channels.models import Channel
from puente.channels.service import access_channel
from puente.db.base import utcnow

router = APIRouter(prefix="/channels", tags=["business hours"])

ReadCaller = Annotated[ApiCaller, scoped("automation:read")]
WriteCaller = Annotated[ApiCaller, scoped("automation:write")]
ChannelId = Annotated[int, Path(ge=1, le=2**62)]


class OpenInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(max_length=5, description="local time HH:MM", examples=["09:00"])
    end: str = Field(
        max_length=5,
        description="local time HH:MM after the start, up to 24:00 (a night past midnight "
        "is two intervals: 20:00-24:00 and 00:00-03:00 the next day)",
        examples=["13:00"],
    )


class Week(BaseModel):
    """Each day's open intervals; a day left out or empty is closed."""

    model_config = ConfigDict(extra="forbid")

    mon: list[OpenInterval] = Field(default_factory=list, max_length=6)
    tue: list[OpenInterval] = Field(default_factory=list, max_length=6)
    wed: list[OpenInterval] = Field(default_factory=list, max_length=6)
    thu: list[OpenInterval] = Field(default_factory=list, max_length=6)
    fri: list[OpenInterval] = Field(default_factory=list, max_length=6)
    sat: list[OpenInterval] = Field(default_factory=list, max_length=6)
    sun: list[OpenInterval] = Field(default_factory=list, max_length=6)


class BusinessHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(
        max_length=64, description="the number's IANA time zone", examples=["America/Mexico_City"]
    )
    week: Week
    holidays_country: str | None = Field(
        default=None,
        max_length=3,
        description="ISO 3166 code whose public holidays close the number (holidays package)",
        examples=["MX"],
    )
    closed_dates: list[str] = Field(
        default_factory=list, max_length=400, description="more closed days, YYYY-MM-DD"
    )
    away_enabled: bool = Field(
        default=False, description="answer customers who write while the number is closed"
    )
    away_message: str = Field(
        default="",
        max_length=4096,
        description="the away text; {contact.name}, {contact.phone}, {custom.<field>} are "
        "filled in, {field|fallback} when it may be empty",
    )
    away_every_hours: int = Field(
        default=bh.DEFAULT_EVERY_HOURS,
        description="at most one away message per contact in this many hours (1-720)",
    )


class BusinessHoursOut(BusinessHoursIn):
    configured: bool = Field(description="false while the number has no hours (always open)")
    open_now: bool
    next_opening: dt.datetime | None = Field(
        description="when it opens next (now when open; null if never within 400 days)"
    )


def _out(channel: Channel) -> BusinessHoursOut:
    hours = bh.hours_of(channel)
    if hours is None:
        return BusinessHoursOut(
            time_zone="UTC", week=Week(), configured=False, open_now=True, next_opening=None
        )
    now = utcnow()
    return BusinessHoursOut.model_validate(
        {
            **bh.business_hours_json(hours),
            "configured": True,
            "open_now": bh.is_open(hours, now),
            "next_opening": bh.next_opening(hours, now),
        }
    )


@router.get(
    "/{channel_id}/business-hours",
    response_model=BusinessHoursOut,
    summary="A number's business hours and away message",
    responses=error_responses(403, 404),
)
def get_business_hours(
    channel_id: ChannelId, caller: ReadCaller, session: SessionDep
) -> BusinessHoursOut:
    return _out(access_channel(session, caller.workspace_id, channel_id))


@router.put(
    "/{channel_id}/business-hours",
    response_model=BusinessHoursOut,
    summary="Set a number's business hours and away message",
    responses=error_responses(403, 404, 422),
)
def put_business_hours(
    channel_id: ChannelId, body: BusinessHoursIn, caller: WriteCaller, session: SessionDep
) -> BusinessHoursOut:
    channel = access_channel(session, caller.workspace_id, channel_id)
    bh.do_set_business_hours(session, channel, body.model_dump(), caller.actor)
    return _out(channel)
