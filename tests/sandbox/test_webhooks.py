"""The webhook sender: handshake, signature, batching and each real-world fault."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tests.sandbox.conftest import (
    APP_SECRET,
    LUCIA,
    VERIFY,
    WABA,
    Harness,
    Receiver,
    SandboxFactory,
)


def test_handshake_comes_first_and_every_post_is_signed(sandbox: Harness) -> None:
    sandbox.inbound(text="hola")
    [change] = sandbox.receiver.wait_changes("messages", 1)
    handshake = sandbox.receiver.handshakes[0]
    assert handshake["hub.mode"] == "subscribe" and handshake["hub.verify_token"] == VERIFY
    post = sandbox.receiver.posts[0]
    assert post["body"]["object"] == "whatsapp_business_account"
    assert sandbox.receiver.bad_signatures == 0
    expected = hmac.new(APP_SECRET.encode(), post["raw"], hashlib.sha256).hexdigest()
    assert len(expected) == 64
    msg = change["value"]["messages"][0]
    assert msg["from"] == LUCIA and msg["text"] == {"body": "hola"}
    assert change["value"]["contacts"][0]["profile"]["name"] == "Lucía Gómez"


def test_failed_handshake_blocks_delivery_and_says_why(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(verify_token="wrong-token")
    sandbox.inbound(text="hola")
    stats = sandbox.receiver.wait_for(
        lambda: (s := sandbox.control.get("/webhooks/stats").json())["handshake"]["error"] and s
    )
    assert stats["handshake"]["ok"] is False
    assert "HTTP 403" in stats["handshake"]["error"]
    assert stats["pending"] == 1 and sandbox.receiver.posts == []
    sandbox.config(verify_token=VERIFY)  # fixing the token verifies again and delivers
    sandbox.receiver.wait_changes("messages", 1)


def test_wrong_app_secret_is_caught_by_the_receiver(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(app_secret="another-secret")
    sandbox.inbound(text="hola")
    sandbox.receiver.wait_for(lambda: sandbox.receiver.bad_signatures >= 1)


def test_batching_puts_several_updates_in_one_post(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(batch_size=50, verify_token="wrong")  # hold them until verified
    for i in range(10):
        sandbox.inbound(text=f"mensaje {i}")
    sandbox.config(verify_token=VERIFY)
    changes = sandbox.receiver.wait_changes("messages", 10)
    assert len(sandbox.receiver.posts) < 10
    assert sorted(c["value"]["messages"][0]["text"]["body"] for c in changes) == [
        f"mensaje {i}" for i in range(10)
    ]


def test_non_200_answers_are_retried_with_backoff_until_acknowledged(sandbox: Harness) -> None:
    sandbox.receiver.statuses.extend([500, 503])
    sandbox.inbound(text="hola")
    sandbox.receiver.wait_changes("messages", 1)
    assert [p["status"] for p in sandbox.receiver.posts] == [500, 503, 200]
    stats = sandbox.control.get("/webhooks/stats").json()
    assert stats["retried"] == 2 and stats["acked"] == 1 and stats["pending"] == 0


def test_duplicate_fault_delivers_the_same_post_twice(sandbox: Harness) -> None:
    sandbox.config(faults={"duplicate": 1.0})
    msg = sandbox.inbound(text="hola")
    changes = sandbox.receiver.wait_changes("messages", 2)
    assert [c["value"]["messages"][0]["id"] for c in changes] == [msg["id"], msg["id"]]
    assert sandbox.control.get("/webhooks/stats").json()["duplicated"] == 1


def test_reorder_fault_shuffles_delivery(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(verify_token="wrong", faults={"reorder": 20, "seed": 3})
    for i in range(20):
        sandbox.inbound(text=str(i))
    sandbox.config(verify_token=VERIFY)
    changes = sandbox.receiver.wait_changes("messages", 20)
    order = [int(c["value"]["messages"][0]["text"]["body"]) for c in changes]
    assert sorted(order) == list(range(20)) and order != list(range(20))


def test_drop_fault_loses_posts_and_retries_them(sandbox: Harness) -> None:
    sandbox.config(faults={"drop": 0.5, "seed": 1})
    for i in range(6):
        sandbox.inbound(text=str(i))
    changes = sandbox.receiver.wait_changes("messages", 6)
    assert sorted(int(c["value"]["messages"][0]["text"]["body"]) for c in changes) == list(range(6))
    stats = sandbox.control.get("/webhooks/stats").json()
    assert stats["dropped"] >= 1 and stats["retried"] == stats["dropped"]


def test_delay_fault_still_delivers(sandbox: Harness) -> None:
    sandbox.config(faults={"delay": 0.2})
    sandbox.inbound(text="despacio")
    assert (
        sandbox.receiver.wait_changes("messages", 1)[0]["value"]["messages"][0]["text"]["body"]
        == "despacio"
    )


def test_override_callback_uri_routes_one_wabas_webhooks(
    sandbox: Harness, live_server_factory: Any
) -> None:
    other = Receiver(verify_token="per-waba-token")
    hook = live_server_factory(other.app()).start()
    bad = sandbox.graph.post(
        f"/{WABA}/subscribed_apps", json={"override_callback_uri": f"{hook.url}/hook"}
    )
    assert bad.json()["error"]["code"] == 100  # the verify token is required with an override
    res = sandbox.graph.post(
        f"/{WABA}/subscribed_apps",
        json={"override_callback_uri": f"{hook.url}/hook", "verify_token": "per-waba-token"},
    )
    assert res.json() == {"success": True}
    second = sandbox.control.post("/numbers", json={"display_phone_number": "15550004444"}).json()
    sandbox.inbound(text="al override")
    sandbox.inbound(number=second["id"], text="a la app")
    [routed] = other.wait_changes("messages", 1)
    assert routed["value"]["messages"][0]["text"]["body"] == "al override"
    assert other.handshakes[0]["hub.verify_token"] == "per-waba-token"
    [default] = sandbox.receiver.wait_changes("messages", 1)
    assert default["value"]["messages"][0]["text"]["body"] == "a la app"
    sandbox.graph.delete(f"/{WABA}/subscribed_apps")
    sandbox.inbound(text="de vuelta")
    assert (
        sandbox.receiver.wait_changes("messages", 2)[1]["value"]["messages"][0]["text"]["body"]
        == "de vuelta"
    )
