"""API shapes for channels. The access token never leaves the server."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from puente.channels.models import Channel
from puente.outbound.broadcasts.tiers import tier_of


class ChannelOut(BaseModel):
    id: int
    name: str
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    mode: str
    throughput_mps: int
    connection_state: str
    state_reason: str | None
    onboarded_at: dt.datetime | None
    created_at: dt.datetime
    quality_rating: str | None = Field(
        description="GREEN, YELLOW, RED or NA as Meta rates the number; null until known"
    )
    quality_event: str | None = Field(
        description="Meta's last quality event: FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ..."
    )
    messaging_limit_tier: str = Field(
        description="people reached per 24 h by the business portfolio: 50 ... unlimited"
    )
    name_status: str | None = Field(
        description="the display name's review: APPROVED, REJECTED or DEFERRED"
    )
    requested_name: str | None
    name_rejection_reason: str | None

    @classmethod
    def of(cls, c: Channel) -> ChannelOut:
        return cls(
            id=c.id,
            name=c.name,
            phone_number_id=c.phone_number_id,
            waba_id=c.waba_id,
            display_phone_number=c.display_phone_number,
            mode=c.mode,
            throughput_mps=c.throughput_mps,
            connection_state=c.connection_state,
            state_reason=c.state_reason,
            onboarded_at=c.onboarded_at,
            created_at=c.created_at,
            quality_rating=c.quality_rating,
            quality_event=c.quality_event,
            messaging_limit_tier=tier_of(c),
            name_status=c.name_status,
            requested_name=c.requested_name,
            name_rejection_reason=c.name_rejection_reason,
        )
