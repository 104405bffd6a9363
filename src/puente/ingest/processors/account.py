"""field `account_update`: connection health of coexistence numbers. Account-level
fields carry no metadata: the channel is found by WABA (and the number, when given)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from puente.channels.models import Channel, ConnectionState
from puente.channels.sync import do_set_connection_state
from puente.db.base import utcnow
from puente.ingest.processors import ChangeRef, UnknownChannel
from puente.ingest.processors.channel import channels_of_waba
from puente.ingest.processors.convert import from_unix
from puente.runtime import Runtime
from puente.whatsapp import webhooks as wire

log = logging.getLogger(__name__)

CONNECTION_EVENTS = {
    "PARTNER_REMOVED": ConnectionState.DISCONNECTED,
    "ACCOUNT_OFFBOARDED": ConnectionState.OFFBOARDED,
    "ACCOUNT_RECONNECTED": ConnectionState.RECONNECTED,
}


def _channels(
    session: Session, change: ChangeRef, waba_info: wire.WabaInfo | None, phone: str | None
) -> list[Channel]:
    # entry.id is the WABA, except for some partner events where it is the partner's
    # business and the WABA sits in waba_info.
    waba_ids = [change.waba_id or "", waba_info.waba_id if waba_info else ""]
    channels = channels_of_waba(session, [w for w in waba_ids if w], phone)
    if not channels:
        raise UnknownChannel(None, (waba_info.waba_id if waba_info else None) or change.waba_id)
    return channels


def process_account_update(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = wire.AccountUpdateValue.model_validate(change.value)
    state = CONNECTION_EVENTS.get(value.event)
    if state is None:
        log.info("account_update %s kept unprocessed", value.event)
        return
    at = from_unix(change.entry_time) if change.entry_time else utcnow()
    reason = _reason(value)
    for channel in _channels(session, change, value.waba_info, value.phone_number):
        do_set_connection_state(session, channel, state, reason=reason, at=at)


def _reason(value: wire.AccountUpdateValue) -> str | None:
    if value.event == "ACCOUNT_OFFBOARDED":
        return "Meta offboarded the number (new phone, reinstall or re-registration): sending is paused until it reconnects."
    if value.event == "ACCOUNT_RECONNECTED":
        return "The number reconnected to the Cloud API."
    info = value.disconnection_info
    if info is None or not info.reason:
        return "The owner disconnected the number from the Business Platform in the WhatsApp Business app."
    words = wire.DISCONNECTION_REASONS.get(
        info.reason, f"Meta disconnected the number ({info.reason})."
    )
    if info.initiated_by == "USER":
        return f"{words} Disconnected by the owner."
    if info.initiated_by == "SYSTEM":
        return f"{words} Disconnected by WhatsApp."
    return words
