"""Customers, the owner's Business app, history and contacts sync, and Meta's account events."""

from __future__ import annotations

import base64
import time

from tests.sandbox.conftest import LUCIA, NUMBER, Harness, SandboxFactory


def sync(sandbox: Harness, sync_type: str) -> dict[str, object]:
    res = sandbox.graph.post(
        f"/{NUMBER}/smb_app_data", json={"messaging_product": "whatsapp", "sync_type": sync_type}
    )
    return dict(res.json())


def test_customers_send_every_inbound_type(sandbox: Harness) -> None:
    first = sandbox.inbound(text="hola")
    specs = [
        {"type": "image", "media": {"caption": "Foto"}},
        {
            "type": "document",
            "media": {
                "data_b64": base64.b64encode(b"%PDF-1.4 x").decode(),
                "mime_type": "application/pdf",
                "filename": "f.pdf",
            },
        },
        {"type": "audio", "media": {"voice": True}},
        {"type": "video"},
        {"type": "sticker"},
        {"type": "location", "payload": {"latitude": 4.6, "longitude": -74.08, "name": "Tienda"}},
        {
            "type": "contacts",
            "payload": [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+573001"}]}],
        },
        {
            "type": "interactive",
            "payload": {"type": "button_reply", "button_reply": {"id": "si", "title": "Sí"}},
        },
        {
            "type": "interactive",
            "payload": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Uno"}},
        },
        {"type": "button", "payload": {"payload": "me_interesa", "text": "Me interesa"}},
        {"type": "reaction", "payload": {"message_id": first["id"], "emoji": "👍"}},
        {"type": "text", "text": "respuesta", "context_id": first["id"]},
        {"type": "text", "text": "desde anuncio", "referral": {"headline": "Promo"}},
        {"type": "edit", "payload": {"original_message_id": first["id"], "text": "hola (editado)"}},
        {"type": "revoke", "payload": {"original_message_id": first["id"]}},
        {"type": "unsupported"},
    ]
    for spec in specs:
        sandbox.inbound(**spec)
    changes = sandbox.receiver.wait_changes("messages", len(specs) + 1)
    msgs = [c["value"]["messages"][0] for c in changes]
    assert [m["type"] for m in msgs] == ["text"] + [s["type"] for s in specs]
    image = msgs[1]["image"]
    assert image["caption"] == "Foto" and image["mime_type"] == "image/png"
    url = sandbox.graph.get(f"/{image['id']}").json()["url"]
    assert sandbox.graph.get(url).content.startswith(b"\x89PNG")  # downloadable
    doc = sandbox.graph.get(sandbox.graph.get(f"/{msgs[2]['document']['id']}").json()["url"])
    assert doc.content == b"%PDF-1.4 x"
    assert msgs[3]["audio"]["voice"] is True
    assert msgs[12]["context"] == {"from": LUCIA, "id": first["id"]}
    assert msgs[13]["referral"]["headline"] == "Promo" and msgs[13]["referral"]["ctwa_clid"]
    assert msgs[14]["edit"]["message"]["text"]["body"] == "hola (editado)"
    assert msgs[15]["revoke"] == {"original_message_id": first["id"]}
    assert msgs[16]["errors"][0]["code"] == 131060
    for m in msgs:
        assert m["from"] == LUCIA and m["id"].startswith("wamid.") and m["timestamp"].isdigit()


def test_owner_app_messages_are_echoed_with_edits_and_revokes(sandbox: Harness) -> None:
    res = sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": LUCIA, "text": "Te atiendo yo"}
    )
    sent = res.json()
    sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages",
        json={
            "to": LUCIA,
            "type": "edit",
            "payload": {"original_message_id": sent["id"], "text": "Te atiendo yo 🙂"},
        },
    )
    sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages",
        json={"to": LUCIA, "type": "revoke", "payload": {"original_message_id": sent["id"]}},
    )
    echoes = [c["value"] for c in sandbox.receiver.wait_changes("smb_message_echoes", 3)]
    first = echoes[0]["message_echoes"][0]
    assert (
        first["from"] == "15550783881"
        and first["to"] == LUCIA
        and first["text"]["body"] == "Te atiendo yo"
    )
    assert echoes[1]["message_echoes"][0]["edit"]["original_message_id"] == sent["id"]
    assert echoes[2]["message_echoes"][0]["type"] == "revoke"
    # App messages never open the API window.
    sandbox.config(policy_errors_sync=True)
    assert sandbox.text("5215512345678").json()["error"]["code"] == 131047


def test_api_sends_are_not_echoed(sandbox: Harness) -> None:
    sandbox.inbound(text="hola")
    wamid = sandbox.text(LUCIA).json()["messages"][0]["id"]
    sandbox.receiver.wait_for(lambda: len(sandbox.receiver.statuses_of(wamid)) == 3)
    assert sandbox.receiver.changes("smb_message_echoes") == []


def test_edits_are_refused_after_15_minutes(sandbox: Harness) -> None:
    sent = sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": LUCIA, "text": "x"}
    ).json()
    sandbox.control.post("/clock", json={"advance_seconds": 16 * 60})
    res = sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages",
        json={
            "to": LUCIA,
            "type": "edit",
            "payload": {"original_message_id": sent["id"], "text": "y"},
        },
    )
    assert res.status_code == 400 and "15 minutes" in res.json()["detail"]


def test_contacts_sync_then_live_changes(sandbox: Harness) -> None:
    sandbox.control.put(
        f"/numbers/{NUMBER}/contacts/573005550000", json={"full_name": "Antes Delsync"}
    )
    assert sandbox.receiver.changes("smb_app_state_sync") == []  # nothing flows before the sync
    assert sync(sandbox, "smb_app_state_sync")["request_id"]
    [batch] = sandbox.receiver.wait_changes("smb_app_state_sync", 1)
    items = batch["value"]["state_sync"]
    assert len(items) == 4 and all(i["action"] == "add" and i["type"] == "contact" for i in items)
    assert {"full_name": "Lucía Gómez", "first_name": "Lucía", "phone_number": LUCIA} in [
        i["contact"] for i in items
    ]
    sandbox.control.put(f"/numbers/{NUMBER}/contacts/{LUCIA}", json={"full_name": "Lucía G. Ríos"})
    sandbox.control.delete(f"/numbers/{NUMBER}/contacts/573005550000")
    edit, remove = (
        c["value"]["state_sync"][0]
        for c in sandbox.receiver.wait_changes("smb_app_state_sync", 3)[1:]
    )
    assert edit["action"] == "add" and edit["contact"]["full_name"] == "Lucía G. Ríos"
    assert remove == {
        "type": "contact",
        "action": "remove",
        "contact": {"phone_number": "573005550000"},
        "metadata": remove["metadata"],
    }


def test_history_sync_in_three_phases_out_of_order_with_media(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(history_chunk_messages=40, faults={"reorder": 0})
    sandbox.control.post(
        f"/numbers/{NUMBER}/history", json={"chats": 12, "messages": 30, "seed": 5}
    )
    assert sync(sandbox, "history")["request_id"]

    def finished() -> bool:
        chunks = [
            h for c in sandbox.receiver.changes("history") for h in c["value"].get("history", [])
        ]
        return any(h["metadata"]["progress"] == 100 for h in chunks)

    sandbox.receiver.wait_for(finished)
    sandbox.control.post("/webhooks/drain")
    changes = sandbox.receiver.changes("history")
    chunks = [c["value"]["history"][0] for c in changes if "history" in c["value"]]
    assert sum(len(t["messages"]) for h in chunks for t in h["threads"]) == 360
    assert {h["metadata"]["phase"] for h in chunks} == {0, 1, 2}
    assert chunks[-1]["metadata"]["progress"] == 100
    phase1 = [h["metadata"]["chunk_order"] for h in chunks if h["metadata"]["phase"] == 1]
    assert sorted(phase1) == list(range(1, len(phase1) + 1)) and phase1 != sorted(phase1)
    now = time.time()
    for h in chunks:
        for thread in h["threads"]:
            for m in thread["messages"]:
                age_days = (now - int(m["timestamp"])) / 86400
                assert age_days <= 180
                assert ("to" in m) == (m["from"] == "15550783881")
                assert m["history_context"]["status"] in {
                    "DELIVERED",
                    "ERROR",
                    "PENDING",
                    "PLAYED",
                    "READ",
                    "SENT",
                }
    placeholders = {
        m["id"]: m
        for h in chunks
        for t in h["threads"]
        for m in t["messages"]
        if m["type"] == "media_placeholder"
    }
    media = [m for c in changes if "messages" in c["value"] for m in c["value"]["messages"]]
    assert placeholders and media
    for m in media:
        assert m["id"] in placeholders and now - int(m["timestamp"]) <= 14 * 86400 + 60
        assert sandbox.graph.get(f"/{m[m['type']]['id']}").status_code == 200
    assert len(media) < len(placeholders)  # older media stay placeholders


def test_history_sync_happens_once_per_onboarding(sandbox: Harness) -> None:
    assert "request_id" in sync(sandbox, "history")
    again = sync(sandbox, "history")
    assert again["error"]["code"] == 100 and "already" in again["error"]["error_data"]["details"]
    assert "request_id" in sync(sandbox, "smb_app_state_sync")


def test_declined_history_gives_2593109(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    sandbox.control.patch(f"/numbers/{NUMBER}", json={"history_sharing": "undecided"})
    sync(sandbox, "history")
    sandbox.control.post(f"/numbers/{NUMBER}/history/decision", json={"share": False})
    [change] = sandbox.receiver.wait_changes("history", 1)
    error = change["value"]["history"][0]["errors"][0]
    assert (
        error["code"] == 2593109
        and error["error_data"]["details"] == "History sharing is turned off by the business"
    )


def test_sync_after_24_hours_is_refused(sandbox: Harness) -> None:
    sandbox.control.post("/clock", json={"advance_seconds": 25 * 3600})
    assert sync(sandbox, "history")["error"]["code"] == 100


def test_account_events(sandbox: Harness) -> None:
    for reason in [
        "ACCOUNT_DISCONNECTED",
        "BUSINESS_DOWNGRADE",
        "CHANGE_NUMBER",
        "COMPANION_INACTIVITY",
        "PRIMARY_INACTIVITY",
        "USER_RE_REGISTERED",
    ]:
        res = sandbox.control.post(
            f"/numbers/{NUMBER}/events",
            json={"event": "PARTNER_REMOVED", "reason": reason, "initiated_by": "SYSTEM"},
        )
        assert res.status_code == 200
    sandbox.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_OFFBOARDED"})
    sandbox.inbound(text="¿hola?")  # not delivered while offboarded
    res = sandbox.send(
        {
            "to": LUCIA,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        }
    )
    assert res.json()["error"]["code"] == 133010
    sandbox.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_RECONNECTED"})
    updates = [c for c in sandbox.receiver.wait_changes("account_update", 8)]
    reasons = [u["value"]["disconnection_info"]["reason"] for u in updates[:6]]
    assert reasons[-1] == "USER_RE_REGISTERED" and len(set(reasons)) == 6
    assert [u["value"]["event"] for u in updates[6:]] == [
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
    ]
    assert all("time" in u["entry"] for u in updates)
    assert sandbox.receiver.changes("messages") == []
    bad = sandbox.control.post(
        f"/numbers/{NUMBER}/events", json={"event": "PARTNER_REMOVED", "reason": "BORED"}
    )
    assert bad.status_code == 400
