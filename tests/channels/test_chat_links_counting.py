"""The conversations a chat link started, counted from Meta's webhooks as they arrive
(signed, stored, processed by the ingest worker's own step): the first message carrying
the reference counts once; later messages, echoes of the owner's phone, imported history
and other numbers' codes do not; Meta's referral counts too."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.app import create_app
from puente.channels.chat_links_models import ChatLinkStart
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.worker import IngestProcessor
from tests.api.conftest import make_tenant
from tests.ingest.helpers import (
    DISPLAY_NUMBER,
    PHONE_NUMBER_ID,
    WABA_ID,
    dumps,
    envelope,
    messages_change,
    signed,
    text_message,
)

_wamids = itertools.count(1)


@dataclass
class Shop:
    app: FastAPI
    client: TestClient
    auth: dict[str, str]
    channel_id: int
    link: dict[str, Any]

    def deliver(self, *changes: dict[str, Any]) -> None:
        body = dumps(envelope(*changes))
        res = self.client.post("/webhooks/whatsapp", content=body, headers=signed(body))
        assert res.status_code == 200, res.text
        processor = IngestProcessor(self.app.state.runtime)
        while processor.step():
            pass

    def customer_writes(self, sender: str, text: str, **extra: Any) -> None:
        message = {**text_message(f"wamid.link{next(_wamids)}", text, sender), **extra}
        self.deliver(messages_change([message], sender=sender, name=f"Cliente {sender[-4:]}"))

    def count(self, link_id: int | None = None) -> int:
        link_id = link_id or self.link["id"]
        res = self.client.get(
            f"/api/v1/channels/{self.channel_id}/chat-links/{link_id}", headers=self.auth
        )
        return int(res.json()["conversations"])

    def messages_of(self, sender: str) -> int:
        res = self.client.get("/api/v1/conversations", headers=self.auth)
        for conversation in res.json()["items"]:
            contact = self.client.get(
                f"/api/v1/contacts/{conversation['contact_id']}", headers=self.auth
            ).json()
            if contact["wa_id"] == sender:
                url = f"/api/v1/conversations/{conversation['id']}/messages"
                return len(self.client.get(url, headers=self.auth).json()["items"])
        return 0


@pytest.fixture
def shop(settings: Settings, db: Database) -> Iterator[Shop]:
    tenant = make_tenant(db, "Panadería")
    app = create_app(settings, db, run_workers=False)
    with TestClient(app) as client:
        res = client.post(
            "/api/v1/channels",
            json={
                "phone_number_id": PHONE_NUMBER_ID,
                "waba_id": WABA_ID,
                "display_phone_number": DISPLAY_NUMBER,
                "mode": "coexistence",
                "access_token": "EAAG-test",
            },
            headers=tenant.auth,
        )
        assert res.status_code == 201, res.text
        channel_id = res.json()["id"]
        link = client.post(
            f"/api/v1/channels/{channel_id}/chat-links",
            json={"name": "Vitrina", "text": "Hola, quiero pan de masa madre"},
            headers=tenant.auth,
        ).json()
        yield Shop(app, client, tenant.auth, channel_id, link)


def test_the_first_message_with_the_reference_counts_once(shop: Shop) -> None:
    shop.customer_writes("16505551234", shop.link["prefilled_text"])
    assert shop.count() == 1
    # The same customer writes again, with the reference or without: still one.
    shop.customer_writes("16505551234", "¿A qué hora abren?")
    shop.customer_writes("16505551234", shop.link["prefilled_text"])
    assert shop.messages_of("16505551234") == 3
    assert shop.count() == 1

    # Another customer who edited the text around the reference (and its capitals).
    code = shop.link["code"]
    shop.customer_writes("16505559876", f"buenas! (Ref: {code.lower()}) tienen croissants?")
    assert shop.count() == 2


def test_a_conversation_that_began_without_the_reference_does_not_count(shop: Shop) -> None:
    shop.customer_writes("16505550001", "Hola")
    shop.customer_writes("16505550001", shop.link["prefilled_text"])
    assert shop.messages_of("16505550001") == 2
    assert shop.count() == 0


def test_echoes_history_and_unknown_codes_do_not_count(shop: Shop, db: Database) -> None:
    text = shop.link["prefilled_text"]
    metadata = {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    echo = {
        "field": "smb_message_echoes",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": metadata,
            "message_echoes": [
                {
                    "from": DISPLAY_NUMBER,
                    "to": "16505550002",
                    "id": "wamid.echo-with-ref",
                    "timestamp": "1749416444",
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    }
    history = {
        "field": "history",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": metadata,
            "history": [
                {
                    "metadata": {"phase": 0, "chunk_order": 1, "progress": 100},
                    "threads": [
                        {
                            "id": "16505550003",
                            "messages": [
                                {
                                    "from": "16505550003",
                                    "id": "wamid.history-with-ref",
                                    "timestamp": "1749416000",
                                    "type": "text",
                                    "text": {"body": text},
                                    "history_context": {"status": "READ"},
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
    shop.deliver(echo, history)
    assert shop.messages_of("16505550002") == 1
    assert shop.messages_of("16505550003") == 1
    shop.customer_writes("16505550004", "Hola (ref: ZZZZ22)")  # no such link
    assert shop.count() == 0
    with db.read(unscoped="test") as session:
        assert session.scalars(select(ChatLinkStart)).all() == []


def test_a_deleted_links_code_no_longer_counts(shop: Shop) -> None:
    base = f"/api/v1/channels/{shop.channel_id}/chat-links"
    other = shop.client.post(base, json={"name": "Radio"}, headers=shop.auth).json()
    assert shop.client.delete(f"{base}/{other['id']}", headers=shop.auth).status_code == 204
    shop.customer_writes("16505550005", other["prefilled_text"])
    assert shop.messages_of("16505550005") == 1
    listed = shop.client.get(base, headers=shop.auth).json()
    assert [(link["id"], link["conversations"]) for link in listed] == [(shop.link["id"], 0)]


def test_metas_referral_names_the_link(shop: Shop, db: Database) -> None:
    # A post whose button opens the chat link: Meta's referral carries its URL.
    referral = {
        "source_url": f"https://wa.me/{DISPLAY_NUMBER}?text={quote(shop.link['prefilled_text'])}",
        "source_id": "120211234567890",
        "source_type": "post",
        "headline": "Pan recién horneado",
        "body": "Escríbenos",
        "media_type": "image",
        "image_url": "https://example.com/pan.jpg",
    }
    shop.customer_writes("16505550006", "Hola, vi su publicación", referral=referral)
    assert shop.count() == 1
    with db.read(unscoped="test") as session:
        assert session.scalars(select(ChatLinkStart.via)).all() == ["referral"]


def test_two_links_named_in_one_first_message_both_count(shop: Shop) -> None:
    base = f"/api/v1/channels/{shop.channel_id}/chat-links"
    other = shop.client.post(base, json={"name": "Flyer"}, headers=shop.auth).json()
    shop.customer_writes("16505550007", f"{shop.link['prefilled_text']} {other['prefilled_text']}")
    assert (shop.count(), shop.count(other["id"])) == (1, 1)
