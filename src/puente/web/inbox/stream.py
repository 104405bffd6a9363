"""`GET /inbox/events`: the Server-Sent Event stream of an agent's browser tab."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from puente.accounts.gate import Actor
from puente.accounts.models import Membership, User
from puente.conversations.realtime import RealtimeHub
from puente.web.inbox.common import Viewer
from puente.web.routes.presence import tab_alive

router = APIRouter(include_in_schema=False)
KEEPALIVE_SECONDS = 15.0
# Streams end after a while and the browser reconnects (and catches up), so a server
# restart or shutdown never waits on a tab left open.
MAX_STREAM_SECONDS = 300.0


def hub_of(request: Request) -> RealtimeHub:
    hub: RealtimeHub = request.app.state.inbox_hub
    return hub


def stand_in(actor: Actor) -> Actor:
    """The viewer as plain objects: the stream outlives the request's session, whose
    end (a read-only session rolls back) expires the rows the gate reads later."""
    user, membership = actor.user, actor.membership
    return Actor(
        actor.workspace_id,
        user=User(id=user.id, name=user.name, email=user.email) if user else None,
        membership=Membership(
            workspace_id=membership.workspace_id,
            user_id=membership.user_id,
            role=membership.role,
            permissions=dict(membership.permissions or {}),
            is_active=membership.is_active,
        )
        if membership
        else None,
        team_ids=actor.team_ids,
    )


@router.get("/inbox/events")
async def events(request: Request, me: Viewer) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        return PlainTextResponse("This address is an event stream for the inbox page.", 406)
    hub = hub_of(request)
    sub = hub.subscribe(stand_in(me.actor), asyncio.get_running_loop())
    workspace_id, user_id = me.actor.workspace_id, me.user.id

    async def stream() -> AsyncIterator[str]:
        started = time.monotonic()
        try:
            # The open tab is the person's presence (accounts.presence): recorded before
            # the stream says it is connected, then beating as it runs.
            await tab_alive(request, workspace_id, user_id, opening=True)
            yield "retry: 1500\n: connected\n\n"
            while time.monotonic() - started < MAX_STREAM_SECONDS:
                await tab_alive(request, workspace_id, user_id)
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
