"""Signed webhook bodies shaped like Meta's (whatsapp-protocol.md §1–2)."""

from __future__ import annotations

import json
from typing import Any

from puente.whatsapp.signature import compute_signature
from tests.conftest import APP_SECRET

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": compute_signature(secret.encode(), body),
    }


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def text_message(wamid: str, text: str = "Hola", sender: str = "16505551234") -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": text},
    }


def messages_change(
    messages: list[dict[str, Any]],
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    sender: str = "16505551234",
    name: str = "Sheena Nelson",
) -> dict[str, Any]:
    return {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DISPLAY_NUMBER,
                "phone_number_id": phone_number_id,
            },
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": messages,
        },
    }


def envelope(*changes: dict[str, Any], waba_id: str = WABA_ID) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": list(changes)}],
    }
