"""The number's health as Meta reports it in webhooks: its messaging limit (a business
portfolio's, shared by its numbers), throughput, quality and display-name review.

Each kind of report keeps the time of the one applied, so an older event arriving late
changes nothing."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.orm import Session

from puente.channels.events import publish_channel_updated
from puente.channels.models import Channel, ChannelMode
from puente.outbound.broadcasts import tiers

log = logging.getLogger(__name__)

# Quality events (phone_number_quality_update). FLAGGED means the quality rating fell to
# Low; UNFLAGGED that it is Medium or High again (the event does not say which).
FLAGGED = "FLAGGED"
UNFLAGGED = "UNFLAGGED"
THROUGHPUT_UPGRADE = "THROUGHPUT_UPGRADE"
LOW_QUALITY = "RED"


def tier_for_limit(limit: int | None) -> str:
    """Puente's tier setting for a limit in people per 24 h (None: unlimited)."""
    return "unlimited" if limit is None else str(limit)


def _is_newer(previous: dt.datetime | None, at: dt.datetime) -> bool:
    return previous is None or at >= previous


def do_apply_quality_update(
    session: Session,
    channel: Channel,
    *,
    event: str,
    tier: str | None,
    at: dt.datetime,
    upgraded_mps: int,
) -> bool:
    """Apply one phone_number_quality_update. `tier` is the portfolio's new messaging
    limit when the event reports one: it is set on every number of the portfolio, since
    Meta counts them together. Returns whether the event was newer than the last."""
    if not _is_newer(channel.quality_changed_at, at):
        return False
    channel.quality_event = event
    channel.quality_changed_at = at
    if event == FLAGGED:
        channel.quality_rating = LOW_QUALITY
    elif event == UNFLAGGED and channel.quality_rating == LOW_QUALITY:
        channel.quality_rating = None  # Medium or High again; which one is not said
    if event == THROUGHPUT_UPGRADE and channel.mode != ChannelMode.COEXISTENCE.value:
        # Coexistence numbers keep Meta's fixed 20 msg/s whatever the event says.
        channel.throughput_mps = max(channel.throughput_mps, upgraded_mps)
    if tier is not None and tier in tiers.TIERS:
        for other in _portfolio(session, channel):
            if tiers.tier_of(other) != tier:
                other.settings = {**(other.settings or {}), tiers.SETTING: tier}
                if other is not channel:
                    publish_channel_updated(session, other)
    session.flush()
    publish_channel_updated(session, channel)
    return True


def do_apply_name_update(
    session: Session,
    channel: Channel,
    *,
    decision: str,
    requested_name: str | None,
    rejection_reason: str | None,
    at: dt.datetime,
) -> bool:
    """Apply one phone_number_name_update (the display name's review)."""
    if not _is_newer(channel.name_changed_at, at):
        return False
    channel.name_status = decision[:16]
    channel.requested_name = (requested_name or None) and requested_name[:200]
    reason = rejection_reason if rejection_reason and rejection_reason != "NONE" else None
    channel.name_rejection_reason = (reason or None) and reason[:500]
    channel.name_changed_at = at
    session.flush()
    publish_channel_updated(session, channel)
    return True


def _portfolio(session: Session, channel: Channel) -> list[Channel]:
    ids = set(tiers.portfolio_channels(session, channel))
    others = [session.get(Channel, i) for i in sorted(ids - {channel.id})]
    return [channel, *(c for c in others if c is not None)]
