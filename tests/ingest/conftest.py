"""A live Puente (uvicorn on loopback) for the ingestion tests, workers off unless asked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.models import WebhookChange, WebhookEvent
from puente.runtime import Runtime
from tests.conftest import LiveServer


@pytest.fixture
def server(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> LiveServer:
    return live_server_factory(create_app(settings, db, run_workers=False)).start()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def runtime_of(server: LiveServer) -> Runtime:
    runtime: Runtime = server.server.config.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def stored_events(db: Database) -> list[WebhookEvent]:
    with db.read(unscoped="test") as session:
        rows = list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))
        session.expunge_all()  # keep them readable after the read session ends
        return rows


def stored_changes(db: Database) -> list[WebhookChange]:
    with db.read(unscoped="test") as session:
        rows = list(session.scalars(select(WebhookChange).order_by(WebhookChange.id)))
        session.expunge_all()
        return rows
