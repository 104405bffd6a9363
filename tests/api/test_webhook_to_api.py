"""The foundation's done-when: a signed webhook POSTed by hand shows up through the API.

The webhook arrives before its number is connected (it is kept), the channel is then
created over the API (which releases it), and a second delivery of the same body
changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from fastapi import FastAPI

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.worker import IngestProcessor
from tests.api.conftest import Tenant
from tests.conftest import APP_SECRET, LiveServer

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
BUSINESS = "15550783881"
CUSTOMER = "16505551234"
METADATA = {"display_phone_number": BUSINESS, "phone_number_id": PHONE_NUMBER_ID}


def _change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "field": field,
        "value": {"messaging_product": "whatsapp", "metadata": METADATA, **value},
    }


WEBHOOK = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": WABA_ID,
            "changes": [
                _change(
                    "messages",
                    {
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
                        "messages": [
                            {
                                "from": CUSTOMER,
                                "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZCRTc0",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "¿Tienen envío a Monterrey?"},
                            }
                        ],
                    },
                ),
                _change(
                    "smb_message_echoes",
                    {
                        "message_echoes": [
                            {
                                "from": BUSINESS,
                                "to": CUSTOMER,
                                "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJFQ0hPMDE",
                                "timestamp": "1749416444",
                                "type": "text",
                                "text": {"body": "Sí, en 2 días"},
                            }
                        ]
                    },
                ),
                _change(
                    "smb_app_state_sync",
                    {
                        "state_sync": [
                            {
                                "type": "contact",
                                "contact": {
                                    "full_name": "Sheena (cliente)",
                                    "first_name": "Sheena",
                                    "phone_number": CUSTOMER,
                                },
                                "action": "add",
                                "metadata": {"timestamp": "1749416500"},
                            }
                        ]
                    },
                ),
            ],
        }
    ],
}


def _post_signed(server: LiveServer, body: bytes) -> httpx.Response:
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{server.url}/webhooks/whatsapp",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
    )


def _process(app: FastAPI) -> None:
    # What the background worker does on each wake-up, run here so the test needs no timing.
    processor = IngestProcessor(app.state.runtime)
    while processor.step():
        pass


def test_signed_webhook_appears_through_the_api(
    settings: Settings, db: Database, tenant: Tenant, live_server_factory: type[LiveServer]
) -> None:
    app = create_app(settings, db)
    server = live_server_factory(app).start()
    api = httpx.Client(base_url=f"{server.url}/api/v1", headers=tenant.auth)
    body = json.dumps(WEBHOOK).encode()

    unsigned = httpx.post(f"{server.url}/webhooks/whatsapp", content=body)
    assert unsigned.status_code == 401

    # The number is not connected yet: Meta still gets its 200 and nothing is lost.
    assert _post_signed(server, body).status_code == 200
    _process(app)
    assert api.get("/conversations").json()["items"] == []

    channel = api.post(
        "/channels",
        json={
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "display_phone_number": BUSINESS,
            "mode": "coexistence",
            "access_token": "EAAG-test",
        },
    )
    assert channel.status_code == 201, channel.text
    _process(app)

    conversations = api.get("/conversations").json()["items"]
    assert len(conversations) == 1
    conversation = conversations[0]
    assert conversation["channel_id"] == channel.json()["id"]

    messages = api.get(f"/conversations/{conversation['id']}/messages").json()["items"]
    assert [m["wamid"] for m in messages] == [
        "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJFQ0hPMDE",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZCRTc0",
    ]
    echo, inbound = messages
    assert inbound["conversation_id"] == conversation["id"]
    assert (inbound["direction"], inbound["source"], inbound["type"]) == (
        "inbound",
        "customer",
        "text",
    )
    assert inbound["status"] == "received"
    assert inbound["timestamp"] == "2025-06-08T20:59:43Z"  # Meta's time, not ours
    assert inbound["content"]["body"] == "¿Tienen envío a Monterrey?"
    assert (inbound["edited"], inbound["revoked"]) == (False, False)
    assert (echo["direction"], echo["source"]) == ("outbound", "business_app")
    assert echo["timestamp"] == "2025-06-08T21:00:44Z"

    contact = api.get("/contacts", params={"phone": "+1 650 555 1234"}).json()["items"]
    assert len(contact) == 1
    assert contact[0]["id"] == conversation["contact_id"]
    assert contact[0]["wa_id"] == CUSTOMER
    assert contact[0]["phone"] == "+16505551234"
    assert contact[0]["profile_name"] == "Sheena Nelson"
    assert contact[0]["business_app_name"] == "Sheena (cliente)"
    assert "business_app" in contact[0]["sources"]

    # Meta redelivers: same 200, same data.
    before = (
        api.get("/conversations").json(),
        api.get(f"/conversations/{conversation['id']}/messages").json(),
        api.get("/contacts").json(),
    )
    assert _post_signed(server, body).status_code == 200
    _process(app)
    after = (
        api.get("/conversations").json(),
        api.get(f"/conversations/{conversation['id']}/messages").json(),
        api.get("/contacts").json(),
    )
    assert after == before
    api.close()
