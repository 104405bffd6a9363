"""The threads behind ingestion: the group-commit writer that stores webhook bodies
before they are acknowledged, and the step of the INGEST queue's worker, which processes
stored events (the worker loop and its wake-ups are puente.jobs').
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import select

from puente import metrics
from puente.conversations.statuses import do_sweep_pending_statuses
from puente.db.session import Database
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.ingest.process import (
    LEFT_FOR_LATER,
    claim_event,
    do_mark_change_failed,
    do_mark_event_failed,
    do_process_event,
    do_process_new_events,
    do_process_ready_changes,
    do_release_parked_for_known_numbers,
    do_wait_for_customer,
    is_try_again,
)
from puente.ingest.store import do_commit_webhooks
from puente.jobs import INGEST, Worker
from puente.jobs import install as install_worker
from puente.runtime import Runtime

# Workers serve every workspace; the rows they claim name their own.
WHY = "webhooks find their workspace as they are processed"

log = logging.getLogger(__name__)

_Pending = tuple[bytes, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class EventWriter:
    """Stores webhook bodies for concurrent requests, many per transaction.

    Each request hands its body to one writer thread and waits; the thread inserts
    everything queued so far in one transaction, commits, and only then resolves the
    waiting requests. Store-before-ack holds, and a burst costs one commit instead of
    one per request. The thread starts on demand and exits after `idle_seconds`, so an
    app needs no shutdown hook for it.
    """

    def __init__(self, db: Database, *, max_batch: int = 500, idle_seconds: float = 2.0) -> None:
        self._db = db
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The writer thread's driver connection (see `_run`).
        self._raw: Any = None

    async def store(self, body: bytes) -> None:
        """Return once `body` is committed (or already was); raise if storing failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((body, loop, future))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="puente-ingest-writer", daemon=True
                )
                self._thread.start()
        await future

    def _run(self) -> None:
        # A driver connection, not a session, kept while the thread runs: this thread
        # shares the GIL with the event loop, and the fewer Python steps per batch (no
        # pool checkout, ping or reset for each) the faster requests flow.
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self._idle)
                except queue.Empty:
                    with self._lock:
                        # `store` queues before it checks the thread, so an empty queue
                        # seen under the lock means no request is left waiting on this
                        # thread.
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(batch)
        finally:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()  # back to the pool
                self._raw = None

    def _write(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            if self._raw is None:
                self._raw = self._db.engine.raw_connection()
            do_commit_webhooks(
                self._raw, self._db.engine.dialect, [body for body, _loop, _future in batch]
            )
        except Exception as exc:
            log.exception("storing %d webhook events failed", len(batch))
            error = exc
            if self._raw is not None:
                # Whatever broke, the next batch starts on a fresh connection.
                with contextlib.suppress(Exception):
                    self._raw.invalidate()
                self._raw = None
        else:
            INGEST.wake()
            metrics.get().webhooks_stored.inc(len(batch))
        # One hand-over per event loop rather than one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
        for _body, loop, future in batch:
            by_loop[loop].append(future)
        for loop, futures in by_loop.items():
            # A loop that closed while its requests waited has no one left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futures, error)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client went away)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


# How often the worker settles statuses that raced their message's wamid (see
# conversations.statuses.do_sweep_pending_statuses).
STATUS_SWEEP_SECONDS = 2.0


class IngestProcessor:
    """One step of the processing worker: a batch of events and released changes."""

    def __init__(self, runtime: Runtime, batch_size: int = 50) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self._next_sweep = 0.0
        # A customer another worker held for every event of our last batch: the next step
        # waits for it first, then works (see do_wait_for_customer).
        self._waiting_for: int | None = None

    def step(self) -> bool:
        try:
            key, self._waiting_for = self._waiting_for, None
            with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                if key is not None:
                    # Nothing is held yet, so waiting here cannot close a cycle; once the
                    # other batch commits, this one goes on holding that customer.
                    do_wait_for_customer(session, key)
                events = do_process_new_events(session, self.runtime, self.batch_size)
                changes = do_process_ready_changes(session, self.runtime, self.batch_size)
                left, first = session.info.get(LEFT_FOR_LATER) or (0, None)
            if events and left == events and not changes:
                self._waiting_for = first
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + STATUS_SWEEP_SECONDS
                # A transaction of its own: it locks messages outside the batch's
                # ordered locks (see do_process_new_events), so not while holding them.
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    do_sweep_pending_statuses(session)
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    # Released changes are work for the next step: say so.
                    changes += do_release_parked_for_known_numbers(session)
        except Exception:
            # Something broke the batch's transaction itself; go one event at a time so
            # the culprit is found and marked failed while the others still go through.
            log.exception("webhook batch failed; processing events one by one")
            return self._one_by_one()
        return events + changes > 0

    def _one_by_one(self) -> bool:
        with self.runtime.db.read(unscoped=WHY) as session:
            ids = list(
                session.scalars(
                    select(WebhookEvent.id)
                    .where(WebhookEvent.state == EventState.NEW.value)
                    .order_by(WebhookEvent.id)
                    .limit(self.batch_size)
                )
            )
        for event_id in ids:
            try:
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    event = claim_event(session, event_id)
                    if event is not None:
                        do_process_event(session, self.runtime, event)
            except Exception as exc:
                if is_try_again(exc):
                    # A deadlock says nothing about the event: it stays new for the next step.
                    log.warning("webhook event %s left for the next step: %s", event_id, exc)
                    continue
                log.exception("webhook event %s failed", event_id)
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    do_mark_event_failed(session, event_id, f"{type(exc).__name__}: {exc}")
        with self.runtime.db.read(unscoped=WHY) as session:
            change_ids = list(
                session.scalars(
                    select(WebhookChange.id)
                    .where(WebhookChange.state == ChangeState.READY.value)
                    .order_by(WebhookChange.id)
                    .limit(self.batch_size)
                )
            )
        for change_id in change_ids:
            try:
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    do_process_ready_changes(session, self.runtime, only_id=change_id)
            except Exception as exc:
                log.exception("webhook change %s failed", change_id)
                with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                    do_mark_change_failed(session, change_id, f"{type(exc).__name__}: {exc}")
        return bool(ids) or bool(change_ids)


def install(runtime: Runtime) -> EventWriter:
    """Create the writer for the webhook endpoint and register the processing workers."""
    processor = IngestProcessor(runtime)
    idle = runtime.settings.worker_poll_seconds
    install_worker(runtime, Worker("puente-ingest", INGEST, processor.step, idle_seconds=idle))
    return EventWriter(runtime.db)


def run_until_idle(runtime: Runtime, max_steps: int = 1000) -> None:
    """Process everything queued now, in this thread (for commands and tests)."""
    processor = IngestProcessor(runtime)
    for _ in range(max_steps):
        if not processor.step():
            return
