"""Messaging-limit tiers: how many unique people a business portfolio may reach with
templates (outside a customer-service window) in a rolling 24 hours (protocol §7).

The tier is a number setting (`messaging_limit_tier`: 250, 2000, 10000, 100000 or
unlimited); numbers sharing a `business_portfolio_id` setting (else their WABA) share one
count. Broadcasts queue only as many new people as the tier has room for; the rest wait
and are queued as the window rolls on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import Channel
from puente.conversations.models import Direction, Message, MessageSource, MessageStatus
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput

TIERS: dict[str, int | None] = {
    "50": 50,  # Meta's TIER_50 and TIER_1K: still reported for some portfolios
    "250": 250,
    "1000": 1000,
    "2000": 2000,
    "10000": 10000,
    "100000": 100000,
    "unlimited": None,
}
SETTING = "messaging_limit_tier"
PORTFOLIO_SETTING = "business_portfolio_id"
# Puente cannot know a number's tier until someone sets it: it does not hold sends back
# unless told (Meta still enforces its own limit and answers with an error).
DEFAULT_TIER = "unlimited"
WINDOW = dt.timedelta(hours=24)
_NOT_REACHED = (MessageStatus.FAILED.value, MessageStatus.CANCELLED.value)


def tier_of(channel: Channel) -> str:
    value = str((channel.settings or {}).get(SETTING) or DEFAULT_TIER)
    return value if value in TIERS else DEFAULT_TIER


def portfolio_of(channel: Channel) -> str:
    return str((channel.settings or {}).get(PORTFOLIO_SETTING) or channel.waba_id)


def check_tier(value: str) -> str:
    value = str(value).strip().lower().replace(",", "").replace("_", "")
    if value in ("0", "none", "unlimited", "infinite"):
        value = "unlimited"
    if value not in TIERS:
        raise InvalidInput(
            f"the messaging limit is one of {', '.join(TIERS)}",
            details=[{"field": "tier", "message": f"got {value!r}"}],
        )
    return value


def do_set_tier(
    session: Session, channel: Channel, tier: str, portfolio: str | None, actor: Any = None
) -> None:
    settings = dict(channel.settings or {})
    settings[SETTING] = check_tier(tier)
    if portfolio is not None:
        if portfolio.strip():
            settings[PORTFOLIO_SETTING] = portfolio.strip()
        else:
            settings.pop(PORTFOLIO_SETTING, None)
    channel.settings = settings
    session.flush()
    if actor is not None:
        audit.record(
            session,
            workspace_id=channel.workspace_id,
            actor=actor,
            action=Action.MESSAGING_LIMIT_SET,
            target=f"channel {channel.id}",
            details={"tier": settings[SETTING], "portfolio": settings.get(PORTFOLIO_SETTING)},
        )


@dataclass
class TierRoom:
    tier: str
    limit: int | None  # None: unlimited
    reached: set[int]  # contacts already counted in the last 24 h
    frees_at: dt.datetime | None  # when the oldest counted send leaves the window

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - len(self.reached))


def portfolio_channels(session: Session, channel: Channel) -> list[int]:
    key = portfolio_of(channel)
    rows = session.scalars(
        select(Channel).where(Channel.workspace_id == channel.workspace_id)
    ).all()
    return [c.id for c in rows if portfolio_of(c) == key]


def tier_room(session: Session, channel: Channel, now: dt.datetime | None = None) -> TierRoom:
    """Who the portfolio reached with templates in the last 24 h (queued ones count:
    they are on their way), and how many new people it may still reach."""
    tier = tier_of(channel)
    limit = TIERS[tier]
    if limit is None:
        return TierRoom(tier, None, set(), None)
    now = now or utcnow()
    since = now - WINDOW
    rows = session.execute(
        select(Message.contact_id, Message.timestamp).where(
            Message.workspace_id == channel.workspace_id,
            Message.channel_id.in_(portfolio_channels(session, channel)),
            Message.direction == Direction.OUTBOUND.value,
            Message.type == "template",
            Message.source.not_in([MessageSource.BUSINESS_APP.value, MessageSource.HISTORY.value]),
            Message.status.not_in(_NOT_REACHED),
            Message.timestamp >= since,
        )
    ).tuples()
    first_seen: dict[int, dt.datetime] = {}
    for contact_id, at in rows:
        if contact_id not in first_seen or at < first_seen[contact_id]:
            first_seen[contact_id] = at
    frees_at = min(first_seen.values()) + WINDOW if first_seen else None
    return TierRoom(tier, limit, set(first_seen), frees_at)


def check_tier_room(session: Session, channel: Channel, contact_id: int) -> None:
    """Refuse a template to a new person once the portfolio's tier is used up (someone
    already reached in the last 24 h may always get another)."""
    room = tier_room(session, channel)
    if room.left is None or contact_id in room.reached or room.left > 0:
        return
    when = room.frees_at.strftime("%Y-%m-%d %H:%M UTC") if room.frees_at else "later"
    raise Conflict(
        f"messaging limit reached: this number's business portfolio may reach {room.limit}"
        f" people in 24 h; room again from {when}",
        code="messaging_limit",
        details={
            "tier": room.tier,
            "frees_at": room.frees_at.isoformat() if room.frees_at else None,
        },
    )
