"""Registers the inbox on the application: its routers and the realtime hub."""

from __future__ import annotations

from fastapi import FastAPI

from puente.conversations.realtime import RealtimeHub
from puente.conversations.search import ensure_inbox_indexes, ensure_search_index
from puente.events import bus
from puente.runtime import BackgroundWorker, Runtime
from puente.web.inbox import actions, compose, manage, notify, pages, stream


class _HubCloser(BackgroundWorker):
    """Closes the realtime hub when the app's workers stop (at shutdown), so a stopped
    app never keeps relaying events; it runs nothing of its own."""

    def __init__(self, hub: RealtimeHub) -> None:
        super().__init__("realtime-hub", lambda: False)
        self.hub = hub

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.hub.close()

    def join(self, timeout: float = 10) -> None:
        pass


def mount(app: FastAPI, runtime: Runtime) -> None:
    hub = RealtimeHub(runtime.db, bus)
    app.state.inbox_hub = hub
    runtime.workers.append(_HubCloser(hub))
    # Create the full-text index now rather than inside the first search's request (a
    # database without tables yet gets it on that first search instead).
    ensure_search_index(runtime.db.engine)
    ensure_inbox_indexes(runtime.db.engine)
    for module in (stream, pages, actions, compose, manage, notify):
        app.include_router(module.router)
