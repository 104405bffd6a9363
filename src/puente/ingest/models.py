"""Raw webhook events (the inbound queue) and the changes that could not be applied."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, IdMixin, utcnow


class EventState(enum.StrEnum):
    NEW = "new"
    DONE = "done"
    # Some changes in it were parked or failed: see WebhookChange rows.
    PARTIAL = "partial"
    FAILED = "failed"  # the body itself could not be processed (not JSON, not an envelope)


class ChangeState(enum.StrEnum):
    PARKED = "parked"  # for a phone number Puente does not know yet
    FAILED = "failed"
    READY = "ready"  # queued again (channel appeared, or retried by a person)
    DONE = "done"


class WebhookEvent(IdMixin, Base):
    """One signed POST, stored byte for byte before Meta gets its 200."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_state", "state", "id"),)

    # The first 16 bytes of the raw body's sha256 (see ingest.store.dedupe_key): Meta's
    # retries of the same delivery are stored once. Binary, not 64 hex characters: the
    # unique index is most of what storing a webhook costs, and a smaller key makes it
    # smaller.
    dedupe_key: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default=EventState.NEW.value)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[dt.datetime | None]


class WebhookChange(IdMixin, Base):
    """One `entry[].changes[]` item that was parked or failed, kept until it applies."""

    __tablename__ = "webhook_changes"
    __table_args__ = (Index("ix_webhook_changes_state", "state", "phone_number_id"),)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    waba_id: Mapped[str | None] = mapped_column(String(64))
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    value: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
