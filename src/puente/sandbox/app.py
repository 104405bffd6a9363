"""Assembles the sandbox's single ASGI app: control API, phone page, signup and Graph paths."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount

from puente.sandbox import graph, phone
from puente.sandbox.config import SandboxConfig
from puente.sandbox.control import create_control_api
from puente.sandbox.engine import Sandbox
from puente.sandbox.seed import seed_demo

SAVE_EVERY = 5.0


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    config = config or SandboxConfig()
    sb = Sandbox(config)
    if config.bootstrap and not sb.world.numbers:
        seed_demo(sb)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await sb.sender.start()
        for waba in sb.world.wabas.values():  # overrides restored from a state file
            sb.sender.set_override(waba.id, waba.override_callback_uri, waba.override_verify_token)
        saver = asyncio.create_task(_save_periodically(sb)) if config.state_file else None
        try:
            yield
        finally:
            if saver is not None:
                saver.cancel()
            sb.cancel_timers()
            await sb.sender.stop()
            sb.store.save()

    routes = [
        *graph.HOT_ROUTES,
        Mount("/_sandbox/api", app=create_control_api(sb)),
        *phone.ROUTES,
        *graph.ROUTES,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sb
    return app


async def _save_periodically(sb: Sandbox) -> None:
    while True:
        await asyncio.sleep(SAVE_EVERY)
        # Snapshot on the loop (nothing changes meanwhile), write the file in a thread.
        await asyncio.to_thread(sb.store.write, sb.store.snapshot())
