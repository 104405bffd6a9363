"""The one place a number's `channel.updated` event is built: connection, phone activity
and health travel together, so every subscriber sees the whole state."""

from __future__ import annotations

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.events import DomainEvent, publish
from puente.outbound.broadcasts import tiers


def publish_channel_updated(session: Session, channel: Channel) -> None:
    activity = channel.last_phone_activity_at
    publish(
        session,
        DomainEvent(
            workspace_id=channel.workspace_id,
            kind="channel.updated",
            data={
                "channel_id": channel.id,
                "connection_state": channel.connection_state,
                "state_reason": channel.state_reason,
                "last_phone_activity_at": activity.isoformat() if activity else None,
                "quality_rating": channel.quality_rating,
                "quality_event": channel.quality_event,
                "messaging_limit_tier": tiers.tier_of(channel),
                "throughput_mps": channel.throughput_mps,
                "name_status": channel.name_status,
            },
        ),
    )
