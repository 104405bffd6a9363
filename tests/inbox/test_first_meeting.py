"""What a person meets first in the inbox: the default list says where the closed
(imported) conversations went, previews read as words (a deleted message, a broadcast),
an imported message that failed on the phone says why it has no better reason, and the
bell is drawn without relying on an emoji font."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from puente.runtime import Runtime
from tests.conformance.replay import coexistence_channel, replay
from tests.factories import make_token
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_contact, add_conversation, add_message
from tests.webclient import WebClient


def _previews(html: str) -> list[str]:
    found = re.findall(
        r'data-testid="row-preview">(.*?)</span>\s*(?:<span class="badge"|</span>)', html, re.S
    )
    return [re.sub(r"<[^>]+>", "", p).strip() for p in found]


def test_the_open_list_says_how_many_closed_conversations_it_leaves_out(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        for n in range(3):
            add_conversation(
                s, shop.workspace_id, shop.channel_id, f"Hist {n}", at=NOW, status="resolved"
            )
    page = owner_web.get("/inbox").text
    assert "No open conversations here." in page
    assert 'title="Open conversations" data-testid="count-all">0<' in page  # says what it counts
    assert "3 closed conversations are not shown here" in page
    link = re.search(r'href="(/inbox\?[^"]*)" data-testid="show-closed"', page)
    assert link is not None
    everything = owner_web.get(link.group(1).replace("&amp;", "&")).text
    assert everything.count('data-testid="conversation-row"') == 3
    assert 'data-testid="closed-hint"' not in everything


def test_the_hint_is_left_out_when_nothing_closed_is_hidden(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(s, shop.workspace_id, shop.channel_id, "Abierta", at=NOW)
    page = owner_web.get("/inbox").text
    assert 'data-testid="conversation-row"' in page
    assert 'data-testid="closed-hint"' not in page


def test_a_message_deleted_for_everyone_reads_message_deleted_in_the_list(
    owner_web: WebClient, shop: Shop, db: Database, settings: Settings
) -> None:
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as s:
        from puente.accounts.models import Workspace

        workspace = s.get(Workspace, shop.workspace_id)
        assert workspace is not None
        coexistence_channel(s, workspace)
    replay(runtime, "messages_text", "messages_revoke")
    page = owner_web.get("/inbox").text
    assert _previews(page) == ["Message deleted"]
    assert "[text]" not in page and "[revoked]" not in page


def test_a_broadcast_shows_in_the_list_and_the_broadcast_filter_finds_it(
    owner_web: WebClient, client: TestClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        from puente.accounts.models import Workspace

        workspace = s.get(Workspace, shop.workspace_id)
        assert workspace is not None
        token = make_token(s, workspace, scopes=["broadcasts:write"])
        s.add(
            MessageTemplate(
                workspace_id=shop.workspace_id,
                waba_id="100200300",
                name="aviso",
                language="es",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hola {{1}}, tu pedido salió."}],
            )
        )
        lucia = add_contact(s, shop.workspace_id, "Lucía")
        talked = add_conversation(s, shop.workspace_id, shop.channel_id, "Pedro", at=NOW)
        add_message(s, talked, at=NOW, text="hola")
        ids = [lucia.id, talked.contact_id]
    res = client.post(
        "/api/v1/broadcasts",
        json={
            "template": {"name": "aviso", "language": "es"},
            "variables": {"body.1": "{first_name|cliente}"},
            "audience": {"kind": "contacts", "contact_ids": ids},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 201, res.text
    found = owner_web.get("/inbox?status=any&source=broadcast").text
    assert found.count('data-testid="conversation-row"') == 2
    previews = _previews(found)
    assert len(previews) == 2 and all(p.endswith("tu pedido salió.") for p in previews), previews
    assert 'data-testid="closed-hint"' not in found


def test_an_imported_message_that_failed_on_the_phone_says_why(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, status="resolved"
        )
        add_message(
            s,
            c,
            at=NOW,
            type_="video",
            content={"id": "v1", "caption": "Video del pedido"},
            text="Video del pedido",
            direction="outbound",
            source="history",
            status="failed",
        )
        cid = c.id
    page = owner_web.get(f"/inbox/c/{cid}").text
    failure = re.search(r'data-testid="failure">(.*?)</span>', page, re.S)
    assert failure is not None
    assert "recorded this message as failed when it was sent from the phone" in failure.group(1)
    assert "does not say why" in failure.group(1)


def test_the_bell_is_an_icon_drawn_by_puente_with_a_label(owner_web: WebClient) -> None:
    page = owner_web.get("/inbox").text
    bell = re.search(r'<button[^>]*id="notif-toggle".*?</button>', page, re.S)
    assert bell is not None
    assert "🔔" not in bell.group(0)
    assert '<svg class="bell-icon"' in bell.group(0) and 'aria-hidden="true"' in bell.group(0)
    assert '<span class="visually-hidden">Notifications</span>' in bell.group(0)
