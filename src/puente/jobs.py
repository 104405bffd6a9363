"""Puente's one job mechanism: rows of a domain table are the jobs, and a worker claims
and runs them.

This module owns what every queue needs: the named queues and waking their workers after
commit (NOTIFY on PostgreSQL, in-process events always), claiming rows (`FOR UPDATE SKIP
LOCKED` on PostgreSQL; on SQLite every write transaction already holds the database's
one write lock), leases that expire by themselves, retry backoff, and the worker loop.
A queue keeps only its step: what to do with the rows it claimed (see
docs/decisions/0007-one-job-mechanism.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, Table, event, select, update
from sqlalchemy.orm import Session, SessionTransaction

from puente.db.session import on_commit
from puente.runtime import BackgroundWorker, Runtime

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Select[Any])


# -- queues and wake-ups ---------------------------------------------------------------


class Wakeable(Protocol):
    def wake(self) -> None: ...


class Queue:
    """A named queue: its NOTIFY channel on PostgreSQL and this process's workers.

    Workers are held weakly, so a discarded app does not keep its workers alive."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channel = f"puente_{name}"
        # The statement that tells other processes' workers, for writers that work at
        # the driver level (see ingest.store).
        self.notify_sql = f"NOTIFY {self.channel}"
        self._workers: weakref.WeakSet[Wakeable] = weakref.WeakSet()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def register(self, worker: Wakeable) -> None:
        with self._lock:
            self._workers.add(worker)

    def wake(self) -> None:
        """Wake this process's workers of the queue now."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.wake()

    def wake_after_commit(self, session: Session) -> None:
        """Make the queue's workers look at it once this transaction commits: this
        process's through an in-process event, other processes' through a NOTIFY sent
        just before the commit (PostgreSQL delivers it at commit, drops it on rollback).
        However often a transaction asks, it sends one NOTIFY per queue."""
        if session.get_bind().dialect.name == "postgresql":
            session.info.setdefault(_NOTIFY_KEY, set()).add(self)
        on_commit(session, self.wake)


# Session.info key: the queues whose channels this transaction will NOTIFY.
_NOTIFY_KEY = "puente.jobs.notify"


@event.listens_for(Session, "before_commit")
def _notify_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the outer transaction sends them
    queues: set[Queue] | None = session.info.pop(_NOTIFY_KEY, None)
    if queues:
        conn = session.connection()
        for queue in sorted(queues, key=lambda q: q.channel):
            conn.exec_driver_sql(queue.notify_sql)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_NOTIFY_KEY, None)


# Every queue of Puente, by name: one NOTIFY channel each, all heard by one LISTEN
# connection per process. A new kind of job adds its queue here.
INGEST = Queue("ingest")  # stored webhook events and changes released or retried
OUTBOX = Queue("outbox")  # outgoing messages, sent by per-number lanes
MEDIA = Queue("media")  # media files of messages to download
BROADCASTS = Queue("broadcasts")  # broadcasts to start, queue on or finish
ROUTING = Queue("routing")  # conversations waiting in a team's queue for an agent
WORKFLOWS = Queue("workflows")  # workflow runs with a step to take
REPORTS = Queue("reports")  # report facts to add to the daily rollups
WEBHOOKS = Queue("webhooks")  # outgoing webhook deliveries to send
QUEUES: dict[str, Queue] = {
    q.channel: q for q in (INGEST, OUTBOX, MEDIA, BROADCASTS, ROUTING, WORKFLOWS, REPORTS, WEBHOOKS)
}


# -- claiming and leases ---------------------------------------------------------------


def skip_locked(session: Session, stmt: S) -> S:
    """`stmt` claiming the rows it selects: on PostgreSQL locked until commit, rows that
    another worker holds skipped instead of waited for. On SQLite unchanged: the write
    transaction (BEGIN IMMEDIATE) already makes this process the only writer."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def lease(
    session: Session,
    table: Table,
    *,
    ready: Any,
    due: Any,
    order_by: Sequence[Any],
    limit: int,
    seconds: float,
    now: dt.datetime,
) -> list[int]:
    """Claim up to `limit` rows that are `ready` and whose `due` time has come, in
    `order_by` order, by moving `due` `seconds` ahead: one statement, and no transaction
    stays open while the work runs. A worker that dies leaves its rows to come due again
    when the lease runs out; one that finishes sets `due` itself. Returns the ids won."""
    key = table.c.id
    picked = skip_locked(
        session, select(key).where(ready, due <= now).order_by(*order_by).limit(limit)
    )
    # Picked once, as a materialized CTE: PostgreSQL may run an `IN (subquery)` again
    # while the update goes, and a locking subquery run again skips the rows this update
    # just changed and picks the next ones, far past `limit`.
    chosen = picked.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
    stmt = (
        update(table)
        # Checked again by the update itself, so a claim never rests on one engine's
        # locking: a row another worker leased meanwhile no longer matches.
        .where(key.in_(select(chosen.c[key.name])), ready, due <= now)
        .values({due.key: now + dt.timedelta(seconds=seconds)})
        .returning(key)
    )
    return list(session.connection().execute(stmt).scalars())


# -- retries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n + 1 waits about `base` * 2^(n-1)
    seconds, at most `ceiling`, times a random factor in `jitter` so that a burst of
    failures (one outage) does not come back all at once."""

    base: float
    ceiling: float
    jitter: tuple[float, float] = (0.5, 1.0)

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        exponential = min(self.ceiling, self.base * 2.0 ** max(attempts - 1, 0))
        return float(exponential * (rng or _RANDOM).uniform(*self.jitter))


_RANDOM = random.Random()  # jitter, not secrecy


# -- the worker loop -------------------------------------------------------------------


class Worker(BackgroundWorker):
    """A thread that runs `step` until stopped. `step` returns True when it did work;
    then it runs again at once, else it waits until its queue wakes it or
    `idle_seconds` pass (polling stays the fallback for a lost wake-up)."""

    def __init__(
        self, name: str, queue: Queue, step: Callable[[], bool], *, idle_seconds: float
    ) -> None:
        super().__init__(name, step, idle_seconds)
        queue.register(self)


def install(runtime: Runtime, worker: Worker) -> None:
    """Run `worker` with the runtime's workers; on PostgreSQL also the process's LISTEN
    loop (one for every queue), so work committed by other processes wakes it."""
    runtime.workers.append(worker)
    if runtime.db.is_postgres and not any(isinstance(w, Listener) for w in runtime.workers):
        runtime.workers.append(Listener(runtime))


class Listener(BackgroundWorker):
    """PostgreSQL: one connection LISTENing on every queue's channel, waking this
    process's workers of the queue each NOTIFY names."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__("puente-listen", self._listen, runtime.settings.worker_poll_seconds)
        self._url = runtime.db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._conn: Any = None

    def _listen(self) -> bool:
        import psycopg

        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._url, autocommit=True)
                for channel in QUEUES:
                    self._conn.execute(f"LISTEN {channel}")
                for queue in QUEUES.values():
                    queue.wake()  # anything sent while we were not listening
            # A short wait: stopping the process waits for this call to return (a second
            # per stop was most of a test run's teardowns on PostgreSQL); idle, it is four
            # cheap wake-ups a second.
            for note in self._conn.notifies(timeout=0.25, stop_after=1):
                named = QUEUES.get(note.channel)
                if named is not None:
                    named.wake()
        except psycopg.Error:
            log.warning("lost the LISTEN connection; workers poll until it is back")
            self._close()
            return False
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection may fail to close; nothing to keep
                log.debug("closing the LISTEN connection failed", exc_info=True)

    def join(self, timeout: float = 10) -> None:
        super().join(timeout)
        self._close()
