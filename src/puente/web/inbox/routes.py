"""Registers the inbox on the application: its routers and the realtime hub."""

from __future__ import annotations

from fastapi import FastAPI

from puente.conversations.realtime import RealtimeHub
from puente.conversations.search import ensure_search_index
from puente.events import bus
from puente.runtime import Runtime
from puente.web.inbox import actions, manage, pages, stream


def mount(app: FastAPI, runtime: Runtime) -> None:
    app.state.inbox_hub = RealtimeHub(runtime.db, bus)
    # Create the full-text index now rather than inside the first search's request (a
    # database without tables yet gets it on that first search instead).
    ensure_search_index(runtime.db.engine)
    for module in (stream, pages, actions, manage):
        app.include_router(module.router)
