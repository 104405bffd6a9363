"""fields `phone_number_quality_update` and `phone_number_name_update`: the number's
messaging limit, throughput, quality and display-name review. Account-level fields:
no metadata, the channel is found by WABA and `display_phone_number`."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.channels.number_health import (
    do_apply_name_update,
    do_apply_quality_update,
    tier_for_limit,
)
from puente.db.base import utcnow
from puente.ingest.processors import ChangeRef, UnknownChannel
from puente.ingest.processors.channel import channels_of_waba
from puente.ingest.processors.convert import from_unix
from puente.runtime import Runtime
from puente.whatsapp import webhooks as wire

log = logging.getLogger(__name__)


def _channels(session: Session, change: ChangeRef, phone: str | None) -> list[Channel]:
    waba_info = change.value.get("waba_info")
    waba_ids = [change.waba_id or ""]
    if isinstance(waba_info, dict) and waba_info.get("waba_id"):
        waba_ids.append(str(waba_info["waba_id"]))
    channels = channels_of_waba(session, waba_ids, phone)
    if not channels:
        raise UnknownChannel(None, waba_ids[-1] or None)
    return channels


def _tier(limit: str | int | None) -> str | None:
    if limit is None:
        return None
    if isinstance(limit, int) or str(limit).isdigit():
        return tier_for_limit(int(limit))
    name = str(limit).strip().upper()
    if name not in wire.MESSAGING_LIMIT_TIERS:
        if name != "TIER_NOT_SET":
            log.info("messaging limit %s not understood; tier unchanged", name)
        return None
    return tier_for_limit(wire.MESSAGING_LIMIT_TIERS[name])


def process_quality_update(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = wire.QualityUpdateValue.model_validate(change.value)
    at = from_unix(change.entry_time) if change.entry_time else utcnow()
    # THROUGHPUT_UPGRADE's current_limit names the throughput level (TIER_UNLIMITED: the
    # higher throughput), not the messaging limit; the newer field is the limit always.
    limit = (
        value.max_daily_conversations_per_business
        if value.event == "THROUGHPUT_UPGRADE"
        else value.limit
    )
    for channel in _channels(session, change, value.display_phone_number):
        do_apply_quality_update(
            session,
            channel,
            event=value.event,
            tier=_tier(limit or None),
            at=at,
            upgraded_mps=wire.UPGRADED_THROUGHPUT_MPS,
        )


def process_name_update(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = wire.NameUpdateValue.model_validate(change.value)
    at = from_unix(change.entry_time) if change.entry_time else utcnow()
    for channel in _channels(session, change, value.display_phone_number):
        do_apply_name_update(
            session,
            channel,
            decision=value.decision,
            requested_name=value.requested_verified_name,
            rejection_reason=value.rejection_reason,
            at=at,
        )
