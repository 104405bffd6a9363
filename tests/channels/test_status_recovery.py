"""A send whose answer from Meta was lost is recovered from its status webhook (the outbox
id in biz_opaque_callback_data): once recovered it reads as sent and delivered, with no
"Meta could not be reached" left on it, and it is never sent twice."""

from __future__ import annotations

from typing import Any

from tests.channels.conftest import NUMBER, Coex
from tests.waiting import wait_until

CUSTOMER = "16505551234"


def _message(coex: Coex, message_id: int) -> dict[str, Any]:
    res = coex.api.get(f"/messages/{message_id}")
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_a_send_recovered_from_its_status_webhook_loses_its_retry_error(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    written = coex.control.post(
        f"/numbers/{NUMBER}/inbound", json={"from": CUSTOMER, "text": "¿Tienen envío?"}
    )
    assert written.status_code == 201, written.text
    # The conversation may be listed before the customer's message opened its window.
    wait_until(
        lambda: any(c["window_expires_at"] for c in coex.api.get("/conversations").json()["items"]),
        what="the customer's message opening the window",
    )
    # Meta accepts the next send but its answer is cut off on the way, and the status
    # webhooks are held back until Puente has recorded the failed attempt.
    res = coex.control.patch(
        "/config",
        json={"lose_send_answers": 1, "faults": {"drop": 1.0}, "backoff_max": 0.2},
    )
    assert res.status_code == 200, res.text
    sent = coex.api.post(
        "/messages",
        json={
            "to": "+" + CUSTOMER,
            "channel_id": channel_id,
            "type": "text",
            "text": {"body": "Sí, enviamos a todo el país"},
        },
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    waiting = wait_until(
        lambda: (m := _message(coex, message_id))["error"] and m, what="the lost answer"
    )
    assert waiting["status"] == "queued"
    assert "Meta could not be reached" in waiting["error"]["reason"]

    coex.control.patch("/config", json={"faults": {"drop": 0.0}})
    done = wait_until(
        lambda: (m := _message(coex, message_id))["status"] in ("delivered", "read") and m,
        what="the status webhooks to recover the send",
    )
    assert done["error"] is None
    assert done["wamid"]
    items = coex.api.get("/outbox").json()
    [item] = [i for i in items if i["message_id"] == message_id]
    assert (item["state"], item["last_error"]) == ("sent", None)
    assert len(coex.control.get("/sent", params={"to": CUSTOMER}).json()) == 1
