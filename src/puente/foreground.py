"""Requests first: background work in the web process steps aside while a request runs.

When the workers run in the web process (the default), a history import or a big batch of
webhooks keeps a worker thread busy in Python for seconds at a time. Python runs one
thread at a time, and a thread that gives up the interpreter (for every database step or
socket write) waits up to `sys.getswitchinterval()` to get it back from a busy thread, so
an inbox page that costs 15 ms alone could take 100+ ms. Requests are what a person waits
for: the middleware counts the requests being handled in this process, and background
loops call `yield_to_requests()` at safe points (between chunks, threads, events), which
blocks while a request is being handled, for at most `MAX_PAUSE` each time, so background
work slows down under traffic but never stops.

Only reading requests (GET, HEAD) count, until their response starts: a streamed body
(live updates, exports) does not hold background work back while the stream stays open.
A write never counts: on SQLite it may wait for the write lock a paused worker holds, so
a reading request that writes (`writing()`, used by `Database.unit_of_work`) stops
counting while it does.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The longest one call waits: under constant traffic background work still gets a turn.
MAX_PAUSE = 0.25

_lock = threading.Lock()
_active = 0
_idle = threading.Event()
_idle.set()


class _Request:
    """Whether one request currently counts, and whether its response has started (it
    never counts again then); changed only under `_lock`."""

    __slots__ = ("counts", "done")

    def __init__(self) -> None:
        self.counts = False
        self.done = False


# The request being handled, in its context (copied into its thread-pool calls).
_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "puente_foreground", default=None
)


def _count(request: _Request, counts: bool, *, done: bool = False) -> None:
    global _active
    with _lock:
        request.done = request.done or done
        if request.done:
            counts = False
        if request.counts == counts:
            return
        request.counts = counts
        _active += 1 if counts else -1
        if _active > 0:
            _idle.clear()
        else:
            _idle.set()


def requests_in_flight() -> int:
    return _active


@contextmanager
def writing() -> Iterator[None]:
    """A counted request stops counting while it writes (see the module's docstring)."""
    request = _current.get()
    if request is None or not request.counts:
        yield
        return
    _count(request, False)
    try:
        yield
    finally:
        _count(request, True)


def yield_to_requests(max_pause: float = MAX_PAUSE) -> bool:
    """Wait while reading requests are being handled in this process, at most
    `max_pause` seconds. Returns whether it waited."""
    if _idle.is_set():
        return False
    _idle.wait(max_pause)
    return True


class ForegroundMiddleware:
    """Counts the reading requests being handled until their response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        request = _Request()
        token = _current.set(request)
        _count(request, True)
        started = False

        async def send_and_release(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                _count(request, False, done=True)
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            _current.reset(token)
            _count(request, False, done=True)
