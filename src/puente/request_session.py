"""The database session of one HTTP request, shared by the web UI and the REST API.

GET and HEAD requests only read: they get a read-only session, which on SQLite reads
through a reader connection and never queues behind a writer (decision 0002). A GET
route that does change data (an audit entry, a conversation marked read) declares it
with `@writes` and gets a unit of work like any POST. A route whose domain service opens
its own short units of work around a call to Meta declares `@own_transactions` and only
reads, whatever its method. Last-used times of tokens and sign-in sessions are written
after the response, in their own short transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import BackgroundTasks, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from puente.db.session import Database, check_nothing_written

log = logging.getLogger(__name__)

WRITES_ATTR = "__puente_writes__"
OWN_TRANSACTIONS_ATTR = "__puente_own_transactions__"
READ_METHODS = frozenset({"GET", "HEAD"})
F = TypeVar("F", bound=Callable[..., object])


def writes(endpoint: F) -> F:
    """Mark a GET route that changes data: it runs in a unit of work instead of a reader."""
    setattr(endpoint, WRITES_ATTR, True)
    return endpoint


def own_transactions(endpoint: F) -> F:
    """Mark a route whose domain service commits step by step, with Meta's answers in
    between: the request's own session only reads, so on SQLite it holds no write lock
    that those steps would wait for, and the handler never has anything to commit."""
    setattr(endpoint, OWN_TRANSACTIONS_ATTR, True)
    return endpoint


def reads_only(request: Request) -> bool:
    endpoint = request.scope.get("endpoint")
    if getattr(endpoint, OWN_TRANSACTIONS_ATTR, False):
        return True
    return request.method in READ_METHODS and not getattr(endpoint, WRITES_ATTR, False)


@contextmanager
def request_session(request: Request, db: Database) -> Iterator[Session]:
    """A read-only session for a reading request, otherwise the request's unit of work."""
    if not reads_only(request):
        with db.unit_of_work() as session:
            yield session
        return
    with db.read() as session:
        yield session
        check_nothing_written(session)


class Touches:
    """Remembers which last-used touches this process has queued, so that requests
    arriving while one waits for the write lock do not queue more of the same."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._queued: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._queued.get(key)
            if last is not None and now - last < self.every:
                return False
            self._queued[key] = now
            if len(self._queued) > 10_000:  # forget old keys so the map stays small
                self._queued = {k: t for k, t in self._queued.items() if now - t < self.every}
            return True


def _touches(request: Request) -> Touches:
    touches: Touches | None = getattr(request.app.state, "touches", None)
    if touches is None:
        touches = request.app.state.touches = Touches()
    return touches


def _write_touch(db: Database, write: Callable[[Session], None]) -> None:
    try:
        with db.unit_of_work(unscoped="recording a last-used time by its row id") as session:
            write(session)
    except SQLAlchemyError:  # a last-used time is worth a retry next minute, not an error
        log.warning("could not record a last-used time", exc_info=True)


def touch_after_response(
    request: Request, background: BackgroundTasks, key: str, write: Callable[[Session], None]
) -> None:
    """Run `write` in its own transaction once the response has left (once a minute per
    key), so a reading request never waits for the write lock."""
    if _touches(request).due(key):
        background.add_task(_write_touch, request.app.state.runtime.db, write)
