"""Each HTTP request gets an id (the proxy's X-Request-ID when it sent a sane one), which
its log lines carry and its response echoes; its time is counted by route template."""

from __future__ import annotations

import re
import time
import uuid
from typing import cast

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puente import metrics
from puente.logs import log_context

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED = "<unmatched>"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class OperationsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics.get()

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
        method, route = scope["method"], route_template(scope, app_root)
        self.metrics.http_requests.labels(method=method, route=route, status=str(status)).inc()
        if not streaming:  # a live stream's time is how long someone kept a page open
            self.metrics.http_latency.labels(route=route).observe(seconds)


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
    router = getattr(scope.get("app"), "router", None)
    probe = {**scope, "root_path": app_root}
    for route in getattr(router, "routes", ()):
        if route.matches(probe)[0] is Match.FULL:
            return cast(BaseRoute, route)
    return None


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_ID.fullmatch(value):
            return str(value.decode())
    return uuid.uuid4().hex
