"""A channel is one WhatsApp phone number connected to a workspace."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, TimestampMixin


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


class Channel(IdMixin, TimestampMixin, Base):
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
