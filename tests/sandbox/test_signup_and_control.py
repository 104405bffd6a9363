"""Embedded Signup emulation and the control API's own 4xx answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.sandbox.conftest import APP_SECRET, NUMBER, Harness


def exchange(sandbox: Harness, code: str, secret: str = APP_SECRET) -> dict[str, object]:
    app_id = sandbox.control.get("/state").json()["app_id"]
    res = sandbox.raw.get(
        "/v23.0/oauth/access_token",
        params={"client_id": app_id, "client_secret": secret, "code": code},
    )
    return dict(res.json())


def test_coexistence_signup_needs_the_code_confirmed_on_the_phone(sandbox: Harness) -> None:
    started = sandbox.control.post(
        "/signups", json={"mode": "coexistence", "phone": "573104445566"}
    ).json()
    assert (
        started["confirmed"] is False
        and started["code"] is None
        and started["session_info"] is None
    )
    wrong = sandbox.control.post(
        f"/signups/{started['id']}/confirm", json={"confirm_code": "000000x"}
    )
    assert wrong.status_code == 400
    done = sandbox.control.post(
        f"/signups/{started['id']}/confirm",
        json={"confirm_code": started["confirm_code"], "share_history": False},
    ).json()
    assert done["session_info"] == {
        "data": {"waba_id": started["waba_id"]},
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "version": 3,
    }
    token = exchange(sandbox, done["code"])["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    numbers = sandbox.raw.get(
        f"/v23.0/{started['waba_id']}/phone_numbers",
        headers=headers,
        params={"fields": "id,display_phone_number,is_on_biz_app,platform_type"},
    ).json()
    assert numbers["data"] == [
        {
            "id": started["phone_number_id"],
            "display_phone_number": "573104445566",
            "is_on_biz_app": True,
            "platform_type": "CLOUD_API",
        }
    ]
    assert sandbox.raw.post(
        f"/v23.0/{started['waba_id']}/subscribed_apps", headers=headers
    ).json() == {"success": True}
    assert sandbox.raw.get(f"/v23.0/{NUMBER}", headers=headers).status_code == 403  # not its WABA
    res = sandbox.raw.post(
        f"/v23.0/{started['phone_number_id']}/smb_app_data",
        headers=headers,
        json={"messaging_product": "whatsapp", "sync_type": "history"},
    )
    assert "request_id" in res.json()
    [change] = sandbox.receiver.wait_changes("history", 1)
    assert change["value"]["history"][0]["errors"][0]["code"] == 2593109


def test_new_number_signup_finishes_at_once(sandbox: Harness) -> None:
    done = sandbox.control.post("/signups", json={"mode": "new", "phone": "5215599998888"}).json()
    assert done["session_info"]["event"] == "FINISH"
    assert done["session_info"]["data"]["phone_number_id"] == done["phone_number_id"]
    token = exchange(sandbox, done["code"])["access_token"]
    fields = sandbox.raw.get(
        f"/v23.0/{done['phone_number_id']}",
        headers={"Authorization": f"Bearer {token}"},
        params={"fields": "is_on_biz_app,throughput"},
    ).json()
    assert fields["is_on_biz_app"] is False and fields["throughput"]["mps"] == 80


def test_signup_code_expires_after_30_seconds_and_works_once(sandbox: Harness) -> None:
    first = sandbox.control.post("/signups", json={"mode": "new", "phone": "5215500001111"}).json()
    sandbox.control.post("/clock", json={"advance_seconds": 31})
    err = exchange(sandbox, first["code"])["error"]
    assert err["code"] == 100 and "expired" in err["message"]  # type: ignore[index]
    second = sandbox.control.post("/signups", json={"mode": "new", "phone": "5215500002222"}).json()
    assert "access_token" in exchange(sandbox, second["code"])
    assert exchange(sandbox, second["code"])["error"]["code"] == 100  # type: ignore[index]
    third = sandbox.control.post("/signups", json={"mode": "new", "phone": "5215500003333"}).json()
    assert exchange(sandbox, third["code"], secret="wrong")["error"]["code"] == 1  # type: ignore[index]


def test_control_api_answers_bad_requests_with_clear_4xx(sandbox: Harness) -> None:
    c = sandbox.control
    assert c.post("/numbers", json={"display_phone_number": "abc"}).status_code == 422
    assert c.post("/numbers", json={"display_phone_number": "15550783881"}).status_code == 409
    assert c.get("/numbers/404").status_code == 404
    assert (
        c.post("/numbers/404/inbound", json={"from": "573001112233", "text": "x"}).status_code
        == 404
    )
    res = c.post(f"/numbers/{NUMBER}/inbound", json={"from": "573001112233", "type": "telepathy"})
    assert res.status_code == 400 and "unknown inbound type" in res.json()["detail"]
    assert (
        c.post(
            f"/numbers/{NUMBER}/inbound", json={"from": "573001112233", "type": "text"}
        ).status_code
        == 400
    )
    assert c.post(f"/numbers/{NUMBER}/inbound", json={"text": "sin remitente"}).status_code == 422
    assert c.patch("/customers/0000000", json={"name": "x"}).status_code == 404
    assert (
        c.post(
            "/customers", json={"wa_id": "573001112233", "name": "x", "delivery": "maybe"}
        ).status_code
        == 422
    )
    assert c.post("/templates/1/status", json={"event": "PAUSED"}).status_code == 404
    assert c.post("/tokens", json={"waba_ids": ["nope"]}).status_code == 404
    assert c.post("/clock", json={"advance_seconds": -5}).status_code == 422
    assert c.patch("/config", json={"batch_size": 0}).status_code == 422
    assert c.delete(f"/numbers/{NUMBER}/contacts/111111111").status_code == 400
    assert c.post("/signups", json={"mode": "new", "phone": "15550783881"}).status_code == 400
    assert c.get("/signups/unknown").status_code == 404
    assert c.get("/openapi.json").json()["info"]["title"].startswith("Puente Meta sandbox")


def test_state_file_survives_a_restart(live_server_factory: object, tmp_path: Path) -> None:
    from puente.sandbox import SandboxConfig, create_sandbox_app

    state = tmp_path / "sandbox.json"
    first = live_server_factory(create_sandbox_app(SandboxConfig(state_file=state))).start()  # type: ignore[operator]
    with httpx.Client(base_url=f"{first.url}/_sandbox/api") as c:
        c.post("/customers", json={"wa_id": "573001234567", "name": "Persistida"})
        c.post(f"/numbers/{NUMBER}/inbound", json={"from": "573001234567", "text": "guárdame"})
    first.stop()
    second = live_server_factory(create_sandbox_app(SandboxConfig(state_file=state))).start()  # type: ignore[operator]
    with httpx.Client(base_url=f"{second.url}/_sandbox/api") as c:
        names = {x["wa_id"]: x["name"] for x in c.get("/customers").json()}
        chat = c.get(f"/numbers/{NUMBER}/chats/573001234567").json()
    assert names["573001234567"] == "Persistida"
    assert chat[0]["content"]["text"]["body"] == "guárdame"


def test_every_graph_call_can_be_read_back(sandbox: Harness) -> None:
    sandbox.graph.post(
        f"/{NUMBER}/smb_app_data", json={"messaging_product": "whatsapp", "sync_type": "history"}
    )
    sandbox.graph.post(
        f"/{NUMBER}/smb_app_data", json={"messaging_product": "whatsapp", "sync_type": "history"}
    )
    calls = sandbox.control.get("/requests", params={"path_contains": "smb_app_data"}).json()
    assert [c["status"] for c in calls] == [200, 400]
    assert calls[0]["method"] == "POST" and calls[0]["body"]["sync_type"] == "history"
