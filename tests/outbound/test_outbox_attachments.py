"""The composer's attachments as queued sends, against the Meta sandbox over real HTTP: the
route stores the file and queues the message without calling Meta; the lane uploads the
file when its turn comes and sends it by media id, and an upload Meta refuses is retried
or fails the message with Meta's error, like any other send."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.conversations.models import Media
from puente.db.session import Database
from puente.outbound.models import OutboxState
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime
from tests.factories import PASSWORD, make_user
from tests.graph_sandbox import TOKEN, GraphSandbox
from tests.outbound.conftest import Shop, item_of, message_row
from tests.waiting import wait_until
from tests.webclient import WebClient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def agent(runtime: Runtime, shop: Shop) -> Iterator[WebClient]:
    """The owner signed in to Puente's web app; the app runs no workers of its own."""
    with runtime.db.unit_of_work() as session:
        workspace = session.get(Workspace, shop.workspace_id)
        assert workspace is not None
        make_user(session, workspace, role="owner", email="olga@adjuntos.example")
    app = create_app(runtime.settings, runtime.db, run_workers=False)
    with TestClient(app) as client:
        web = WebClient(client)
        assert web.login("olga@adjuntos.example", PASSWORD).status_code == 200
        yield web


def attach(web: WebClient, db: Database, shop: Shop, caption: str = "") -> int:
    """Send a PDF from the composer; returns the queued message's id."""
    conversation_id = shop.conversations[0]
    web.get(f"/inbox/c/{conversation_id}")
    assert web.csrf
    response = web.http.post(
        f"/inbox/c/{conversation_id}/send-media",
        data={"caption": caption, "key": "adjunto-1"},
        files={"file": ("catalogo.pdf", PDF, "application/pdf")},
        headers={"x-inbox": "1", "x-csrf-token": web.csrf, "accept": "text/html"},
    )
    assert response.status_code == 200, response.text
    assert 'data-status="queued"' in response.text
    with db.read(scope=shop.workspace_id) as session:
        media = session.scalar(select(Media).order_by(Media.id.desc()).limit(1))
        assert media is not None and media.message_id is not None
        return media.message_id


def uploads(graph: GraphSandbox) -> list[int]:
    return [r["status"] for r in graph.requests("/media", "POST")]


def downloaded(graph: GraphSandbox, media_id: str) -> bytes:
    """The file Meta holds under `media_id`, read back through the Graph API."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    info = httpx.get(f"{graph.url}/v23.0/{media_id}", headers=auth)
    assert info.status_code == 200, info.text
    return httpx.get(info.json()["url"], headers=auth).content


def test_the_route_queues_the_attachment_and_the_lane_uploads_then_sends_it(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    agent: WebClient,
    start_worker: Callable[..., OutboxWorker],
) -> None:
    message_id = attach(agent, runtime.db, shop, caption="El catálogo")
    # The agent has the message, queued, and Meta has heard nothing yet.
    assert message_row(runtime.db, message_id).status == "queued"
    assert uploads(graph) == [] and graph.sent() == []

    start_worker()
    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).status == "sent" and m,
        what="the attachment to be sent",
    )
    (sent,) = graph.accepted()
    media_id = sent["document"]["id"]
    assert sent["document"] == {
        "id": media_id,
        "caption": "El catálogo",
        "filename": "catalogo.pdf",
    }
    assert downloaded(graph, media_id) == PDF
    assert uploads(graph) == [200]
    # The stored message and its file carry Meta's id, as sent.
    assert message.content["id"] == media_id
    assert item_of(runtime.db, message_id).payload["document"]["id"] == media_id
    with runtime.db.read(scope=shop.workspace_id) as session:
        media = session.scalar(select(Media).where(Media.message_id == message_id))
        assert media is not None and media.meta_media_id == media_id


def test_an_upload_meta_refuses_for_a_while_is_retried_until_sent(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    agent: WebClient,
    start_worker: Callable[..., OutboxWorker],
) -> None:
    graph.configure(
        media_upload_faults=[{"code": 131000, "status": 500, "message": "Something went wrong"}]
    )
    message_id = attach(agent, runtime.db, shop)
    assert uploads(graph) == []  # the route did not wait for Meta

    start_worker()
    wait_until(lambda: message_row(runtime.db, message_id).status == "sent", what="the retry")
    item = item_of(runtime.db, message_id)
    assert item.state == OutboxState.SENT.value and item.attempts == 2
    assert item.last_error is None
    assert uploads(graph) == [500, 200]
    (sent,) = graph.accepted()
    assert downloaded(graph, sent["document"]["id"]) == PDF


def test_an_upload_meta_refuses_for_good_fails_the_message_with_metas_error(
    runtime: Runtime,
    shop: Shop,
    graph: GraphSandbox,
    agent: WebClient,
    start_worker: Callable[..., OutboxWorker],
) -> None:
    graph.configure(
        media_upload_faults=[
            {"code": 131053, "message": "(#131053) Media upload error", "details": "Bad file"}
        ]
    )
    message_id = attach(agent, runtime.db, shop)
    assert uploads(graph) == []

    start_worker()
    message = wait_until(
        lambda: (m := message_row(runtime.db, message_id)).status == "failed" and m,
        what="the failure",
    )
    item = item_of(runtime.db, message_id)
    assert item.state == OutboxState.FAILED.value and item.attempts == 1
    assert item.error_code == 131053
    assert message.error is not None and message.error["code"] == 131053
    assert uploads(graph) == [400]
    assert graph.sent() == []  # nothing went out with a placeholder for a media id
