"""The composer: a reply goes through the outbox and shows at once as pending; bad
input gets a clear message; a closed window hands over to the template picker."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from puente.channels.models import Channel
from puente.conversations.models import Message
from puente.db.session import Database
from puente.outbound.models import MessageTemplate, OutboxItem
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation, add_message
from tests.webclient import WebClient

SCRIPT = {"x-inbox": "1"}


def _conversation(db: Database, shop: Shop, *, window_open: bool = True) -> int:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, window_open=window_open
        )
        add_message(s, c, at=NOW - dt.timedelta(minutes=1), text="Hola", wamid="wamid.CUSTOMER1")
        return c.id


@dataclass
class Item:
    message_id: int
    payload: dict[str, Any]


def _outbox(db: Database) -> list[Item]:
    with db.read(unscoped="test") as s:
        rows = s.execute(select(OutboxItem.message_id, OutboxItem.payload).order_by(OutboxItem.id))
        return [Item(r[0], r[1]) for r in rows]


def test_a_reply_is_queued_and_shown_pending(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    response = owner_web.post(
        f"/inbox/c/{cid}/send", {"body": "  Sí, *mañana*  ", "key": "k-1"}, headers=SCRIPT
    )
    assert response.status_code == 200, response.text
    assert 'data-status="queued"' in response.text and "tick-pending" in response.text
    assert "<strong>mañana</strong>" in response.text
    items = _outbox(db)
    assert len(items) == 1 and items[0].payload["text"] == {"body": "Sí, *mañana*"}
    with db.read(unscoped="test") as s:
        message = s.get(Message, items[0].message_id)
        assert message is not None
        assert (message.source, message.sender_user_id) == ("agent", shop.owner_id)
    # The agent's name shows over their message in the view.
    assert "Olga Dueña" in owner_web.get(f"/inbox/c/{cid}").text


def test_the_same_press_of_send_never_sends_twice(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    first = owner_web.post(
        f"/inbox/c/{cid}/send", {"body": "Una vez", "key": "same"}, headers=SCRIPT
    )
    again = owner_web.post(
        f"/inbox/c/{cid}/send", {"body": "Una vez", "key": "same"}, headers=SCRIPT
    )
    assert first.status_code == again.status_code == 200
    assert re.findall(r'id="m-(\d+)"', first.text) == re.findall(r'id="m-(\d+)"', again.text)
    assert len(_outbox(db)) == 1


def test_reply_to_a_message_quotes_it(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _conversation(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    response = owner_web.post(
        f"/inbox/c/{cid}/send",
        {"body": "Claro", "reply_to": "wamid.CUSTOMER1", "key": "k"},
        headers=SCRIPT,
    )
    assert 'data-testid="quoted"' in response.text and "Hola" in response.text
    assert _outbox(db)[0].payload["context"] == {"message_id": "wamid.CUSTOMER1"}


def test_an_empty_or_too_long_message_is_refused_clearly(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    empty = owner_web.post(f"/inbox/c/{cid}/send", {"body": "   "}, headers=SCRIPT)
    assert empty.status_code == 422 and "Write a message first." in empty.text
    long = owner_web.post(f"/inbox/c/{cid}/send", {"body": "x" * 4097}, headers=SCRIPT)
    assert long.status_code == 422 and "too long" in long.text
    assert _outbox(db) == []


def test_a_closed_window_refuses_free_text_and_offers_templates(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop, window_open=False)
    with db.unit_of_work(unscoped="test") as s:
        channel = s.get(Channel, shop.channel_id)
        assert channel is not None
        s.add(
            MessageTemplate(
                workspace_id=shop.workspace_id,
                waba_id=channel.waba_id,
                name="seguimiento",
                language="es_MX",
                category="UTILITY",
                status="APPROVED",
                parameter_format="positional",
                components=[
                    {
                        "type": "BODY",
                        "text": "Hola {{1}}, tu pedido {{2}} está listo.",
                        "example": {"body_text": [["Lucía", "A-1"]]},
                    }
                ],
            )
        )
        s.flush()
        template_id = s.scalar(select(MessageTemplate.id))
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert 'data-testid="template-picker"' in page and "seguimiento (es_MX)" in page
    refused = owner_web.post(f"/inbox/c/{cid}/send", {"body": "Hola"}, headers=SCRIPT)
    assert refused.status_code == 422
    assert "24-hour window is closed" in refused.text
    assert refused.headers["x-inbox-refresh"] == "composer"

    form = owner_web.get(f"/inbox/c/{cid}/template?template_id={template_id}").text
    assert form.count('data-testid="template-var"') == 2
    assert "Hola Lucía, tu pedido A-1 está listo." in form  # the samples until values are typed
    preview = owner_web.get(
        f"/inbox/c/{cid}/template?template_id={template_id}&preview=1&body.1=Ana&body.2=Z-9"
    ).text
    assert "Hola Ana, tu pedido Z-9 está listo." in preview

    missing = owner_web.post(
        f"/inbox/c/{cid}/send-template",
        {"template_id": template_id, "body.1": "Ana"},
        headers=SCRIPT,
    )
    assert missing.status_code == 422 and "body.2" in missing.text
    sent = owner_web.post(
        f"/inbox/c/{cid}/send-template",
        {"template_id": template_id, "body.1": "Ana", "body.2": "Z-9", "key": "t1"},
        headers=SCRIPT,
    )
    assert sent.status_code == 200, sent.text
    assert "seguimiento" in sent.text
    payload = _outbox(db)[0].payload
    assert payload["type"] == "template"
    assert payload["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Z-9"}],
        }
    ]


def test_a_disconnected_number_pauses_sending_with_a_clear_message(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        channel = s.get(Channel, shop.channel_id)
        assert channel is not None
        channel.connection_state = "disconnected"
    owner_web.get(f"/inbox/c/{cid}")
    response = owner_web.post(f"/inbox/c/{cid}/send", {"body": "Hola"}, headers=SCRIPT)
    assert response.status_code == 409
    assert "disconnected: sending is paused" in response.text
    assert _outbox(db) == []


def test_reactions_go_out_through_the_outbox(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    with db.read(unscoped="test") as s:
        mid = s.scalar(select(Message.id).where(Message.wamid == "wamid.CUSTOMER1"))
    owner_web.get(f"/inbox/c/{cid}")
    response = owner_web.post(
        f"/inbox/c/{cid}/react", {"message_id": mid, "emoji": "👍", "key": "r1"}, headers=SCRIPT
    )
    assert response.status_code == 200, response.text
    assert _outbox(db)[0].payload["reaction"] == {"message_id": "wamid.CUSTOMER1", "emoji": "👍"}


def test_without_javascript_the_form_redirects_back(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    response = owner_web.post(f"/inbox/c/{cid}/send", {"body": "Sin JS"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/inbox/c/{cid}"
    with db.read(unscoped="test") as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 1
