"""Each HTTP request gets an id (the proxy's X-Request-ID when it sent a sane one), which
its log lines carry and its response echoes; its time is counted by route template."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from typing import Any, cast

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puente import metrics
from puente.logs import log_context

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED = "<unmatched>"
# Any other method a client makes up is counted as OTHER: labels stay a bounded set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class OperationsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics.get()
        # The label children, found once: `labels()` validates and locks at every call,
        # and the webhook endpoint behind this middleware answers thousands a second.
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        app_root = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                streaming = any(
                    name == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in headers
                )
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._count(scope, app_root, status, streaming, time.perf_counter() - started)

    def _count(
        self, scope: Scope, app_root: str, status: int, streaming: bool, seconds: float
    ) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_template(scope, app_root)
        key = (method, route, str(status))
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = self.metrics.http_requests.labels(*key)
        counted.inc()
        if streaming:  # a live stream's time is how long someone kept a page open
            return
        timed = self._timed.get(route)
        if timed is None:
            timed = self._timed[route] = self.metrics.http_latency.labels(route)
        timed.observe(seconds)


def route_template(scope: Scope, app_root: str = "") -> str:
    """The matched route's path template (`/api/v1/conversations/{conversation_id}`), never
    the raw path: one label value per route, whatever ids the paths carry."""
    route = scope.get("route")
    prefix = str(scope.get("root_path", ""))[len(app_root) :]
    if route is None:
        # FastAPI names only its own routes in the scope: a plain route (the webhook
        # endpoint) or a mount is found again among the app's routes.
        route, prefix = _top_level_route(scope, app_root), ""
    path = getattr(route, "path", None)
    if route is None or path is None:
        return UNMATCHED
    if isinstance(route, Mount):  # a mounted app that matched none of its own routes
        # Once inside the mount, the prefix already ends with the mount's own path.
        return (prefix or str(path)) + "/{path}"
    return prefix + str(path)


def _top_level_route(scope: Scope, app_root: str) -> BaseRoute | None:
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    path = scope["path"][len(app_root) :]
    for route in routes:  # a route without parameters is its path: no regex needed
        if getattr(route, "path", None) == path and not isinstance(route, Mount):
            return cast(BaseRoute, route)
    probe = {**scope, "root_path": app_root}
    for route in routes:
        if route.matches(probe)[0] is Match.FULL:
            return cast(BaseRoute, route)
    return None


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_ID.fullmatch(value):
            return str(value.decode())
    # Unique without a uuid4 per request: 64 random bits per process (drawn again in a
    # forked child), then a counter.
    return f"{_prefix()}{next(_sequence):016x}"


_sequence = itertools.count(1)
_prefix_of: tuple[int, str] = (0, "")


def _prefix() -> str:
    global _prefix_of
    pid = os.getpid()
    if _prefix_of[0] != pid:
        _prefix_of = (pid, secrets.token_hex(8))
    return _prefix_of[1]
