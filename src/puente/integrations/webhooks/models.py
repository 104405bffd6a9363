"""The tables of outgoing webhooks: endpoints, one delivery per event and endpoint (the
outbox the worker sends from), one attempt per try, and the per-conversation counters
that number deliveries in order."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, BigIntPK, IdMixin, JSONType, TimestampMixin, WorkspaceOwned, utcnow


class DeliveryState(StrEnum):
    PENDING = "pending"  # to send, or to try again at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # refused (4xx), or still failing three days on


class WebhookEndpoint(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A URL that receives the workspace's events of the types in `events` (only those of
    number `channel_id` when set). `secret` holds the signing secret ("whsec_…") encrypted
    with `puente.secrets`; only `secret_hint` (its last four characters) is ever shown
    again. `failing_since` is the first failure since the last success: an endpoint
    failing for three days is switched off with `disabled_reason`."""

    __tablename__ = "webhook_endpoints"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    channel_id: Mapped[int | None] = mapped_column(
        BigIntPK, ForeignKey("channels.id", ondelete="CASCADE")
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[dt.datetime | None]
    secret: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """One event for one endpoint. `event_id` is the `webhook-id` header: the same on every
    try, so a receiver can drop a repeat. `sequence` counts the endpoint's deliveries about
    one conversation (1, 2, ...) in the order their transactions committed; the worker never
    sends one while an earlier one of the same conversation is pending, so they also arrive
    in that order. `next_attempt_at` is when it is due (moved ahead while a worker holds it:
    the lease)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_lane", "endpoint_id", "conversation_id", "state", "id"),
        UniqueConstraint(
            "endpoint_id", "conversation_id", "sequence", name="uq_webhook_deliveries_sequence"
        ),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    conversation_id: Mapped[int | None] = mapped_column(BigIntPK)
    sequence: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    # Retried until then (three days after it was written, or resent): past it, a failure
    # that would be retried fails it for good.
    give_up_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None]


class WebhookAttempt(WorkspaceOwned, IdMixin, Base):
    """One try of a delivery: the receiver's status code (None when there was no answer),
    how long it took, the first kilobyte of its answer, and what went wrong."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    at: Mapped[dt.datetime]
    status_code: Mapped[int | None]
    duration_ms: Mapped[int] = mapped_column(default=0)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(String(500))


class WebhookSequence(WorkspaceOwned, Base):
    """The last sequence number given to an endpoint's deliveries about one conversation.
    Taken with one upsert that returns the new value: on PostgreSQL the row's lock makes a
    second transaction wait for the first to commit, so numbers follow commit order."""

    __tablename__ = "webhook_sequences"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    last: Mapped[int] = mapped_column(default=0)
