"""The outbox's counters per number: a reply sent through the REST API is counted queued,
Meta's 130429 refusal counted by its code and apart, and the retry that goes through sent,
all under the number's channel id."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.config import Settings
from puente.conversations.models import Message
from puente.db.session import Database
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from tests.factories import make_token
from tests.graph_sandbox import GraphSandbox, start_graph_sandbox
from tests.operations.conftest import samples, value
from tests.outbound.conftest import FAST_RETRIES, make_shop
from tests.waiting import wait_until


@pytest.fixture
def graph(live_server_factory: Any) -> GraphSandbox:
    return start_graph_sandbox(live_server_factory)


def _status(db: Database, message_id: int) -> str:
    with db.read(unscoped="test") as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def test_a_reply_refused_with_130429_then_sent_is_counted_per_number(
    settings: Settings, db: Database, graph: GraphSandbox
) -> None:
    settings = settings.model_copy(update={"graph_base_url": graph.url})
    runtime = Runtime.from_settings(settings, db)
    shop = make_shop(runtime, customers=1)
    with db.unit_of_work(scope=shop.workspace_id) as session:
        workspace = session.get(Workspace, shop.workspace_id)
        assert workspace is not None
        token = make_token(session, workspace)
    graph.fail_next(130429, message="(#130429) Rate limit hit")
    channel = str(shop.channel_id)
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        before = samples(client.get("/metrics").text)
        answer = client.post(
            "/api/v1/messages",
            json={
                "conversation_id": shop.conversations[0],
                "type": "text",
                "text": {"body": "Ya salió tu pedido"},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 202, answer.text
        message_id = answer.json()["id"]
        worker = OutboxWorker(runtime, poll_seconds=0.05, policy=FAST_RETRIES, timeout=5.0)
        worker.start()
        try:
            wait_until(lambda: _status(db, message_id) == "sent", what="the retried send")
        finally:
            worker.stop()
            worker.join()
        after = samples(client.get("/metrics").text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("puente_outbox_queued_total", channel=channel) == 1
    assert moved("puente_outbox_sent_total", channel=channel) == 1
    assert moved("puente_outbox_failed_total", channel=channel) == 0
    assert moved("puente_meta_errors_total", code="130429") == 1
    assert moved("puente_meta_throttled_130429_total") == 1
