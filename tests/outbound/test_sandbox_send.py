"""Happy path against Puente's Meta sandbox (its Graph API over real HTTP): a template
queued in the outbox reaches the sandbox once, with the callback data, and gets its wamid."""

from __future__ import annotations

from typing import Any

import httpx

from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.conversations.models import MessageSource
from puente.db.session import Database
from puente.outbound.outbox.service import do_queue_message
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from puente.sandbox.app import create_sandbox_app
from puente.sandbox.config import SandboxConfig
from puente.sandbox.seed import DEMO_NUMBER, DEMO_WABA
from tests.factories import make_workspace
from tests.outbound.conftest import FAST_RETRIES, item_of, message_row
from tests.waiting import wait_until


def test_template_sent_through_the_sandbox(
    settings: Settings, db: Database, live_server_factory: Any
) -> None:
    sandbox = live_server_factory(create_sandbox_app(SandboxConfig())).start()
    runtime = Runtime.from_settings(settings.model_copy(update={"graph_base_url": sandbox.url}), db)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        channel = Channel(
            workspace_id=ws.id,
            name="Tienda La Esquina",
            phone_number_id=DEMO_NUMBER,
            waba_id=DEMO_WABA,
            display_phone_number="15550783881",
            mode=ChannelMode.COEXISTENCE.value,
            throughput_mps=20,
            access_token_encrypted=runtime.secrets.encrypt(SandboxConfig().access_token),
            settings={},
        )
        session.add(channel)
        session.flush()
        message = do_queue_message(
            session,
            workspace_id=ws.id,
            to="+5215512345678",
            channel_id=channel.id,
            message_type="template",
            content={
                "name": "pedido_confirmado",
                "language": {"code": "es"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Carlos"},
                            {"type": "text", "text": "A-1024"},
                        ],
                    }
                ],
            },
            source=MessageSource.API,
        )
        message_id = message.id

    worker = OutboxWorker(runtime, poll_seconds=0.05, policy=FAST_RETRIES, timeout=5)
    worker.start()
    try:
        sent = wait_until(
            lambda: (m := message_row(db, message_id)).status == "sent" and m,
            what="the sandbox to accept the template",
        )
    finally:
        worker.stop()
        worker.join()
    assert sent.wamid
    item = item_of(db, message_id)
    seen = httpx.get(f"{sandbox.url}/_sandbox/api/sent", params={"number_id": DEMO_NUMBER}).json()
    assert [m["id"] for m in seen] == [sent.wamid]
    assert item.attempts == 1
