"""API shapes for channels. The access token never leaves the server."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from puente.channels.models import Channel


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
        )
