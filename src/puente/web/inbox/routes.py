"""Registers the inbox on the application: its routers, fed by the realtime hub."""

from __future__ import annotations

from fastapi import FastAPI

from puente.conversations.realtime import RealtimeHub
from puente.conversations.search import ensure_inbox_indexes, ensure_search_index
from puente.runtime import Runtime
from puente.web.inbox import actions, compose, manage, notify, pages, stream, workflows


def mount(app: FastAPI, runtime: Runtime, hub: RealtimeHub) -> None:
    """The inbox's routes; `hub` (from app.install_workers) feeds their event streams."""
    app.state.inbox_hub = hub
    # Create the full-text index now rather than inside the first search's request (a
    # database without tables yet gets it on that first search instead).
    ensure_search_index(runtime.db.engine)
    ensure_inbox_indexes(runtime.db.engine)
    for module in (stream, pages, actions, compose, manage, notify, workflows):
        app.include_router(module.router)
