"""The one place a number's `channel.updated` event is built: connection, phone activity
and health travel together, so every subscriber sees the whole state."""

from __future__ import annotations

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.events import ChannelUpdated, publish
from puente.outbound.broadcasts import tiers


def publish_channel_updated(session: Session, channel: Channel) -> None:
    publish(
        session,
        ChannelUpdated(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            connection_state=channel.connection_state,
            state_reason=channel.state_reason,
            last_phone_activity_at=channel.last_phone_activity_at,
            quality_rating=channel.quality_rating,
            quality_event=channel.quality_event,
            messaging_limit_tier=tiers.tier_of(channel),
            throughput_mps=channel.throughput_mps,
            name_status=channel.name_status,
        ),
    )
