"""What a number's messages cost this month: sent from the Business app or as service
replies (free) against API messages Meta bills, by pricing category (from the status
webhooks' `pricing`)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.models import Direction, Message, MessageSource


@dataclass(frozen=True)
class MonthCosts:
    month_start: dt.datetime
    free: int
    billable: int
    pending: int  # sent through the API, Meta's pricing not reported yet
    billable_by_category: dict[str, int] = field(default_factory=dict)
    free_from_app: int = 0


def is_billable(source: str, pricing: dict[str, Any] | None) -> bool | None:
    """True or False when known; None while Meta has not said."""
    if source == MessageSource.BUSINESS_APP.value:
        return False  # sent from the phone: always free
    if not pricing:
        return None
    billable = pricing.get("billable")
    if isinstance(billable, bool):
        return billable
    # Since July 2025 Meta prices per message; service replies are free.
    return pricing.get("pricing_model") == "PMP" and pricing.get("category") != "service"


def month_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_costs(session: Session, channel: Channel, now: dt.datetime) -> MonthCosts:
    start = month_start(now)
    scope = (
        Message.workspace_id == channel.workspace_id,
        Message.channel_id == channel.id,
        Message.direction == Direction.OUTBOUND.value,
        Message.timestamp >= start,
        Message.source != MessageSource.HISTORY.value,
    )
    from_app = (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(*scope, Message.source == MessageSource.BUSINESS_APP.value)
        )
        or 0
    )
    free, billable, pending = from_app, 0, 0
    categories: Counter[str] = Counter()
    rows = session.execute(
        select(Message.source, Message.pricing).where(
            *scope, Message.source != MessageSource.BUSINESS_APP.value
        )
    ).tuples()
    for source, pricing in rows:
        verdict = is_billable(source, pricing)
        if verdict is None:
            pending += 1
        elif verdict:
            billable += 1
            categories[str((pricing or {}).get("category") or "unknown")] += 1
        else:
            free += 1
    return MonthCosts(
        month_start=start,
        free=free,
        billable=billable,
        pending=pending,
        billable_by_category=dict(sorted(categories.items())),
        free_from_app=from_app,
    )
