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

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from puente.db.base import utcnow
from puente.db.session import Database
from puente.events import DomainEvent, bus
from puente.outbound.lanes import (
    Claimed,
    LaneInfo,
    Pacer,
    RetryPolicy,
    claim,
    due_channels,
    lane_info,
    next_due_at,
    plan_retry,
    record_failed,
    record_retry,
    record_sent,
)
from puente.outbound.service import register_worker
from puente.runtime import BackgroundWorker, Runtime
from puente.whatsapp.client import GraphClient
from puente.whatsapp.errors import GraphError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Advisory-lock keys are one bigint: a namespace in the high bits keeps ours apart from
# other parts' locks, the channel id fills the low 48 bits.
_LOCK_NAMESPACE = 0x0B0C << 48
# How far ahead a lane claims: the sends due in the next 50 ms. Claimed-but-unsent items
# are what a crash leaves as "unknown", so this stays small.
_CLAIM_AHEAD_SECONDS = 0.05
_MAX_IN_FLIGHT = 100
_RECORD_ATTEMPTS = 3


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
    """One number's sender: claim, pace, send, record; ends when it has nothing queued."""

    def __init__(self, worker: OutboxWorker, channel_id: int) -> None:
        self.worker = worker
        self.channel_id = channel_id
        self.pacer = Pacer(1)
        self.in_flight: dict[int, asyncio.Task[None]] = {}  # by conversation id
        self.paused_until = 0.0  # monotonic; set when Meta says we are too fast
        self._poke = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._client: GraphClient | None = None
        self._token: str | None = None
        self._lock_checked = time.monotonic()

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
            self._client = GraphClient(
                settings.graph_base_url,
                settings.graph_api_version,
                secret,
                timeout=self.worker.timeout,
            )
            self._token = token
        return self._client

    async def run(self) -> None:
        try:
            await self._loop()
            if self.in_flight:
                await asyncio.gather(*self.in_flight.values(), return_exceptions=True)
        finally:
            if self._client is not None:
                await self._client.aclose()
            await asyncio.to_thread(self.worker.locks.release, self.channel_id)

    async def _loop(self) -> None:
        worker = self.worker
        while not worker.stopping:
            info = await worker.db_call(lambda s: lane_info(s, self.channel_id))
            if info is None or info.paused:
                return  # deleted, offboarded or disconnected: the main loop restarts us
            if not await self._still_owned():
                return
            client = self._client_for(info)
            self.pacer.set_rate(info.throughput_mps)
            now = time.monotonic()
            if now < self.paused_until:
                await self._wait(self.paused_until - now)
                continue
            room = min(_MAX_IN_FLIGHT, max(1, info.throughput_mps)) - len(self.in_flight)
            if room <= 0:
                await self._wait(worker.poll_seconds)
                continue
            batch = max(1, min(room, math.ceil(info.throughput_mps * _CLAIM_AHEAD_SECONDS)))
            busy = set(self.in_flight)
            items = await worker.db_call(
                partial(claim, channel_id=self.channel_id, limit=batch, busy_conversations=busy)
            )
            if not items:
                if self.in_flight:
                    await self._wait(worker.poll_seconds)
                    continue
                due = await worker.db_call(lambda s: next_due_at(s, self.channel_id))
                if due is None:
                    return  # nothing queued: free the lane
                wait = (due - utcnow()).total_seconds()
                await self._wait(min(worker.poll_seconds, max(wait, 0.001)))
                continue
            for item in items:
                slot = self.pacer.reserve()
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.in_flight[item.conversation_id] = asyncio.create_task(
                    self._send(client, info, item, slot)
                )

    async def _still_owned(self) -> bool:
        if time.monotonic() - self._lock_checked < 5:
            return True
        self._lock_checked = time.monotonic()
        owned = await asyncio.to_thread(self.worker.locks.still_held, self.channel_id)
        if not owned:
            log.warning("lost the lane lock of channel %s; stopping its lane", self.channel_id)
        return owned

    async def _send(self, client: GraphClient, info: LaneInfo, item: Claimed, slot: float) -> None:
        worker = self.worker
        mark = self.pacer.started(slot)  # as late as possible: Meta counts arrivals
        try:
            try:
                result = await client.send_message(info.phone_number_id, item.request_body())
            finally:
                self.pacer.answered(mark)
        except GraphError as exc:
            await self._settle_error(item, exc)
        except Exception:
            # Not an answer from Meta: whether it was sent is unknown, so the item stays
            # SENDING for a status webhook or a person to settle.
            log.exception("outbox item %s: unexpected error while sending", item.id)
        else:
            await worker.record(partial(record_sent, item_id=item.id, wamid=result.wamid))
        finally:
            self.in_flight.pop(item.conversation_id, None)
            self._poke.set()

    async def _settle_error(self, item: Claimed, exc: GraphError) -> None:
        plan = plan_retry(exc, item.attempts, self.worker.policy)
        if plan is None:
            log.info("outbox item %s failed: %s", item.id, exc.reason)
            await self.worker.record(
                partial(record_failed, item_id=item.id, exc=exc, gave_up=exc.retryable)
            )
            return
        if plan.lane_pause:
            self.paused_until = max(self.paused_until, time.monotonic() + plan.lane_pause)
        await self.worker.record(
            partial(record_retry, item_id=item.id, exc=exc, delay=plan.item_delay)
        )


class OutboxWorker(BackgroundWorker):
    """Finds numbers with due items and runs their lanes until stopped."""

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
        super().__init__("outbox", lambda: False, self.poll_seconds)
        register_worker(self)
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._unsubscribe = bus.subscribe(self._on_event)
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

    def _on_event(self, event: DomainEvent) -> None:
        # A number reconnected (or changed throughput): its lane may go again.
        if event.kind.startswith("channel."):
            self.wake()

    def _run(self) -> None:
        asyncio.run(self._main())

    # -- database calls from the loop ---------------------------------------------------

    async def db_call(self, fn: Callable[[Session], T]) -> T:
        def work() -> T:
            with self.runtime.db.unit_of_work() as session:
                return fn(session)

        return await asyncio.to_thread(work)

    async def record(self, fn: Callable[[Session], None]) -> None:
        """Record a send's outcome; a few tries, since losing it leaves the item unknown."""
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                await self.db_call(fn)
                return
            except Exception:
                if attempt == _RECORD_ATTEMPTS:
                    log.exception("could not record an outbox result; it stays unknown")
                    return
                await asyncio.sleep(0.2 * attempt)

    # -- the main loop ------------------------------------------------------------------

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        try:
            while not self.stopping:
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
