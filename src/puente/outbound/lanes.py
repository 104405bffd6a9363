"""A lane is one phone number's queue: what it may send next, pacing, and the bookkeeping
around each send (claim before, record after, retry or fail on Meta's errors).

Everything here is synchronous and database-facing; `puente.outbound.worker` runs the
lanes, owns them across processes and makes the HTTP calls.
"""

from __future__ import annotations

import collections
import datetime as dt
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased

from puente.channels.models import SENDING_PAUSED_STATES, Channel
from puente.contacts.consent import record_optout_from_meta
from puente.conversations.models import STATUS_RANK, Message, MessageStatus
from puente.conversations.statuses import apply_pending_statuses
from puente.db.base import utcnow
from puente.outbound.models import OutboxItem, OutboxState
from puente.outbound.service import callback_data_for, set_message_status
from puente.whatsapp.errors import (
    GraphError,
    GraphTransportError,
    PairRateLimited,
    RateLimited,
)

_PAUSED = [s.value for s in SENDING_PAUSED_STATES]


# -- pacing ----------------------------------------------------------------------------


class Pacer:
    """Never more than `rate` sends in any one-second window, spread evenly.

    Sends are spaced 1/rate apart, and the n-th send also waits until one second (plus
    `slack`) has passed since the (n-rate)-th was *answered*: Meta counted that request
    before it answered it, so waiting on the answer holds however much the requests'
    arrival jitters on a busy machine or network. Waiting on the answer costs one round
    trip per second of sending; `answer_cap` bounds that cost on a slow link, where the
    guarantee falls back to the start time plus the cap.
    """

    def __init__(self, rate: float, *, slack: float = 0.005, answer_cap: float = 0.1) -> None:
        self.rate = max(1, int(rate))
        self.slack = slack
        self.answer_cap = answer_cap
        self._recent: collections.deque[float] = collections.deque(maxlen=self.rate)
        self._next = 0.0

    def reserve(self, now: float | None = None) -> float:
        """Reserve the next slot; returns the monotonic time at which to send."""
        now = time.monotonic() if now is None else now
        at = max(now, self._next)
        if len(self._recent) == self.rate:
            at = max(at, self._recent[0] + 1.0 + self.slack)
        self._recent.append(at)
        self._next = at + 1.0 / self.rate
        return at

    def started(self, slot: float, now: float | None = None) -> float:
        """The send reserved at `slot` really started at `now` (later, perhaps).
        Returns the mark to pass to `answered`."""
        now = time.monotonic() if now is None else now
        if now <= slot:
            return slot
        self._replace(slot, now)
        return now

    def answered(self, mark: float, now: float | None = None) -> None:
        """Meta answered the send marked `mark` (whatever the answer)."""
        now = time.monotonic() if now is None else now
        later = min(now, mark + self.answer_cap)
        if later > mark:
            self._replace(mark, later)

    def _replace(self, old: float, new: float) -> None:
        for i in range(len(self._recent) - 1, -1, -1):
            if self._recent[i] == old:
                self._recent[i] = new
                return

    def set_rate(self, rate: float) -> None:
        if max(1, int(rate)) != self.rate:
            recent = list(self._recent)
            self.rate = max(1, int(rate))
            self._recent = collections.deque(recent[-self.rate :], maxlen=self.rate)


# -- retries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 2.0
    max_seconds: float = 600.0
    max_attempts: int = 10
    # 131056: roughly one message per 6 s to the same person is what partners report.
    pair_seconds: float = 6.0
    # After a request that may have reached Meta (read timeout), wait this long for a
    # status webhook to reconcile it before sending it again.
    ambiguous_seconds: float = 60.0

    def backoff(self, attempts: int) -> float:
        delay = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempts - 1))
        return float(delay * random.uniform(0.8, 1.2))  # jitter spreads retries apart


@dataclass(frozen=True)
class RetryPlan:
    item_delay: float  # seconds until this item may be sent again
    lane_pause: float  # seconds the whole lane should stop (rate limits), 0 for none


def plan_retry(exc: GraphError, attempts: int, policy: RetryPolicy) -> RetryPlan | None:
    """How to retry after `exc` on the `attempts`-th try, or None to fail the item now."""
    if not exc.retryable or attempts >= policy.max_attempts:
        return None
    delay = policy.backoff(attempts)
    if exc.retry_after:
        delay = max(delay, exc.retry_after)
    if isinstance(exc, PairRateLimited):
        return RetryPlan(policy.pair_seconds * attempts, 0.0)
    if isinstance(exc, RateLimited):
        return RetryPlan(delay, delay)
    if isinstance(exc, GraphTransportError) and exc.request_sent:
        return RetryPlan(max(delay, policy.ambiguous_seconds), 0.0)
    return RetryPlan(delay, 0.0)


# -- the lane's database work ----------------------------------------------------------


@dataclass(frozen=True)
class LaneInfo:
    channel_id: int
    phone_number_id: str
    throughput_mps: int
    access_token_encrypted: str | None
    paused: bool


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: int
    conversation_id: int
    attempts: int
    payload: dict[str, Any]

    def request_body(self) -> dict[str, Any]:
        return {**self.payload, "biz_opaque_callback_data": callback_data_for(self.id)}


def lane_info(session: Session, channel_id: int) -> LaneInfo | None:
    channel = session.get(Channel, channel_id)
    if channel is None:
        return None
    return LaneInfo(
        channel_id=channel.id,
        phone_number_id=channel.phone_number_id,
        throughput_mps=channel.throughput_mps,
        access_token_encrypted=channel.access_token_encrypted,
        paused=channel.connection_state in _PAUSED,
    )


def due_channels(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Numbers (of every workspace) with an item ready to send and sending not paused."""
    query = (
        select(OutboxItem.channel_id)
        .join(Channel, Channel.id == OutboxItem.channel_id)
        .where(
            OutboxItem.state == OutboxState.QUEUED.value,
            OutboxItem.next_attempt_at <= (now or utcnow()),
            Channel.connection_state.not_in(_PAUSED),
        )
        .distinct()
    )
    return sorted(session.scalars(query))


def next_due_at(session: Session, channel_id: int) -> dt.datetime | None:
    """When the lane's earliest waiting item becomes due (for sleeping until then)."""
    return session.scalar(
        select(OutboxItem.next_attempt_at)
        .where(
            OutboxItem.channel_id == channel_id,
            OutboxItem.state == OutboxState.QUEUED.value,
        )
        .order_by(OutboxItem.next_attempt_at)
        .limit(1)
    )


def claim(
    session: Session,
    channel_id: int,
    *,
    limit: int,
    busy_conversations: Collection[int] = (),
    now: dt.datetime | None = None,
) -> list[Claimed]:
    """Mark up to `limit` due items SENDING (attempts + 1) for the caller to send once the
    caller commits. Order is (priority, id), but an item never overtakes an earlier queued
    item of its conversation, nor one of its conversation being sent right now."""
    now = now or utcnow()
    earlier = aliased(OutboxItem)
    blocked = exists().where(
        earlier.conversation_id == OutboxItem.conversation_id,
        earlier.id < OutboxItem.id,
        earlier.state == OutboxState.QUEUED.value,
    )
    query = (
        select(OutboxItem, Message.wamid)
        .join(Message, Message.id == OutboxItem.message_id)
        .where(
            OutboxItem.channel_id == channel_id,
            OutboxItem.state == OutboxState.QUEUED.value,
            OutboxItem.next_attempt_at <= now,
            ~blocked,
        )
        .order_by(OutboxItem.priority, OutboxItem.id)
        .limit(limit + len(busy_conversations))
    )
    claimed: list[Claimed] = []
    for item, wamid in session.execute(query).all():
        if len(claimed) >= limit:
            break
        if item.conversation_id in busy_conversations:
            continue
        if wamid is not None:
            # A status webhook already told us Meta has it (a send whose answer was lost).
            _settle_as_sent(session, item)
            continue
        # The state guard makes a concurrent cancel or resend win cleanly.
        result = session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id, OutboxItem.state == OutboxState.QUEUED.value)
            .values(
                state=OutboxState.SENDING.value,
                attempts=OutboxItem.attempts + 1,
                # While SENDING, next_attempt_at is when this attempt started.
                next_attempt_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue
        session.execute(
            update(Message)
            .where(Message.id == item.message_id)
            .values(status=MessageStatus.SENDING.value, status_at=now)
        )
        claimed.append(
            Claimed(
                id=item.id,
                message_id=item.message_id,
                conversation_id=item.conversation_id,
                attempts=item.attempts + 1,
                payload=dict(item.payload),
            )
        )
    return claimed


def _settle_as_sent(session: Session, item: OutboxItem) -> None:
    item.state = OutboxState.SENT.value
    item.sent_at = item.sent_at or utcnow()


def record_sent(session: Session, item_id: int, wamid: str) -> None:
    """Meta accepted the send: keep its wamid; statuses never move backwards."""
    item = session.get(OutboxItem, item_id)
    if item is None:
        return
    message = session.get(Message, item.message_id)
    item.state = OutboxState.SENT.value
    item.sent_at = item.sent_at or utcnow()
    item.last_error = None
    item.error_code = None
    if message is None:
        return
    if message.wamid is None:
        message.wamid = wamid
    rank = STATUS_RANK.get(MessageStatus(message.status), -1)
    if rank < STATUS_RANK[MessageStatus.SENT]:
        set_message_status(session, message, MessageStatus.SENT)
    # "delivered" or "read" may have arrived before this answer was recorded.
    session.flush()
    apply_pending_statuses(session, [wamid])


def record_retry(session: Session, item_id: int, exc: GraphError, delay: float) -> None:
    item = session.get(OutboxItem, item_id)
    if item is None or item.state != OutboxState.SENDING.value:
        return
    item.state = OutboxState.QUEUED.value
    item.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    item.last_error = exc.reason
    item.error_code = exc.code
    message = session.get(Message, item.message_id)
    if message is not None and message.wamid is None:
        message.status = MessageStatus.QUEUED.value
        message.status_at = utcnow()
        # Shown while it waits, so people see why it has not gone yet.
        message.error = {**exc.as_dict(), "will_retry": True}


def record_failed(session: Session, item_id: int, exc: GraphError, *, gave_up: bool) -> None:
    item = session.get(OutboxItem, item_id)
    if item is None or item.state != OutboxState.SENDING.value:
        return
    reason = exc.reason
    if gave_up:
        reason = f"gave up after {item.attempts} attempts: {reason}"
    item.state = OutboxState.FAILED.value
    item.last_error = reason
    item.error_code = exc.code
    message = session.get(Message, item.message_id)
    if message is not None and message.wamid is None:
        set_message_status(
            session, message, MessageStatus.FAILED, {**exc.as_dict(), "reason": reason}
        )
        if exc.code == 131050:
            # The user stopped marketing messages: record the opt-out on the contact.
            record_optout_from_meta(session, message)
