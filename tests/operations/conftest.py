"""Puente on loopback with the Meta sandbox posting its webhooks to it, and a reader for
the Prometheus text /metrics answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.seed import DEMO_NUMBER, DEMO_WABA
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import make_channel, make_workspace

TOKEN = "test-graph-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Stage:
    puente: httpx.Client
    control: httpx.Client
    runtime: Runtime
    channel_id: int


@pytest.fixture
def stage(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[Stage]:
    sandbox = live_server_factory(
        create_sandbox_app(
            SandboxConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, access_token=TOKEN)
        )
    ).start()
    settings = settings.model_copy(update={"graph_base_url": sandbox.url})
    app = create_app(settings, db, run_workers=False)
    server = live_server_factory(app).start()
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session)
        channel = make_channel(session, workspace, phone_number_id=DEMO_NUMBER, waba_id=DEMO_WABA)
        channel_id = channel.id
    control = httpx.Client(base_url=f"{sandbox.url}/_sandbox/api", timeout=30)
    answer = control.patch("/config", json={"callback_url": f"{server.url}/webhooks/whatsapp"})
    assert answer.status_code == 200, answer.text
    puente = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Stage(puente, control, app.state.runtime, channel_id)
    finally:
        puente.close()
        control.close()


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)
