"""A customer of the sandbox (our Meta) sends a chat link's prefilled text: the number's
link counts the conversation once, whatever the customer writes after."""

from __future__ import annotations

from typing import Any

from tests.channels.conftest import NUMBER, Coex
from tests.waiting import wait_until

CUSTOMER = "5215512345678"


def test_the_prefilled_text_from_the_sandbox_counts_once(coex: Coex) -> None:
    channel_id = coex.onboard(share_history=False)
    base = f"/channels/{channel_id}/chat-links"
    res = coex.api.post(base, json={"name": "Mostrador", "text": "Hola, quiero hacer un pedido"})
    assert res.status_code == 201, res.text
    link = res.json()

    def send(text: str) -> None:
        body = {"from": CUSTOMER, "name": "Marta", "text": text}
        sent = coex.control.post(f"/numbers/{NUMBER}/inbound", json=body)
        assert sent.status_code == 201, sent.text

    def count() -> int:
        return int(coex.api.get(f"{base}/{link['id']}").json()["conversations"])

    send(link["prefilled_text"])
    wait_until(lambda: count() == 1, seconds=60, what="the link's first conversation")

    send("¿Y hacen envíos?")

    def messages() -> list[dict[str, Any]]:
        found = coex.api.get("/conversations").json()["items"]
        if not found:
            return []
        url = f"/conversations/{found[0]['id']}/messages"
        items: list[dict[str, Any]] = coex.api.get(url).json()["items"]
        return items

    wait_until(lambda: len(messages()) == 2, seconds=60, what="the second message")
    assert count() == 1
    bodies = {m["content"]["body"] for m in messages()}
    assert bodies == {link["prefilled_text"], "¿Y hacen envíos?"}
