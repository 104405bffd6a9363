"""A lane is one phone number's queue: what it may send next, pacing, and the bookkeeping
around each send (claim before, record after, retry or fail on Meta's errors).

Everything here is synchronous and database-facing; `puente.outbound.outbox.worker` runs the
lanes, owns them across processes and makes the HTTP calls.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, exists, func, literal, select, tuple_, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from puente import metrics
from puente.channels.models import SENDING_PAUSED_STATES, Channel
from puente.contacts.consent import record_optout_from_meta
from puente.conversations.models import Message, MessageStatus, StatusEvent
from puente.conversations.statuses import apply_pending_statuses
from puente.db.base import utcnow
from puente.events import MessageStatusChanged, publish
from puente.jobs import Backoff
from puente.outbound.models import OutboxItem, OutboxState
from puente.outbound.outbox.service import callback_data_for, set_message_status
from puente.whatsapp.errors import (
    GraphError,
    GraphTransportError,
    PairRateLimited,
    RateLimited,
)

_PAUSED = [s.value for s in SENDING_PAUSED_STATES]
# The lane's hot path works on the tables (Core), not on ORM objects: at hundreds of sends
# a second, loading and flushing rows one by one was most of a send's cost.
_OUTBOX = cast(Table, OutboxItem.__table__)
_MESSAGES = cast(Table, Message.__table__)
_O = _OUTBOX.c
_M = _MESSAGES.c
_S = cast(Table, StatusEvent.__table__).c
_C = cast(Table, Channel.__table__).c


# -- pacing ----------------------------------------------------------------------------


class Pacer:
    """Never more than `rate` sends in any one-second window, on an absolute schedule.

    Send i of a run is due at t0 + i * (1 + min_margin) / rate: a send that left late does
    not push the ones after it, so a lane that keeps up holds the rate. Meta (and the
    sandbox's limiter) count a request when it arrives, some time after it left and
    before its answer came back. So a send also waits until one second has passed since
    the send `rate` places before it reached Meta, which is known to be no later than its
    answer: send i + rate goes no earlier than 1 s after answer i. That costs a round
    trip per window only when answers are quicker than the margin (on a nearby server,
    1 to 5 ms); when they are slower (or not back yet) the pacer takes the send's start
    plus `margin` instead: the margin follows the spread of recent answer times, between
    `min_margin` and `max_margin`, as an estimate of how unevenly requests reach Meta.
    Either way a pair costs at most its own round trip. Any `rate` + 1 sends span some
    send and the one `rate` places after it, so keeping every such pair a second apart
    on Meta's clock keeps every window at `rate`.
    """

    def __init__(self, rate: float, *, min_margin: float = 0.005, max_margin: float = 0.5) -> None:
        self.rate = max(1, int(rate))
        self.min_margin = min_margin
        self.max_margin = max_margin
        self.margin = min_margin
        # The last `rate` sends, in the order their slots were reserved: when each
        # started (its slot until it does) and when its answer came (inf until then).
        self._started: collections.deque[float] = collections.deque(maxlen=self.rate)
        self._heard: collections.deque[float] = collections.deque(maxlen=self.rate)
        self._latencies: collections.deque[float] = collections.deque(maxlen=self.rate)
        self._next: float | None = None
        self._margin_at = float("-inf")

    def _scheduled(self, now: float) -> float:
        return now if self._next is None or now - self._next > 1.0 else self._next

    def peek(self, now: float | None = None) -> float:
        """The slot `reserve` would give now."""
        now = time.monotonic() if now is None else now
        at = self._scheduled(now)
        if len(self._started) == self.rate:
            # When the send `rate` places back reached Meta, at the latest.
            reached = min(self._heard[0], self._started[0] + self.margin)
            at = max(at, reached + 1.0)
        return at

    def reserve(self, now: float | None = None) -> float:
        """Reserve the next slot; returns the monotonic time at which to send (it may be
        in the past when the lane runs behind: send at once). After an idle spell, or
        more than a window behind, a new run starts at `now`. A send held back by the
        one `rate` places before it does not hold back the schedule of the next."""
        now = time.monotonic() if now is None else now
        at = self.peek(now)
        self._started.append(at)
        self._heard.append(math.inf)
        self._next = self._scheduled(now) + (1.0 + self.min_margin) / self.rate
        return at

    def _find(self, start: float) -> int:
        """The newest send that started at `start` and has no answer yet (-1: none)."""
        started, heard = self._started, self._heard
        for i in range(len(started) - 1, -1, -1):
            if started[i] == start and heard[i] == math.inf:
                return i
        return -1

    def started(self, slot: float, now: float | None = None) -> float:
        """The send reserved at `slot` really started at `now` (later, perhaps).
        Returns the mark to pass to `answered`."""
        now = time.monotonic() if now is None else now
        if now <= slot:
            return slot
        i = self._find(slot)
        if i >= 0:
            self._started[i] = now
        return now

    def answered(self, mark: float, now: float | None = None, *, heard: bool = True) -> None:
        """The send that started at `mark` is over: its round trip feeds the margin, and
        if Meta answered it (`heard`; not when the connection failed) the answer's time
        bounds when it arrived."""
        now = time.monotonic() if now is None else now
        self._latencies.append(max(0.0, now - mark))
        if heard:
            i = self._find(mark)
            if i >= 0:
                self._heard[i] = now
        if now - self._margin_at >= 0.1:  # a scan per answer would cost O(rate) each
            self._margin_at = now
            spread = max(self._latencies) - min(self._latencies)
            self.margin = min(self.max_margin, max(self.min_margin, spread))

    def refused(self) -> None:
        """Meta said too fast (130429) all the same: widen the margin at once (the
        schedule's slack too, up to a tenth of a second per second)."""
        widened = min(self.max_margin, 0.1, self.min_margin * 2)
        self.min_margin = max(self.min_margin, widened)
        self.margin = max(self.margin, self.min_margin)

    def set_rate(self, rate: float) -> None:
        if max(1, int(rate)) != self.rate:
            started, heard = list(self._started), list(self._heard)
            self.rate = max(1, int(rate))
            self._started = collections.deque(started[-self.rate :], maxlen=self.rate)
            self._heard = collections.deque(heard[-self.rate :], maxlen=self.rate)
            self._latencies = collections.deque(self._latencies, maxlen=self.rate)


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
        # The jitter spreads retries apart.
        return Backoff(self.base_seconds, self.max_seconds, jitter=(0.8, 1.2)).delay(attempts)


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
    priority: int
    # The stored request body as JSON text: the send splices the callback data into it
    # instead of decoding and encoding every payload.
    payload_json: str
    # What the message's status event carries, read with the claim so that recording a
    # send needs no ORM load.
    message_event: dict[str, Any]
    workspace_id: int

    def request_body(self) -> bytes:
        """The Graph request: the payload with `biz_opaque_callback_data` (the outbox id)."""
        callback = json.dumps(callback_data_for(self.id))
        text = self.payload_json.rstrip()
        if text.endswith("}") and '"biz_opaque_callback_data"' not in text:
            inner = text[:-1].rstrip()
            comma = "" if inner.endswith("{") else ","
            return f'{inner}{comma}"biz_opaque_callback_data":{callback}}}'.encode()
        payload = {**json.loads(text), "biz_opaque_callback_data": callback_data_for(self.id)}
        return json.dumps(payload, separators=(",", ":")).encode()


# A claimed item not handed to HTTP within this long may belong to a lane that is gone:
# its number is then due, so that a worker takes the lane (if nobody holds it) and puts
# the claim back in the queue. A live lane holds a claim for about a tenth of a second;
# were it stalled past this, `hand` still fences it off, so nothing is sent twice.
CLAIM_LEASE = dt.timedelta(seconds=5)


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


def _lapsed_claims(now: dt.datetime) -> Any:
    return (
        (_O.state == OutboxState.SENDING.value)
        & _O.handed_at.is_(None)
        & (_O.next_attempt_at <= now - CLAIM_LEASE)
    )


def due_channels(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Numbers (of every workspace) with an item ready to send, or a lapsed claim to put
    back, and sending not paused."""
    now = now or utcnow()
    # Per number, two probes of the lane index. Joining the outbox to the channels read
    # the whole index (sent items too) at every poll: 5 ms with 20,000 items, growing
    # with the table.
    ready = exists().where(
        _O.channel_id == _C.id,
        _O.state == OutboxState.QUEUED.value,
        _O.next_attempt_at <= now,
    )
    lapsed = exists().where(_O.channel_id == _C.id, _lapsed_claims(now))
    query = select(_C.id).where(_C.connection_state.not_in(_PAUSED), ready | lapsed)
    return sorted(session.connection().execute(query).scalars())


def next_due_at(session: Session, channel_id: int) -> dt.datetime | None:
    """When the lane's earliest waiting item becomes due (for sleeping until then)."""
    return session.scalar(
        select(_O.next_attempt_at)
        .where(
            _O.channel_id == channel_id,
            _O.state == OutboxState.QUEUED.value,
        )
        .order_by(_O.next_attempt_at)
        .limit(1)
    )


def release_claims(
    session: Session,
    channel_id: int,
    *,
    items: Collection[Claimed] | None = None,
    lapsed_only: bool = True,
    now: dt.datetime | None = None,
) -> int:
    """Put claimed items that were never handed to HTTP back in the queue: `items` (a
    lane's own, when it stops), else the channel's lapsed claims (all of its unhanded
    claims with `lapsed_only=False`, for a lane that just took the lock). Safe whatever
    the old claimant does next: `hand` only hands an item still SENDING, unhanded and at
    the attempt it claimed. Returns how many went back."""
    now = now or utcnow()
    query = update(_OUTBOX).where(
        _O.channel_id == channel_id,
        _O.state == OutboxState.SENDING.value,
        _O.handed_at.is_(None),
    )
    if items is None:
        if lapsed_only:
            query = query.where(_O.next_attempt_at <= now - CLAIM_LEASE)
    else:
        if not items:
            return 0
        query = query.where(
            _O.id.in_([i.id for i in items]),  # see `_HAND`
            tuple_(_O.id, _O.attempts).in_([(i.id, i.attempts) for i in items]),
        )
    ids = list(
        session.scalars(
            query.values(state=OutboxState.QUEUED.value, next_attempt_at=now).returning(
                _O.message_id
            )
        )
    )
    if ids:
        session.execute(
            update(_MESSAGES)
            .where(_M.id.in_(ids), _M.status == MessageStatus.SENDING.value)
            .values(status=MessageStatus.QUEUED.value, status_at=now)
        )
    return len(ids)


# The claim's statements, built once: at a step every 20 ms, building them and their
# cache keys (the alias above all) cost more than running them.
_EARLIER = _OUTBOX.alias("earlier").c
_CLAIM_SELECT = (
    select(
        _O.id,
        _O.message_id,
        _O.conversation_id,
        _O.attempts,
        _O.priority,
        sql_cast(_O.payload, Text).label("payload_json"),
        _O.workspace_id,
        _M.wamid,
        _M.channel_id,
        _M.direction,
        _M.source,
        _M.type,
    )
    .join(_MESSAGES, _M.id == _O.message_id)
    .where(
        _O.channel_id == bindparam("b_channel"),
        _O.state == OutboxState.QUEUED.value,
        _O.next_attempt_at <= bindparam("b_now"),
        ~exists().where(
            _EARLIER.conversation_id == _O.conversation_id,
            _EARLIER.id < _O.id,
            _EARLIER.state == OutboxState.QUEUED.value,
        ),
    )
    # The lane index's own order (channel, state, priority, due time, id): the first rows
    # it walks are the ones to send, so the claim reads about `limit` rows. In (priority,
    # id) order it read and sorted every queued item of the number at every step (20 ms
    # of CPU per step with 20,000 queued, growing with the queue).
    .order_by(_O.priority, _O.next_attempt_at, _O.id)
    .limit(bindparam("b_limit"))
)
_CLAIM_UPDATE = (
    update(_OUTBOX)
    .where(_O.id.in_(bindparam("b_ids", expanding=True)), _O.state == OutboxState.QUEUED.value)
    .values(
        state=OutboxState.SENDING.value,
        attempts=_O.attempts + 1,
        handed_at=None,
        # While SENDING, next_attempt_at is when this attempt was claimed.
        next_attempt_at=bindparam("b_now"),
    )
    .returning(_O.id)
)
_MESSAGES_SENDING = (
    update(_MESSAGES)
    .where(_M.id.in_(bindparam("b_ids", expanding=True)))
    .values(status=MessageStatus.SENDING.value, status_at=bindparam("b_now"))
)


def claim(
    session: Session,
    channel_id: int,
    *,
    limit: int,
    busy_conversations: Collection[int] = (),
    now: dt.datetime | None = None,
) -> list[Claimed]:
    """Mark up to `limit` due items SENDING (attempts + 1, not handed yet) for the caller
    to hand over once it commits. Order is (priority, due time, id), but an item never
    overtakes an earlier queued item of its conversation, nor one of its conversation
    being sent."""
    now = now or utcnow()
    # Straight on the transaction's connection: the ORM session's execute adds its own
    # bookkeeping to every statement, and these statements touch no ORM objects. That
    # skips autoflush, so flush first: a retry recorded earlier in this step must be
    # QUEUED in the table to hold back the later items of its conversation.
    session.flush()
    conn = session.connection()
    rows = conn.execute(
        _CLAIM_SELECT,
        {"b_channel": channel_id, "b_now": now, "b_limit": limit + len(busy_conversations)},
    )
    picked: list[Any] = []
    answered: list[int] = []
    for row in rows:
        if len(picked) >= limit:
            break
        if row.conversation_id in busy_conversations:
            continue
        if row.wamid is not None:
            # A status webhook already told us Meta has it (a send whose answer was lost).
            answered.append(row.id)
            continue
        picked.append(row)
    rows.close()
    if answered:
        session.execute(
            update(_OUTBOX)
            .where(_O.id.in_(answered), _O.state == OutboxState.QUEUED.value)
            .values(
                state=OutboxState.SENT.value,
                # Typed as the column, so SQLite stores the same text form as other rows.
                sent_at=func.coalesce(_O.sent_at, literal(now, _O.sent_at.type)),
                last_error=None,
                error_code=None,
            )
        )
    if not picked:
        return []
    # The state guard makes a concurrent cancel or resend win cleanly.
    won = set(
        conn.execute(_CLAIM_UPDATE, {"b_ids": [r.id for r in picked], "b_now": now}).scalars()
    )
    claimed = [_claimed(row) for row in picked if row.id in won]
    if claimed:
        conn.execute(_MESSAGES_SENDING, {"b_ids": [c.message_id for c in claimed], "b_now": now})
    return claimed


def _claimed(row: Any) -> Claimed:
    return Claimed(
        id=row.id,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        attempts=row.attempts + 1,
        priority=row.priority,
        payload_json=row.payload_json,
        workspace_id=row.workspace_id,
        message_event={
            "message_id": row.message_id,
            "conversation_id": row.conversation_id,
            "channel_id": row.channel_id,
            "direction": row.direction,
            "source": row.source,
            "type": row.type,
        },
    )


_HAND = (
    update(_OUTBOX)
    .where(
        # The plain id list lets SQLite probe the primary key: with the (id, attempts)
        # pairs alone it scanned the whole table at every step.
        _O.id.in_(bindparam("b_ids", expanding=True)),
        tuple_(_O.id, _O.attempts).in_(bindparam("b_keys", expanding=True)),
        _O.state == OutboxState.SENDING.value,
        _O.handed_at.is_(None),
    )
    .values(handed_at=bindparam("b_now"))
    .returning(_O.id)
)


def hand(session: Session, items: Collection[Claimed], now: dt.datetime | None = None) -> set[int]:
    """Mark claimed items as handed to HTTP, before any of their requests is written.
    Returns the ids that may be sent: an item whose claim lapsed and went back to the
    queue (or was claimed again) is not this caller's to send any more."""
    if not items:
        return set()
    keys = [(i.id, i.attempts) for i in items]
    params = {"b_ids": [i.id for i in items], "b_keys": keys, "b_now": now or utcnow()}
    session.flush()  # see `claim`
    return set(session.connection().execute(_HAND, params).scalars())


_SENT_OUTBOX = (
    update(_OUTBOX)
    .where(_O.id == bindparam("b_id"), _O.state == OutboxState.SENDING.value)
    .values(
        state=OutboxState.SENT.value,
        sent_at=func.coalesce(_O.sent_at, bindparam("b_now", type_=_O.sent_at.type)),
        last_error=None,
        error_code=None,
    )
    .execution_options(synchronize_session=False)
)
_SENT_WAMID = (
    update(_MESSAGES)
    .where(_M.id == bindparam("b_id"), _M.wamid.is_(None))
    .values(wamid=bindparam("b_wamid"))
    .execution_options(synchronize_session=False)
)
_SENT_STATUS = (
    update(_MESSAGES)
    .where(
        _M.id.in_(bindparam("b_ids", expanding=True)),
        _M.status.in_([MessageStatus.QUEUED.value, MessageStatus.SENDING.value]),
    )
    .values(status=MessageStatus.SENT.value, status_at=bindparam("b_now"), error=None)
    .returning(_M.id)
)

_PENDING_STATUS = (
    select(_S.id)
    .where(_S.wamid.in_(bindparam("b_wamids", expanding=True)), _S.applied.is_(False))
    .limit(1)
)


def record_sent_many(session: Session, sent: Collection[tuple[Claimed, str]]) -> None:
    """Meta accepted these sends (item, wamid): keep the wamids, in one transaction and
    without loading rows; statuses never move backwards."""
    if not sent:
        return
    now = utcnow()
    conn = session.connection()
    conn.execute(_SENT_OUTBOX, [{"b_id": item.id, "b_now": now} for item, _ in sent])
    conn.execute(_SENT_WAMID, [{"b_id": item.message_id, "b_wamid": wamid} for item, wamid in sent])
    moved = set(
        conn.execute(
            _SENT_STATUS, {"b_ids": [item.message_id for item, _ in sent], "b_now": now}
        ).scalars()
    )
    for item, wamid in sent:
        if item.message_id in moved:
            _publish_sent(session, item, wamid, now)
    per_number = collections.Counter(item.message_event["channel_id"] for item, _ in sent)
    for channel_id, count in per_number.items():
        label = metrics.channel_label(channel_id)
        metrics.count_on_commit(session, metrics.get().outbox_sent.labels(channel=label), count)
    # "delivered" or "read" may have arrived before this answer was recorded (rare: a
    # cheap look first, the ORM work only when there is something to apply).
    wamids = [wamid for _, wamid in sent]
    if conn.execute(_PENDING_STATUS, {"b_wamids": wamids}).first() is not None:
        apply_pending_statuses(session, wamids)


def _publish_sent(session: Session, item: Claimed, wamid: str, at: dt.datetime) -> None:
    # Built from the claim's columns, as the send is recorded without loading the message.
    event = MessageStatusChanged(
        workspace_id=item.workspace_id,
        wamid=wamid,
        status=MessageStatus.SENT.value,
        at=at,
        **item.message_event,
    )
    publish(session, event)


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
    failed = metrics.get().outbox_failed.labels(channel=metrics.channel_label(item.channel_id))
    metrics.count_on_commit(session, failed)
    message = session.get(Message, item.message_id)
    if message is not None and message.wamid is None:
        set_message_status(
            session, message, MessageStatus.FAILED, {**exc.as_dict(), "reason": reason}
        )
        if exc.code == 131050:
            # The user stopped marketing messages: record the opt-out on the contact.
            record_optout_from_meta(session, message)
