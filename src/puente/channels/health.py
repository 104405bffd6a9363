"""Connection health of a number as people read it: its state in plain words, whether
sending is paused, the history import's progress, and the warning when the owner's phone
has been quiet long enough that Meta will soon disconnect it (about 14 days)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import (
    SENDING_PAUSED_STATES,
    Channel,
    ChannelMode,
    ChannelSync,
    ConnectionState,
    SyncState,
)
from puente.channels.sync import overall_progress
from puente.whatsapp.webhooks import DISCONNECTION_REASONS

INACTIVITY_WARNING = dt.timedelta(days=12)
META_DISCONNECTS_AFTER_DAYS = 14

# State labels (msgids translated by the pages).
STATE_LABELS = {
    ConnectionState.ONBOARDING.value: "Onboarding",
    ConnectionState.SYNCING.value: "Syncing",
    ConnectionState.CONNECTED.value: "Connected",
    ConnectionState.OFFBOARDED.value: "Offboarded: sending paused",
    ConnectionState.RECONNECTED.value: "Reconnected",
    ConnectionState.DISCONNECTED.value: "Disconnected",
    ConnectionState.FAILED.value: "Failed",
}
# Short words for PARTNER_REMOVED reasons, matched on the plain reason Meta's event gave.
SHORT_REASONS = {
    "PRIMARY_INACTIVITY": "phone inactive",
    "COMPANION_INACTIVITY": "linked device inactive",
    "ACCOUNT_DISCONNECTED": "account disconnected",
    "BUSINESS_DOWNGRADE": "number moved to the consumer app",
    "CHANGE_NUMBER": "number changed",
    "USER_RE_REGISTERED": "number registered again",
}
HISTORY_LABELS = {
    SyncState.NOT_REQUESTED.value: "Not requested",
    SyncState.REQUESTED.value: "Requested, waiting for Meta",
    SyncState.IMPORTING.value: "Importing",
    SyncState.COMPLETE.value: "Complete",
    SyncState.DECLINED.value: "History not shared",
    SyncState.FAILED.value: "Failed",
}


@dataclass(frozen=True)
class Health:
    state: str  # a ConnectionState value, as shown (syncing ends when history cannot come)
    label: str  # msgid
    detail: str | None  # short words after the label ("phone inactive"), a msgid
    reason: str | None  # Meta's reason in plain words (stored on the channel)
    sending_paused: bool
    inactive_days: int | None
    inactivity_warning: bool
    history_state: str | None
    history_label: str | None
    progress: int  # 0-100 for the history progress bar
    phase_progress: dict[str, int]
    history_messages: int
    contacts_synced: int
    history_skipped: bool


def access_sync(session: Session, channel: Channel) -> ChannelSync | None:
    return session.scalar(
        select(ChannelSync).where(
            ChannelSync.channel_id == channel.id,
            ChannelSync.workspace_id == channel.workspace_id,
        )
    )


# Endings the account_update processor adds to Meta's reason, translated apart.
REASON_ENDINGS = (" Disconnected by the owner.", " Disconnected by WhatsApp.")


def reason_parts(reason: str | None) -> list[str]:
    """Meta's reason split into fixed sentences a catalog can translate."""
    if not reason:
        return []
    for ending in REASON_ENDINGS:
        if reason.endswith(ending):
            return [reason[: -len(ending)], ending.strip()]
    return [reason]


def short_reason(reason: str | None) -> str | None:
    if not reason:
        return None
    for code, words in DISCONNECTION_REASONS.items():
        if reason.startswith(words) or code in reason:
            return SHORT_REASONS.get(code)
    return None


def channel_health(channel: Channel, sync: ChannelSync | None, now: dt.datetime) -> Health:
    state = channel.connection_state
    history_state = sync.history_state if sync else None
    history_skipped = (channel.settings or {}).get("import_history") is False
    # A declined or failed history never reaches 100 %: the number is simply connected.
    if state == ConnectionState.SYNCING.value and (
        history_state in (SyncState.DECLINED.value, SyncState.FAILED.value) or history_skipped
    ):
        state = ConnectionState.CONNECTED.value
    inactive_days = None
    warning = False
    if channel.mode == ChannelMode.COEXISTENCE.value:
        since = channel.last_phone_activity_at or channel.onboarded_at
        if since is not None:
            inactive_days = max(0, (now - since).days)
            warning = now - since >= INACTIVITY_WARNING and state not in {
                ConnectionState.DISCONNECTED.value
            }
    return Health(
        state=state,
        label=STATE_LABELS.get(state, state),
        detail=short_reason(channel.state_reason)
        if state == ConnectionState.DISCONNECTED.value
        else None,
        reason=channel.state_reason,
        sending_paused=ConnectionState(state) in SENDING_PAUSED_STATES
        if state in STATE_LABELS
        else False,
        inactive_days=inactive_days,
        inactivity_warning=warning,
        history_state=history_state,
        history_label=HISTORY_LABELS.get(history_state) if history_state else None,
        progress=overall_progress(sync) if sync else 0,
        phase_progress={k: int(v) for k, v in (sync.history_progress or {}).items()}
        if sync
        else {},
        history_messages=sync.history_messages if sync else 0,
        contacts_synced=sync.contacts_synced if sync else 0,
        history_skipped=history_skipped,
    )
