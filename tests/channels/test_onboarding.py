"""Onboarding through the sandbox over real HTTP: coexistence and new numbers, the sync
requests (once each, failures visible and retryable), and a code that comes too late."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from puente.contacts.models import Contact
from puente.conversations.models import Message
from tests.channels.conftest import NUMBER, PHONE, Coex


def test_coexistence_onboarding_imports_contacts_and_history(coex: Coex) -> None:
    coex.control.post(f"/numbers/{NUMBER}/history", json={"chats": 6, "messages": 10, "seed": 3})
    started = coex.start()
    assert started["state"] == "waiting" and len(started["confirm_code"]) == 6
    # Until the owner confirms on the phone nothing happens.
    assert coex.poll(started["id"])["state"] == "waiting"
    coex.confirm(started)
    done = coex.poll(started["id"])
    assert done["state"] == "connected", done
    channel_id = done["channel_id"]

    channel = coex.api.get(f"/channels/{channel_id}").json()
    assert channel["mode"] == "coexistence" and channel["throughput_mps"] == 20
    assert channel["name"] == "Tienda La Esquina"  # Meta's verified name
    number = coex.control.get(f"/numbers/{NUMBER}").json()
    # Both syncs asked once, contacts first; the WABA is subscribed.
    assert set(number["syncs"]) == {"smb_app_state_sync", "history"}
    assert coex.sandbox.world.wabas[number["waba_id"]].subscribed

    # The last chunk's progress is written a moment before the number leaves "syncing".
    status = coex.wait_status(
        channel_id,
        lambda s: s["progress"] == 100 and s["state"] == "connected",
        "history import",
    )
    assert status["history_state"] == "complete"
    assert status["history_messages"] == 60
    kinds = [r["sync_type"] for r in status["sync_requests"]]
    assert kinds == ["smb_app_state_sync", "history"]
    assert all(r["state"] == "accepted" and r["request_id"] for r in status["sync_requests"])
    assert status["retryable_syncs"] == []

    with coex.db.read(unscoped="test") as session:
        oldest = session.scalar(select(func.min(Message.timestamp)))
        from_app = [
            c.wa_id for c in session.scalars(select(Contact)) if "business_app" in c.sources
        ]
    # Original dates are kept: the oldest message is months old, not from today.
    assert oldest is not None and oldest < dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    assert from_app


def test_new_cloud_api_number_connects_without_syncs(coex: Coex) -> None:
    started = coex.start("new_number", "+1 555 010 0300", business_name="Sucursal Norte")
    done = coex.poll(started["id"])
    assert done["state"] == "connected", done
    channel = coex.api.get(f"/channels/{done['channel_id']}").json()
    assert channel["mode"] == "cloud_api" and channel["throughput_mps"] == 80
    assert channel["display_phone_number"] == "15550100300"
    status = coex.status(done["channel_id"])
    assert status["sync_requests"] == [] and status["state"] == "connected"
    refused = coex.api.post(
        f"/channels/{done['channel_id']}/sync-requests", json={"sync_type": "history"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_coexistence"


def test_second_sync_request_is_refused_locally(coex: Coex) -> None:
    channel_id = coex.onboard()
    before = len(coex.sandbox.world.numbers[NUMBER].syncs)
    res = coex.api.post(f"/channels/{channel_id}/sync-requests", json={"sync_type": "history"})
    assert res.status_code == 409
    error = res.json()["error"]
    assert error["code"] == "sync_already_requested"
    assert "one per onboarding" in error["message"] and "onboard it again" in error["message"]
    # Meta was not asked a second time.
    assert len(coex.sandbox.world.numbers[NUMBER].syncs) == before


def test_failed_sync_request_shows_metas_error_and_can_be_retried(coex: Coex) -> None:
    started = coex.start()
    coex.confirm(started)
    # Meta already holds a history request for this onboarding (made elsewhere).
    coex.sandbox.world.numbers[NUMBER].syncs["history"] = "elsewhere"
    channel_id = coex.poll(started["id"])["channel_id"]
    status = coex.status(channel_id)
    failed = [r for r in status["sync_requests"] if r["state"] == "failed"]
    assert [r["sync_type"] for r in failed] == ["history"]
    assert "already requested" in failed[0]["error"]["message"].lower()
    assert failed[0]["error"]["code"] == 100
    assert status["retryable_syncs"] == ["history"]

    del coex.sandbox.world.numbers[NUMBER].syncs["history"]
    retried = coex.api.post(f"/channels/{channel_id}/sync-requests", json={"sync_type": "history"})
    assert retried.status_code == 201, retried.text
    assert retried.json()["state"] == "accepted" and retried.json()["request_id"]
    coex.wait_status(channel_id, lambda s: s["progress"] == 100, "history after the retry")


def test_retry_fails_again_with_metas_error_while_meta_refuses(coex: Coex) -> None:
    started = coex.start()
    coex.confirm(started)
    coex.sandbox.world.numbers[NUMBER].syncs["history"] = "elsewhere"
    channel_id = coex.poll(started["id"])["channel_id"]
    again = coex.api.post(f"/channels/{channel_id}/sync-requests", json={"sync_type": "history"})
    assert again.status_code == 502
    assert again.json()["error"]["code"] == "meta_refused"
    assert len([r for r in coex.status(channel_id)["sync_requests"] if r["state"] == "failed"]) == 2


def test_sync_window_closes_after_24_hours(coex: Coex) -> None:
    from puente.channels.models import Channel

    started = coex.start()
    coex.confirm(started)
    coex.sandbox.world.numbers[NUMBER].syncs["history"] = "elsewhere"
    channel_id = coex.poll(started["id"])["channel_id"]
    del coex.sandbox.world.numbers[NUMBER].syncs["history"]
    with coex.db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None and channel.onboarded_at is not None
        channel.onboarded_at -= dt.timedelta(hours=25)
    assert coex.status(channel_id)["retryable_syncs"] == []
    res = coex.api.post(f"/channels/{channel_id}/sync-requests", json={"sync_type": "history"})
    assert res.status_code == 409
    assert res.json()["error"]["code"] == "sync_window_closed"
    assert "onboard it again" in res.json()["error"]["message"]


def test_skipped_history_cannot_be_requested_later(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    status = coex.status(channel_id)
    assert status["history_skipped"] is True
    assert [r["sync_type"] for r in status["sync_requests"]] == ["smb_app_state_sync"]
    res = coex.api.post(f"/channels/{channel_id}/sync-requests", json={"sync_type": "history"})
    assert res.status_code == 409
    assert res.json()["error"]["code"] == "history_skipped"
    assert "history" not in coex.sandbox.world.numbers[NUMBER].syncs


def test_code_that_comes_too_late_says_what_to_do(coex: Coex) -> None:
    started = coex.start()
    coex.confirm(started)
    coex.control.post("/clock", json={"advance_seconds": 31})
    failed = coex.poll(started["id"])
    assert failed["state"] == "failed" and failed["channel_id"] is None
    assert "expired" in failed["error"]["message"] and "30 seconds" in failed["error"]["message"]
    assert "Start the signup again" in failed["error"]["next_step"]
    assert coex.api.get("/channels").json() == []
    # Starting again works.
    assert coex.onboard() > 0


def test_finish_with_a_used_code_fails_and_creates_nothing(coex: Coex) -> None:
    started = coex.start()
    coex.confirm(started)
    code = coex.sandbox.world.signups[coex.signup_ref(started["id"])].code
    assert coex.poll(started["id"])["state"] == "connected"
    res = coex.api.post(
        "/channels/onboardings/finish",
        json={"method": "coexistence", "code": code, "waba_id": "102290129340398"},
    )
    assert res.status_code == 400
    error = res.json()["error"]
    assert error["code"] == "onboarding_failed"
    assert "already used" in error["message"]
    assert error["details"]["next_step"].startswith("Start the signup again")
    attempts = coex.api.get("/channels/onboardings").json()
    assert [a["state"] for a in attempts] == ["failed", "connected"]


def test_channel_limit_refuses_a_new_signup(make_coex: object) -> None:
    coex = make_coex(max_channels_per_workspace=1)  # type: ignore[operator]
    coex.onboard()
    res = coex.api.post(
        "/channels/onboardings", json={"method": "new_number", "phone": "15550100301"}
    )
    assert res.status_code == 409 and res.json()["error"]["code"] == "channel_limit"


def test_declined_history_is_shown_as_not_shared(coex: Coex) -> None:
    channel_id = coex.onboard(share_history=False)
    status = coex.wait_status(
        channel_id, lambda s: s["history_state"] == "declined", "the 2593109 decline"
    )
    assert status["state"] == "connected"
    assert status["progress"] == 0


def test_history_sent_before_the_number_is_saved_is_applied_when_it_is(coex: Coex) -> None:
    coex.control.post(f"/numbers/{NUMBER}/history", json={"chats": 3, "messages": 4, "seed": 5})
    started = coex.start()
    coex.confirm(started)
    # Meta starts the history before Puente saved the number: Puente parks the chunks.
    res = coex.graph.post(
        f"/{NUMBER}/smb_app_data", json={"messaging_product": "whatsapp", "sync_type": "history"}
    )
    assert res.status_code == 200
    coex.control.post("/webhooks/drain")
    channel_id = coex.poll(started["id"])["channel_id"]
    # Released parked chunks are applied in any order: the one saying 100 % can come first.
    status = coex.wait_status(
        channel_id,
        lambda s: s["progress"] == 100 and s["history_messages"] == 12,
        "parked history",
    )
    assert status["history_messages"] == 12


def test_sandbox_signup_is_refused_when_talking_to_meta(make_coex: object) -> None:
    coex = make_coex()  # type: ignore[operator]
    coex.runtime.settings.graph_base_url = "https://graph.facebook.com"
    res = coex.api.post("/channels/onboardings", json={"method": "coexistence", "phone": PHONE})
    assert res.status_code == 409 and res.json()["error"]["code"] == "not_sandbox"


def test_finish_with_the_code_from_embedded_signup(coex: Coex) -> None:
    """Meta mode: the browser got the code and the session info; the server finishes."""
    signup = coex.control.post("/signups", json={"mode": "coexistence", "phone": PHONE}).json()
    confirmed = coex.control.post(
        f"/signups/{signup['id']}/confirm",
        json={"confirm_code": signup["confirm_code"], "share_history": True},
    ).json()
    assert confirmed["session_info"]["event"] == "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
    res = coex.api.post(
        "/channels/onboardings/finish",
        json={
            "method": "coexistence",
            "code": confirmed["code"],
            "waba_id": confirmed["session_info"]["data"]["waba_id"],
            "import_history": False,
        },
    )
    assert res.status_code == 201, res.text
    done = res.json()
    assert done["state"] == "connected" and done["phone_number_id"] == NUMBER
    status = coex.status(done["channel_id"])
    assert [r["sync_type"] for r in status["sync_requests"]] == ["smb_app_state_sync"]
    assert status["history_skipped"] is True
