"""A template message reads in the inbox as its customer read it: the template's header,
body with the values filled in, footer and buttons under a small template badge, in the
conversation and as the list's preview; the same for a broadcast's messages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from tests.factories import make_token
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_contact, add_conversation, add_message
from tests.webclient import WebClient

SCRIPT = {"x-inbox": "1"}
SEEN = "Hola Juan, tu pedido #4821 está confirmado."


def _add_template(db: Database, shop: Shop) -> int:
    with db.unit_of_work(unscoped="test") as s:
        channel = s.get(Channel, shop.channel_id)
        assert channel is not None
        template = MessageTemplate(
            workspace_id=shop.workspace_id,
            waba_id=channel.waba_id,
            name="pedido_confirmado",
            language="es",
            category="UTILITY",
            status="APPROVED",
            parameter_format="positional",
            components=[
                {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
                {
                    "type": "BODY",
                    "text": "Hola {{1}}, tu pedido {{2}} está confirmado.",
                    "example": {"body_text": [["Ana", "A-1"]]},
                },
                {"type": "FOOTER", "text": "Tienda La Esquina"},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Gracias"},
                        {"type": "URL", "text": "Ver pedido", "url": "https://example.com/p"},
                    ],
                },
            ],
        )
        s.add(template)
        s.flush()
        return template.id


def _template_block(html: str) -> str:
    found = re.search(
        r'<div class="template-sent" data-testid="template">(.*?)\n  </div>', html, re.S
    )
    assert found is not None, html
    return found.group(1)


def _previews(html: str) -> list[str]:
    found = re.findall(r'data-testid="row-preview">(.*?)</span>\s*</', html, re.S)
    return [re.sub(r"<[^>]+>", "", p).strip() for p in found]


def test_a_sent_template_reads_as_the_customer_saw_it(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    template_id = _add_template(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Juan", at=NOW, window_open=False
        )
        add_message(s, c, at=NOW, text="¿Ya salió mi pedido?", wamid="wamid.JUAN1")
        cid = c.id
    sent = owner_web.post(
        f"/inbox/c/{cid}/send-template",
        {"template_id": template_id, "header.1": "#4821", "body.1": "Juan", "body.2": "#4821"},
        headers=SCRIPT,
    )
    assert sent.status_code == 200, sent.text

    block = _template_block(owner_web.get(f"/inbox/c/{cid}").text)
    assert 'data-testid="template-badge"' in block and "pedido_confirmado" in block
    assert "<strong>Pedido #4821</strong>" in block
    assert f'data-testid="template-body">{SEEN}</div>' in block
    assert "Tienda La Esquina" in block
    assert "<li>Gracias</li>" in block and "Ver pedido" in block
    assert "body: Juan" not in block and "Ana" not in block  # no raw values, no samples

    assert _previews(owner_web.get("/inbox").text) == [f"↪ {SEEN}"]  # an agent's, then the text


def test_a_broadcast_message_reads_as_the_customer_saw_it(
    owner_web: WebClient, client: TestClient, shop: Shop, db: Database
) -> None:
    _add_template(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        workspace = s.get(Workspace, shop.workspace_id)
        assert workspace is not None
        token = make_token(s, workspace, scopes=["broadcasts:write"])
        juan = add_contact(s, shop.workspace_id, "Juan")
        contact_id = juan.id
    res = client.post(
        "/api/v1/broadcasts",
        json={
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"header.1": "#4821", "body.1": "Juan", "body.2": "#4821"},
            "audience": {"kind": "contacts", "contact_ids": [contact_id]},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 201, res.text
    page = owner_web.get("/inbox?status=any").text
    link = re.search(r'href="/inbox/c/(\d+)', page)
    assert link is not None

    block = _template_block(owner_web.get(f"/inbox/c/{link.group(1)}").text)
    assert "<strong>Pedido #4821</strong>" in block
    assert f'data-testid="template-body">{SEEN}</div>' in block
    assert "Tienda La Esquina" in block and "<li>Gracias</li>" in block


def test_a_template_unknown_here_still_shows_its_values(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Marta", at=NOW)
        wire = {
            "name": "borrada",
            "language": {"code": "es"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Marta"}]}],
        }
        add_message(
            s,
            c,
            at=NOW,
            type_="template",
            content=wire,
            text="borrada",
            direction="outbound",
            source="api",
            status="sent",
        )
        cid = c.id
        assert s.scalar(select(MessageTemplate.id)) is None
    block = _template_block(owner_web.get(f"/inbox/c/{cid}").text)
    assert "borrada" in block and "Marta" in block
