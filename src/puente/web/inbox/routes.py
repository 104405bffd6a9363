"""Registers the inbox on the application: its routers and the realtime hub."""

from __future__ import annotations

from fastapi import FastAPI

from puente.conversations.realtime import RealtimeHub
from puente.events import bus
from puente.runtime import Runtime
from puente.web.inbox import actions, manage, pages, stream


def mount(app: FastAPI, runtime: Runtime) -> None:
    app.state.inbox_hub = RealtimeHub(runtime.db, bus)
    for module in (stream, pages, actions, manage):
        app.include_router(module.router)
