"""The media tests' world: the sandbox playing Meta and a live Puente wired to it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.app import create_app
from puente.channels.models import ChannelMode
from puente.config import Settings
from puente.conversations.media_worker import MediaDownloader, MediaPolicy
from puente.conversations.models import Media, Message
from puente.db.session import Database
from puente.events import Event, bus
from puente.ingest.worker import IngestProcessor
from puente.runtime import Runtime
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.media import SAMPLES
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE, DEMO_WABA
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import make_channel, make_token, make_workspace

TOKEN = "sandbox-test-token"
LUCIA = "573001112233"
PNG = SAMPLES["image"][1]
PDF = SAMPLES["document"][1]


@dataclass
class World:
    runtime: Runtime
    control: httpx.Client
    graph: httpx.Client
    api: httpx.Client
    downloader: MediaDownloader
    events: list[Event]

    def process(self) -> None:
        """Wait for the sandbox's webhooks to be delivered, then run the ingest worker."""
        drained = self.control.post("/webhooks/drain", params={"timeout": 10}).json()
        assert drained["drained"], drained
        processor = IngestProcessor(self.runtime)
        while processor.step():
            pass

    def customer_sends(self, kind: str, **media: Any) -> Message:
        res = self.control.post(
            f"/numbers/{DEMO_NUMBER}/inbound",
            json={"from": LUCIA, "type": kind, "media": media},
        )
        assert res.status_code == 201, res.text
        wamid = res.json()["id"]
        self.process()
        with self.runtime.db.read(unscoped="test") as session:
            message = session.scalars(select(Message).where(Message.wamid == wamid)).one()
            session.expunge(message)
        return message

    def media_of(self, message_id: int) -> Media:
        with self.runtime.db.read(unscoped="test") as session:
            media = session.scalars(select(Media).where(Media.message_id == message_id)).one()
            session.expunge(media)
        return media

    def faults(self, statuses: list[int]) -> None:
        res = self.control.patch("/config", json={"media_download_faults": statuses})
        assert res.status_code == 200, res.text


@pytest.fixture
def world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[World]:
    """Puente with its workers stopped: tests run each worker step themselves."""
    yield from _world(settings, db, live_server_factory, run_workers=False)


@pytest.fixture
def running_world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[World]:
    """Puente as deployed: its background workers run on their own."""
    yield from _world(settings, db, live_server_factory, run_workers=True)


def _world(
    settings: Settings,
    db: Database,
    live_server_factory: type[LiveServer],
    *,
    run_workers: bool,
) -> Iterator[World]:
    # The sandbox first: Puente's Graph client needs its URL.
    sandbox = live_server_factory(
        create_sandbox_app(
            SandboxConfig(
                app_secret=APP_SECRET,
                verify_token=VERIFY_TOKEN,
                access_token=TOKEN,
                status_delays=(0.0, 0.01, 0.02),
                backoff_base=0.05,
            )
        )
    ).start()
    settings = settings.model_copy(update={"graph_base_url": sandbox.url})
    app = create_app(settings, db, run_workers=run_workers)
    puente = live_server_factory(app).start()
    runtime: Runtime = app.state.runtime

    with runtime.db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session)
        channel = make_channel(
            session,
            workspace,
            phone_number_id=DEMO_NUMBER,
            waba_id=DEMO_WABA,
            display_phone_number=DEMO_PHONE,
            mode=ChannelMode.COEXISTENCE,
        )
        channel.access_token_encrypted = runtime.secrets.encrypt(TOKEN)
        secret = make_token(session, workspace)

    # Generous time-outs: on a busy machine (two legs, browsers) a first answer can take
    # more than httpx's 5 s, and the test would fail on what it does not check.
    control = httpx.Client(base_url=f"{sandbox.url}/_sandbox/api", timeout=60)
    res = control.patch("/config", json={"callback_url": f"{puente.url}/webhooks/whatsapp"})
    assert res.status_code == 200, res.text
    graph = httpx.Client(
        base_url=f"{sandbox.url}/v23.0",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    api = httpx.Client(
        base_url=f"{puente.url}/api/v1",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )
    events: list[Event] = []
    unsubscribe = bus.subscribe(Event, events.append)
    # Jitter from a seeded generator: the retry times below are the same on every run.
    downloader = MediaDownloader(runtime, MediaPolicy(base_delay=30.0), rng=seeded())
    try:
        yield World(runtime, control, graph, api, downloader, events)
    finally:
        unsubscribe()
        for client in (control, graph, api):
            client.close()


def seeded() -> random.Random:
    return random.Random(1)
