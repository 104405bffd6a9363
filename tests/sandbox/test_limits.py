"""Meta's limits and late statuses over real HTTP: `played` for voice notes, messaging-limit tiers
per business portfolio, 131049 and 368 on demand, inbound messages using the number's
throughput, and `message_status` on paced templates."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import LUCIA, NUMBER, WABA, Harness
from tests.sandbox.test_graph import error_of

HELLO = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}


def statuses(sandbox: Harness, wamid: str, count: int) -> list[str]:
    found = sandbox.receiver.wait_for(
        lambda: (
            len(sandbox.receiver.statuses_of(wamid)) >= count
            and sandbox.receiver.statuses_of(wamid)
        )
    )
    return [s["status"] for s in found]


def settled(sandbox: Harness, wamid: str) -> list[dict[str, Any]]:
    """Every status of a message once the sandbox has nothing more scheduled or pending."""
    sandbox.control.post("/webhooks/drain")
    return sandbox.receiver.statuses_of(wamid)


def marketing_template(sandbox: Harness, name: str = "oferta") -> str:
    res = sandbox.control.post(
        "/templates",
        json={
            "waba_id": WABA,
            "name": name,
            "language": "es",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Oferta de la semana"}],
        },
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def template_send(sandbox: Harness, to: str, name: str = "oferta") -> Any:
    return sandbox.send(
        {"to": to, "type": "template", "template": {"name": name, "language": {"code": "es"}}}
    )


# -- played ---------------------------------------------------------------------------------------
def test_voice_notes_get_played_after_read_and_other_audio_does_not(sandbox: Harness) -> None:
    sandbox.inbound(text="¿Me mandas un audio?")
    voice = sandbox.send(
        {"to": LUCIA, "type": "audio", "audio": {"link": "https://x.test/a.ogg", "voice": True}}
    )
    assert voice.status_code == 200, voice.text
    voice_id = voice.json()["messages"][0]["id"]
    assert statuses(sandbox, voice_id, 4) == ["sent", "delivered", "read", "played"]
    played = sandbox.receiver.statuses_of(voice_id)[-1]
    assert played["recipient_id"] == LUCIA and played["pricing"]["type"] == "free_customer_service"
    chat = sandbox.control.get(f"/numbers/{NUMBER}/chats/{LUCIA}").json()
    assert chat[-1]["status"] == "played"

    plain = sandbox.send({"to": LUCIA, "type": "audio", "audio": {"link": "https://x.test/b.mp3"}})
    plain_id = plain.json()["messages"][0]["id"]
    statuses(sandbox, plain_id, 3)
    assert [s["status"] for s in settled(sandbox, plain_id)] == ["sent", "delivered", "read"]


def test_no_played_without_read_and_voice_must_be_a_boolean(sandbox: Harness) -> None:
    sandbox.control.post(
        "/customers", json={"wa_id": "573004440000", "name": "Sin leídos", "delivery": "delivered"}
    )
    sandbox.inbound("573004440000", text="hola")
    res = sandbox.send(
        {
            "to": "573004440000",
            "type": "audio",
            "audio": {"link": "https://x.test/a.ogg", "voice": True},
        }
    )
    wamid = res.json()["messages"][0]["id"]
    statuses(sandbox, wamid, 2)
    assert [s["status"] for s in settled(sandbox, wamid)] == ["sent", "delivered"]

    bad = sandbox.send(
        {"to": LUCIA, "type": "audio", "audio": {"link": "https://x.test/a.ogg", "voice": "sí"}}
    )
    assert bad.status_code == 400 and error_of(bad)["code"] == 100


# -- messaging limits -----------------------------------------------------------------------------
def test_messaging_limit_tier_counts_unique_users_outside_a_window(sandbox: Harness) -> None:
    number = sandbox.graph.get(f"/{NUMBER}").json()
    assert number["whatsapp_business_manager_messaging_limit"] == "TIER_UNLIMITED"
    sandbox.control.patch(f"/numbers/{NUMBER}", json={"mps": 10_000})
    res = sandbox.control.patch(f"/wabas/{WABA}", json={"messaging_limit": "TIER_250"})
    assert res.status_code == 200, res.text
    portfolio = res.json()
    assert portfolio["limit"] == 250 and portfolio["waba_ids"] == [WABA]
    number = sandbox.graph.get(
        f"/{NUMBER}", params={"fields": "whatsapp_business_manager_messaging_limit"}
    )
    assert number.json()["whatsapp_business_manager_messaging_limit"] == "TIER_250"

    for i in range(250):
        res = sandbox.send({"to": f"5730055{i:05d}", **HELLO})
        assert res.status_code == 200, res.text
    view = sandbox.control.get(f"/portfolios/{portfolio['id']}").json()
    assert view["reached_24h"] == 250

    # User 251 is refused the way Meta reports it: accepted, then a failed status.
    over = sandbox.send({"to": "573006660000", **HELLO}).json()["messages"][0]["id"]
    [failed] = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(over))
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131048
    # Someone already reached today, and anyone inside a service window, still gets messages.
    again = sandbox.send({"to": "573005500007", **HELLO}).json()["messages"][0]["id"]
    assert statuses(sandbox, again, 1)[0] == "sent"
    sandbox.inbound("573007770000", text="hola")
    inside = sandbox.send({"to": "573007770000", **HELLO}).json()["messages"][0]["id"]
    assert statuses(sandbox, inside, 1)[0] == "sent"
    assert sandbox.control.get(f"/portfolios/{portfolio['id']}").json()["reached_24h"] == 250

    # Switchable: refused in the HTTP answer, with another code.
    sandbox.config(messaging_limit_sync=True, messaging_limit_code=131064)
    res = sandbox.send({"to": "573006660001", **HELLO})
    assert res.status_code == 400 and error_of(res)["code"] == 131064

    # A rolling 24 h: a day later the oldest reaches no longer count.
    sandbox.control.post("/clock", json={"advance_seconds": 24 * 3600 + 1})
    assert sandbox.send({"to": "573006660001", **HELLO}).status_code == 200


def test_portfolio_limits_through_the_control_api(sandbox: Harness) -> None:
    [portfolio] = sandbox.control.get("/portfolios").json()
    assert portfolio["messaging_limit"] == "TIER_UNLIMITED" and portfolio["limit"] is None
    res = sandbox.control.patch(
        f"/portfolios/{portfolio['id']}", json={"messaging_limit": "TIER_10K"}
    )
    assert res.json()["limit"] == 10_000
    assert (
        sandbox.control.patch(
            f"/portfolios/{portfolio['id']}", json={"messaging_limit": "TIER_3"}
        ).status_code
        == 422
    )
    assert sandbox.control.get("/portfolios/999").status_code == 404
    assert (
        sandbox.control.patch("/wabas/999", json={"messaging_limit": "TIER_2K"}).status_code == 404
    )


# -- 131049 and 368 -------------------------------------------------------------------------------
def test_per_user_marketing_cap_is_131049_and_not_an_opt_out(sandbox: Harness) -> None:
    marketing_template(sandbox)
    res = sandbox.control.post(
        "/customers", json={"wa_id": "573008880000", "name": "Tope", "marketing_capped": True}
    )
    assert res.json()["marketing_capped"] is True
    wamid = template_send(sandbox, "573008880000").json()["messages"][0]["id"]
    [failed] = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(wamid))
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131049
    utility = sandbox.send({"to": "573008880000", **HELLO}).json()["messages"][0]["id"]
    assert statuses(sandbox, utility, 1)[0] == "sent"

    sandbox.config(policy_errors_sync=True)
    assert error_of(template_send(sandbox, "573008880000"))["code"] == 131049
    sandbox.control.patch("/customers/573008880000", json={"marketing_capped": False})
    assert template_send(sandbox, "573008880000").status_code == 200


def test_a_temporarily_blocked_number_is_refused_with_368(sandbox: Harness) -> None:
    res = sandbox.control.patch(f"/numbers/{NUMBER}", json={"blocked_for": 3600})
    assert res.status_code == 200 and res.json()["blocked_until"]
    refused = sandbox.send({"to": LUCIA, **HELLO})
    assert refused.status_code == 400
    err = error_of(refused)
    assert err["code"] == 368 and "blocked" in str(err["message"])
    sandbox.control.post("/clock", json={"advance_seconds": 3601})
    assert sandbox.send({"to": LUCIA, **HELLO}).status_code == 200

    sandbox.control.patch(f"/numbers/{NUMBER}", json={"blocked_for": 3600})
    assert sandbox.send({"to": LUCIA, **HELLO}).status_code == 400
    lifted = sandbox.control.patch(f"/numbers/{NUMBER}", json={"blocked_for": 0})
    assert lifted.json()["blocked_until"] is None
    assert sandbox.send({"to": LUCIA, **HELLO}).status_code == 200


# -- throughput ---------------------------------------------------------------------------------
def test_inbound_messages_use_the_numbers_throughput(sandbox: Harness) -> None:
    # Three messages per minute, so the test does not depend on how fast it runs.
    sandbox.config(throughput_window=60)
    sandbox.control.patch(f"/numbers/{NUMBER}", json={"mps": 3})
    sandbox.inbound(text="uno")
    sandbox.inbound(text="dos")
    assert sandbox.text(LUCIA, "tercero").status_code == 200
    refused = sandbox.text(LUCIA, "cuarto")
    assert refused.status_code == 400 and error_of(refused)["code"] == 130429
    # The customer is never refused: a fourth inbound message still reaches the webhook.
    sandbox.inbound(text="tres")

    def texts() -> list[str]:
        changes = sandbox.receiver.changes("messages")
        return [m["text"]["body"] for c in changes for m in c["value"].get("messages", [])]

    assert sandbox.receiver.wait_for(lambda: len(texts()) >= 3 and texts()) == [
        "uno",
        "dos",
        "tres",
    ]


# -- pacing ---------------------------------------------------------------------------------------
def test_paced_templates_answer_message_status_and_hold_sends(sandbox: Harness) -> None:
    template_id = marketing_template(sandbox)
    plain = sandbox.send({"to": LUCIA, **HELLO}).json()["messages"][0]
    assert set(plain) == {"id"}  # only paced templates carry message_status

    res = sandbox.control.post(
        f"/templates/{template_id}/pacing", json={"paced": True, "hold_after": 1}
    )
    assert res.status_code == 200 and res.json()["paced"] is True
    first = template_send(sandbox, "573001000001").json()["messages"][0]
    assert first["message_status"] == "accepted"
    assert statuses(sandbox, first["id"], 3) == ["sent", "delivered", "read"]
    held = template_send(sandbox, "573001000002").json()["messages"][0]
    assert held["message_status"] == "held_for_quality_assessment"
    assert settled(sandbox, held["id"]) == []

    released = sandbox.control.post(f"/templates/{template_id}/pacing", json={"paced": False})
    assert released.json()["released"] == 1
    assert statuses(sandbox, held["id"], 3) == ["sent", "delivered", "read"]
    after = template_send(sandbox, "573001000003").json()["messages"][0]
    assert "message_status" not in after


def test_pausing_a_paced_template_fails_what_it_held(sandbox: Harness) -> None:
    template_id = marketing_template(sandbox)
    sandbox.control.post(f"/templates/{template_id}/pacing", json={"paced": True})
    sandbox.config(paced_message_status=False)
    held = template_send(sandbox, "573001000004").json()["messages"][0]
    assert "message_status" not in held  # optional, as Meta documents it
    sandbox.control.post(f"/templates/{template_id}/status", json={"event": "PAUSED"})
    [failed] = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(held["id"]))
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == 132015
    assert sandbox.control.post("/templates/999/pacing", json={"paced": True}).status_code == 404
