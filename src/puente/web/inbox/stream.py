"""`GET /inbox/events`: the Server-Sent Event stream of an agent's browser tab."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from puente.conversations.realtime import RealtimeHub
from puente.web.inbox.common import Viewer

router = APIRouter(include_in_schema=False)
KEEPALIVE_SECONDS = 15.0
# Streams end after a while and the browser reconnects (and catches up), so a server
# restart or shutdown never waits on a tab left open.
MAX_STREAM_SECONDS = 300.0


def hub_of(request: Request) -> RealtimeHub:
    hub: RealtimeHub = request.app.state.inbox_hub
    return hub


@router.get("/inbox/events")
async def events(request: Request, me: Viewer) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        return PlainTextResponse("This address is an event stream for the inbox page.", 406)
    hub = hub_of(request)
    sub = hub.subscribe(me.actor, asyncio.get_running_loop())

    async def stream() -> AsyncIterator[str]:
        started = time.monotonic()
        try:
            yield "retry: 1500\n: connected\n\n"
            while time.monotonic() - started < MAX_STREAM_SECONDS:
                try:
                    payload = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        break
                    yield ": keepalive\n\n"
                    continue
                yield f"data: {payload}\n\n"
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
