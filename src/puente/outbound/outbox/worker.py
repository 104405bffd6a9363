"""The outbox worker: runs one lane per phone number on an asyncio loop in its own thread.

A lane is owned by one worker at a time (a PostgreSQL advisory lock per channel; on
SQLite the single process owns them all), so pacing at the number's throughput holds
across processes. Database calls run in threads; Graph calls run concurrently, at most
one in flight per conversation so a conversation's messages keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import httpx
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from puente import metrics
from puente.db.base import utcnow
from puente.db.session import Database
from puente.events import ChannelUpdated, bus
from puente.jobs import OUTBOX, Worker
from puente.jobs import install as install_worker
from puente.outbound.outbox import uploads
from puente.outbound.outbox.lanes import (
    Claimed,
    LaneInfo,
    Pacer,
    RetryPolicy,
    claim,
    due_channels,
    hand,
    lane_info,
    next_due_at,
    plan_retry,
    record_failed,
    record_retry,
    record_sent_many,
    release_claims,
)
from puente.runtime import Runtime
from puente.whatsapp.client import GraphClient
from puente.whatsapp.errors import GraphError, GraphTransportError, PairRateLimited, RateLimited

log = logging.getLogger(__name__)

T = TypeVar("T")

# Advisory-lock keys are one bigint: a namespace in the high bits keeps ours apart from
# other parts' locks, the channel id fills the low 48 bits.
_LOCK_NAMESPACE = 0x0B0C << 48
# How far ahead a lane claims, and how far ahead of its pacing slot an item is marked
# "handed to HTTP". A crash leaves the handed-but-unanswered items "unknown" for a status
# webhook or a person, so the hand window stays short; the claim window only has to
# cover a step's database round trip.
_CLAIM_AHEAD_SECONDS = 0.2
_HAND_AHEAD_SECONDS = 0.05
_MAX_HAND_AHEAD_SECONDS = 0.25
# A lane writes at most one step (one transaction) per tick.
_TICK_SECONDS = 0.02
_INFO_SECONDS = 1.0  # how often a lane re-reads its number (paused? new throughput?)
_MAX_IN_FLIGHT = 256


# On SQLite one process owns every lane; this keeps two workers of that process (say, a
# test's and the app's) from running the same lane side by side.
_LOCAL_LANES: set[tuple[str, int]] = set()
_LOCAL_MUTEX = threading.Lock()


class LaneLocks:
    """Who owns which lane. PostgreSQL: a session-level advisory lock held on a dedicated
    connection for as long as the lane runs; it is freed if this process dies. SQLite:
    a set in this process."""

    def __init__(self, db: Database) -> None:
        self._db_key = str(db.engine.url)
        self._engine: Engine | None = (
            create_engine(db.engine.url, poolclass=NullPool) if db.is_postgres else None
        )
        self._held: dict[int, Connection] = {}
        self._local: set[int] = set()
        self._mutex = threading.Lock()

    def try_acquire(self, channel_id: int) -> bool:
        if self._engine is None:
            with _LOCAL_MUTEX:
                if (self._db_key, channel_id) in _LOCAL_LANES:
                    return False
                _LOCAL_LANES.add((self._db_key, channel_id))
                self._local.add(channel_id)
            return True
        conn = self._engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_NAMESPACE | channel_id}
            ).scalar()
            conn.commit()  # the lock is session-level: it outlives this transaction
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        with self._mutex:
            self._held[channel_id] = conn
        return True

    def still_held(self, channel_id: int) -> bool:
        """False if the lock's connection broke (another process may own the lane now)."""
        if self._engine is None:
            return channel_id in self._local
        with self._mutex:
            conn = self._held.get(channel_id)
        if conn is None:
            return False
        try:
            conn.execute(text("SELECT 1"))
            conn.commit()
        except Exception:
            return False
        return True

    def release(self, channel_id: int) -> None:
        if self._engine is None:
            with _LOCAL_MUTEX:
                if channel_id in self._local:
                    self._local.discard(channel_id)
                    _LOCAL_LANES.discard((self._db_key, channel_id))
            return
        with self._mutex:
            conn = self._held.pop(channel_id, None)
        if conn is None:
            return
        try:
            conn.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_NAMESPACE | channel_id}
            )
            conn.commit()
        except Exception:
            log.warning("could not release the lane lock of channel %s", channel_id)
        finally:
            conn.close()

    def close(self) -> None:
        with self._mutex:
            held = [*self._held, *self._local]
        for channel_id in held:
            self.release(channel_id)
        if self._engine is not None:
            self._engine.dispose()


class Lane:
    """One number's sender; ends when it has nothing queued.

    Each step is one transaction: record the answers that came back, mark "handed" the
    claimed items whose pacing slot is near, and claim a little more. Claims reach only
    `_CLAIM_AHEAD_SECONDS` ahead and hands `_HAND_AHEAD_SECONDS` (more on a slow
    database), so a crash leaves few items handed but unanswered (shown "unknown" unless
    a status webhook settles them); claimed-but-unhanded ones go back to the queue by
    themselves.
    """

    def __init__(self, worker: OutboxWorker, channel_id: int) -> None:
        self.worker = worker
        self.channel_id = channel_id
        self.pacer = Pacer(1)
        self.in_flight: dict[int, asyncio.Task[None]] = {}  # by conversation id
        self.claimed: list[Claimed] = []  # not handed yet, in (priority, id) order
        self.sent: list[tuple[Claimed, str]] = []  # answers waiting to be recorded
        self.settled: list[Callable[[Session], None]] = []  # errors waiting to be recorded
        self.paused_until = 0.0  # monotonic; set when Meta says we are too fast
        self._poke = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._client: GraphClient | None = None
        self._token: str | None = None
        self._info: LaneInfo | None = None
        self._info_at = float("-inf")
        self._lock_checked = time.monotonic()
        self._step_seconds = 0.0  # how long the last step's transaction took

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    def poke(self) -> None:
        self._poke.set()

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poke.wait(), timeout=seconds)
        self._poke.clear()

    def _client_for(self, info: LaneInfo) -> GraphClient:
        token = info.access_token_encrypted
        if self._client is None or token != self._token:
            if self._client is not None:
                asyncio.get_running_loop().create_task(self._client.aclose())
            settings = self.worker.runtime.settings
            secret = self.worker.runtime.secrets.decrypt(token) if token else ""
            # One keep-alive connection per request in flight: at hundreds a second a
            # new TCP connection per request would cost more than the request.
            pool = _max_in_flight(info.throughput_mps)
            self._client = GraphClient(
                settings.graph_base_url,
                settings.graph_api_version,
                secret,
                timeout=self.worker.timeout,
                limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            )
            self._token = token
        return self._client

    async def run(self) -> None:
        try:
            # Holding the lane's lock, claims left unhanded by an earlier owner are
            # provably unsent (and `hand` fences that owner off): queue them again.
            await self.worker.db_call(
                partial(release_claims, channel_id=self.channel_id, lapsed_only=False)
            )
            await self._loop()
            if self.in_flight:
                await asyncio.gather(*self.in_flight.values(), return_exceptions=True)
            await self._step(to_hand=[], want=0)
            if self.claimed:
                unhanded = self.claimed
                self.claimed = []
                await self.worker.db_call(
                    partial(release_claims, channel_id=self.channel_id, items=unhanded)
                )
        finally:
            if self._client is not None:
                await self._client.aclose()
            await asyncio.to_thread(self.worker.locks.release, self.channel_id)

    async def _lane_info(self) -> LaneInfo | None:
        if time.monotonic() - self._info_at >= _INFO_SECONDS or self._info is None:
            self._info = await self.worker.db_call(lambda s: lane_info(s, self.channel_id))
            self._info_at = time.monotonic()
        return self._info

    async def _loop(self) -> None:
        worker = self.worker
        while not worker.stopping:
            info = await self._lane_info()
            if info is None or info.paused:
                return  # deleted, offboarded or disconnected: the main loop restarts us
            if not await self._still_owned():
                return
            client = self._client_for(info)
            self.pacer.set_rate(info.throughput_mps)
            step_at = time.monotonic()
            if step_at < self.paused_until:
                await self._step(to_hand=[], want=0)
                await self._wait(min(_TICK_SECONDS * 5, self.paused_until - step_at))
                continue
            to_hand = self._due_for_hand(info, step_at)
            want = max(1, math.ceil(info.throughput_mps * _CLAIM_AHEAD_SECONDS)) - len(self.claimed)
            if self.claimed and not to_hand and not self.sent and not self.settled:
                want = 0  # enough claimed; nothing to write: just wait for the next slot
            handed = await self._step(to_hand=[i for i, _ in to_hand], want=want)
            if handed is None:
                await self._wait(worker.poll_seconds)  # the database failed; try again
                continue
            for item, slot in to_hand:
                if item.id in handed:
                    self.in_flight[item.conversation_id] = asyncio.create_task(
                        self._send(client, info, item, slot)
                    )
            if not self.claimed and not self.in_flight and not to_hand:
                due = await worker.db_call(lambda s: next_due_at(s, self.channel_id))
                if due is None:
                    return  # nothing queued: free the lane
                wait = (due - utcnow()).total_seconds()
                await self._wait(min(worker.poll_seconds, max(wait, 0.001)))
                continue
            await self._wait(self._until_next_step(step_at))

    def _due_for_hand(self, info: LaneInfo, now: float) -> list[tuple[Claimed, float]]:
        """The claimed items whose pacing slots fall within the hand-ahead window."""
        room = _max_in_flight(info.throughput_mps) - len(self.in_flight)
        picked: list[tuple[Claimed, float]] = []
        while self.claimed and len(picked) < room:
            if self.pacer.peek(now) > now + self._hand_ahead():
                break
            picked.append((self.claimed.pop(0), self.pacer.reserve(now)))
        return picked

    def _hand_ahead(self) -> float:
        # A slot must not pass while its step is still writing: on a slow database the
        # window grows with the step's time (and so do the items a crash can strand).
        return min(_MAX_HAND_AHEAD_SECONDS, max(_HAND_AHEAD_SECONDS, 2 * self._step_seconds))

    def _until_next_step(self, step_at: float) -> float:
        now = time.monotonic()
        wait = self.worker.poll_seconds
        if self.claimed:
            wait = self.pacer.peek(now) - self._hand_ahead() / 2 - now
        if self.in_flight or self.sent or self.settled:
            wait = min(wait, _TICK_SECONDS)
        # Never more than one step per tick: each step is a transaction.
        return max(wait, step_at + _TICK_SECONDS - now)

    async def _step(self, *, to_hand: list[Claimed], want: int) -> set[int] | None:
        """Record the answers, hand `to_hand`, claim up to `want` more: one transaction.
        Returns the ids handed (None when the transaction failed: nothing was handed)."""
        sent, settled = self.sent, self.settled
        if not (sent or settled or to_hand or want > 0):
            return set()
        busy = set(self.in_flight) | {i.conversation_id for i in self.claimed}
        busy |= {i.conversation_id for i in to_hand}
        self.sent, self.settled = [], []

        def work(session: Session) -> tuple[set[int], list[Claimed]]:
            record_sent_many(session, sent)
            for fn in settled:
                fn(session)
            handed = hand(session, to_hand)
            claimed = claim(session, self.channel_id, limit=want, busy_conversations=busy)
            return handed, claimed

        try:
            began = time.monotonic()
            handed, claimed = await self.worker.db_call(work)
            self._step_seconds = time.monotonic() - began
        except Exception:
            log.exception("outbox lane %s: a step failed; retrying", self.channel_id)
            # Nothing of it was committed: the answers wait for the next step, the items
            # to hand stay claimed (their slots are spent; that only slows the lane).
            self.sent, self.settled = sent + self.sent, settled + self.settled
            self.claimed = sorted([*to_hand, *self.claimed], key=_order)
            return None
        if claimed:
            self.claimed = sorted([*self.claimed, *claimed], key=_order)
        return handed

    async def _still_owned(self) -> bool:
        if time.monotonic() - self._lock_checked < 5:
            return True
        self._lock_checked = time.monotonic()
        owned = await asyncio.to_thread(self.worker.locks.still_held, self.channel_id)
        if not owned:
            log.warning("lost the lane lock of channel %s; stopping its lane", self.channel_id)
        return owned

    async def _send(self, client: GraphClient, info: LaneInfo, item: Claimed, slot: float) -> None:
        try:
            placeholder = uploads.placeholder_of(item)
            if placeholder is not None:
                item = await self._upload(client, info, item, placeholder)
            # Never before the slot: uvloop's timers count whole milliseconds and may
            # wake a send up to 1 ms early.
            delay = slot - time.monotonic()
            while delay > 0:
                await asyncio.sleep(delay)
                delay = slot - time.monotonic()
            mark = self.pacer.started(slot)  # as late as possible: Meta counts arrivals
            heard = False
            try:
                result = await client.send_message(info.phone_number_id, item.request_body())
                heard = True
            except GraphError as exc:
                heard = not isinstance(exc, GraphTransportError)  # else no answer came
                raise
            finally:
                self.pacer.answered(mark, heard=heard)
        except GraphError as exc:
            self._settle_error(item, exc)
        except Exception:
            # Not an answer from Meta: whether it was sent is unknown, so the item stays
            # SENDING (handed) for a status webhook or a person to settle.
            log.exception("outbox item %s: unexpected error while sending", item.id)
        else:
            self.sent.append((item, result.wamid))
        finally:
            self.in_flight.pop(item.conversation_id, None)

    async def _upload(
        self, client: GraphClient, info: LaneInfo, item: Claimed, placeholder: str
    ) -> Claimed:
        """Upload an attachment's file; returns the claim to send, by Meta's media id."""
        upload = await self.worker.db_call(lambda s: uploads.load_upload(s, item, placeholder))
        data = await asyncio.to_thread(upload.read, self.worker.runtime.settings.data_dir)
        media_id = await client.upload_media(
            info.phone_number_id, data, mime_type=upload.mime_type, filename=upload.filename
        )
        self.settled.append(
            partial(uploads.record_uploaded, item=item, placeholder=placeholder, media_id=media_id)
        )
        return uploads.with_media_id(item, placeholder, media_id)

    def _settle_error(self, item: Claimed, exc: GraphError) -> None:
        metrics.meta_error(exc.code)
        plan = plan_retry(exc, item.attempts, self.worker.policy)
        if plan is None:
            log.info("outbox item %s failed: %s", item.id, exc.reason)
            self.settled.append(
                partial(record_failed, item_id=item.id, exc=exc, gave_up=exc.retryable)
            )
            return
        if isinstance(exc, RateLimited) and not isinstance(exc, PairRateLimited):
            self.pacer.refused()
        if plan.lane_pause:
            self.paused_until = max(self.paused_until, time.monotonic() + plan.lane_pause)
        self.settled.append(partial(record_retry, item_id=item.id, exc=exc, delay=plan.item_delay))


def _order(item: Claimed) -> int:
    # A stable sort on priority alone: within a priority, items keep the order they were
    # claimed in (the claim's own order: due time, then id).
    return item.priority


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where installed (uvicorn[standard] brings it): its loop,
    timers and sockets are C, which takes about a tenth off a send's CPU at hundreds of
    sends a second. Otherwise asyncio's own (None)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _max_in_flight(rate: int) -> int:
    # About half a second of sends: enough for slow answers at any rate, bounded so a
    # big lane does not open hundreds of connections.
    return max(8, min(_MAX_IN_FLIGHT, rate // 2))


class OutboxWorker(Worker):
    """Finds numbers with due items and runs their lanes until stopped. The OUTBOX
    queue wakes it; its loop is its own (an asyncio loop running a lane per number, see
    `_main`), as pacing needs more than a step that claims and returns."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_seconds: float | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.poll_seconds = poll_seconds or runtime.settings.worker_poll_seconds
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.stop_grace = stop_grace
        self.locks = LaneLocks(runtime.db)
        self.lanes: dict[int, Lane] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        super().__init__("outbox", OUTBOX, lambda: False, idle_seconds=self.poll_seconds)
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._unsubscribe = bus.subscribe(ChannelUpdated, self._on_channel_updated)
        super().start()

    def stop(self, grace: float | None = None) -> None:
        if grace is not None:
            self.stop_grace = grace
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        super().stop()
        self.wake()

    def wake(self) -> None:
        self._wake.set()
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(kick.set)

    def _on_channel_updated(self, _event: ChannelUpdated) -> None:
        # A number reconnected (or changed throughput): its lane may go again.
        self.wake()

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(self._main())

    # -- database calls from the loop ---------------------------------------------------

    async def db_call(self, fn: Callable[[Session], T]) -> T:
        def work() -> T:
            # A lane's number belongs to one workspace, but the lanes, their ownership and
            # recovery are looked after for every number at once.
            with self.runtime.db.unit_of_work(
                unscoped="the outbox lanes serve every workspace"
            ) as session:
                return fn(session)

        return await asyncio.to_thread(work)

    # -- the main loop ------------------------------------------------------------------

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        try:
            while not self.stopping:
                self.beat()
                await self._start_due_lanes()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout=self.poll_seconds)
                self._kick.clear()
        finally:
            await self._shutdown()
            self._loop = None
            await asyncio.to_thread(self.locks.close)

    async def _start_due_lanes(self) -> None:
        try:
            due = await self.db_call(lambda s: due_channels(s))
        except Exception:
            log.exception("outbox: cannot look for due messages")
            return
        for channel_id in due:
            lane = self.lanes.get(channel_id)
            if lane is not None and not lane.done:
                lane.poke()
                continue
            try:
                owned = await asyncio.to_thread(self.locks.try_acquire, channel_id)
            except Exception:
                log.exception("outbox: cannot take the lane of channel %s", channel_id)
                continue
            if not owned:
                continue  # another worker process runs this lane
            lane = Lane(self, channel_id)
            lane.task = asyncio.create_task(lane.run(), name=f"outbox-lane-{channel_id}")
            self.lanes[channel_id] = lane
        for channel_id in [c for c, lane in self.lanes.items() if lane.done]:
            self.lanes.pop(channel_id)

    async def _shutdown(self) -> None:
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        for lane in self.lanes.values():
            lane.poke()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.stop_grace)
        # Past the grace period, sends still open are abandoned exactly as a crash would
        # leave them: SENDING, for a status webhook or a person to settle.
        for task in pending:
            task.cancel()
        for lane in self.lanes.values():
            for send in list(lane.in_flight.values()):
                send.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.lanes.clear()


def install(runtime: Runtime) -> OutboxWorker:
    """Register the outbox worker with the process's background workers."""
    worker = OutboxWorker(runtime)
    install_worker(runtime, worker)
    return worker
