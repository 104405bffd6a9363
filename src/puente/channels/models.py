"""A channel is one WhatsApp phone number connected to a workspace."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, JSONType, TimestampMixin, WorkspaceOwned, utcnow


class ChannelMode(enum.StrEnum):
    COEXISTENCE = "coexistence"  # the number also stays in the owner's Business app
    CLOUD_API = "cloud_api"


class ConnectionState(enum.StrEnum):
    ONBOARDING = "onboarding"
    SYNCING = "syncing"
    CONNECTED = "connected"
    OFFBOARDED = "offboarded"
    RECONNECTED = "reconnected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


# Meta's fixed throughput per mode, in messages per second.
DEFAULT_THROUGHPUT = {ChannelMode.COEXISTENCE: 20, ChannelMode.CLOUD_API: 80}
# States in which the Cloud API cannot send: the outbox pauses these lanes.
SENDING_PAUSED_STATES = {ConnectionState.OFFBOARDED, ConnectionState.DISCONNECTED}


class Channel(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "channels"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[str] = mapped_column(String(64), unique=True)
    waba_id: Mapped[str] = mapped_column(String(64), index=True)
    # Digits only, as Meta writes it in webhook metadata (no "+").
    display_phone_number: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default=ChannelMode.CLOUD_API.value)
    # Fernet-encrypted Meta access token (see puente.secrets).
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    throughput_mps: Mapped[int] = mapped_column(default=80)
    connection_state: Mapped[str] = mapped_column(
        String(16), default=ConnectionState.CONNECTED.value
    )
    state_reason: Mapped[str | None] = mapped_column(String(500))
    state_changed_at: Mapped[dt.datetime | None]
    onboarded_at: Mapped[dt.datetime | None]
    # Last time the owner's phone showed activity (echoes, contact edits): Meta cuts
    # coexistence numbers off after about 14 days of phone inactivity.
    last_phone_activity_at: Mapped[dt.datetime | None]
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The team whose queue the number's new conversations join (automation.routing).
    default_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    # The number's health as Meta reports it (phone_number_quality_update): the quality
    # rating (GREEN, YELLOW, RED, NA; None until known) and the last event (FLAGGED, ...).
    quality_rating: Mapped[str | None] = mapped_column(String(16))
    quality_event: Mapped[str | None] = mapped_column(String(32))
    quality_changed_at: Mapped[dt.datetime | None]
    # The display name's review (phone_number_name_update): APPROVED, REJECTED, DEFERRED.
    name_status: Mapped[str | None] = mapped_column(String(16))
    requested_name: Mapped[str | None] = mapped_column(String(200))
    name_rejection_reason: Mapped[str | None] = mapped_column(String(500))
    name_changed_at: Mapped[dt.datetime | None]


class SyncState(enum.StrEnum):
    NOT_REQUESTED = "not_requested"
    REQUESTED = "requested"  # smb_app_data accepted; webhooks not seen yet
    IMPORTING = "importing"
    COMPLETE = "complete"
    DECLINED = "declined"  # the owner chose not to share history (2593109)
    FAILED = "failed"


class ChannelSync(WorkspaceOwned, IdMixin, Base):
    """Coexistence sync of one channel: the history import and the contacts sync."""

    __tablename__ = "channel_syncs"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), unique=True
    )
    history_state: Mapped[str] = mapped_column(String(16), default=SyncState.NOT_REQUESTED.value)
    history_request_id: Mapped[str | None] = mapped_column(String(128))
    history_requested_at: Mapped[dt.datetime | None]
    # Highest `progress` (0-100) seen per phase: {"0": 100, "1": 40}.
    history_progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    history_chunks: Mapped[int] = mapped_column(default=0)
    # The import's honest overall figure: the progress of the last chunk before the first
    # missing one in (phase, chunk_order) order, and where that unbroken run ends. Chunks
    # arrive out of order, so the furthest chunk's progress can read 100 too early.
    history_overall: Mapped[int] = mapped_column(default=0)
    history_upto_phase: Mapped[int] = mapped_column(default=-1)
    history_upto_order: Mapped[int] = mapped_column(default=0)
    history_messages: Mapped[int] = mapped_column(default=0)
    history_error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    history_completed_at: Mapped[dt.datetime | None]
    contacts_state: Mapped[str] = mapped_column(String(16), default=SyncState.NOT_REQUESTED.value)
    contacts_request_id: Mapped[str | None] = mapped_column(String(128))
    contacts_requested_at: Mapped[dt.datetime | None]
    contacts_synced: Mapped[int] = mapped_column(default=0)
    contacts_last_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HistoryChunkSeen(IdMixin, Base):
    """One history chunk already processed: a repeated chunk only counts once."""

    __tablename__ = "history_chunks"
    __table_args__ = (UniqueConstraint("channel_id", "phase", "chunk_order"),)

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    phase: Mapped[int]
    chunk_order: Mapped[int]
    progress: Mapped[int | None]
    messages: Mapped[int] = mapped_column(default=0)
    event_id: Mapped[int | None]
    processed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AppContactSync(IdMixin, Base):
    """The latest contact-sync action per number in the owner's address book, so an
    older `add` arriving after a newer `remove` (or the reverse) changes nothing."""

    __tablename__ = "app_contact_syncs"
    __table_args__ = (UniqueConstraint("channel_id", "phone"),)

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    timestamp: Mapped[dt.datetime]


class OnboardingMethod(enum.StrEnum):
    COEXISTENCE = "coexistence"  # "connect your WhatsApp Business app"
    NEW_NUMBER = "new_number"  # a number that is not in any WhatsApp app yet


class OnboardingState(enum.StrEnum):
    WAITING = "waiting"  # signup started; the owner has not confirmed on the phone yet
    EXCHANGING = "exchanging"  # the code is being exchanged (one process at a time)
    CONNECTED = "connected"
    FAILED = "failed"


class Onboarding(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """One attempt to connect a number through Embedded Signup (or the sandbox's)."""

    __tablename__ = "channel_onboardings"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=OnboardingState.WAITING.value)
    import_history: Mapped[bool] = mapped_column(default=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    # The sandbox's signup id and the code the owner confirms on the simulated phone.
    signup_ref: Mapped[str | None] = mapped_column(String(64))
    confirm_code: Mapped[str | None] = mapped_column(String(16))
    waba_id: Mapped[str | None] = mapped_column(String(64))
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    # {"code", "message", "next_step", "meta": Meta's error} when the attempt failed.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    finished_at: Mapped[dt.datetime | None]


class SyncRequestState(enum.StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"


class SyncRequest(WorkspaceOwned, IdMixin, Base):
    """One `smb_app_data` call: accepted with Meta's request id, or failed with its error."""

    __tablename__ = "channel_sync_requests"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    sync_type: Mapped[str] = mapped_column(String(32))  # smb_app_state_sync | history
    state: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
