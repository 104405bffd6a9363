"""The Graph API emulation: accepted sends, statuses and pricing, and each of Meta's refusals."""

from __future__ import annotations

from tests.sandbox.conftest import LUCIA, NUMBER, WABA, Harness

CARLOS = "5215512345678"


def error_of(res: object) -> dict[str, object]:
    body = res.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    err = body["error"]
    assert err["type"] == "OAuthException" and err["fbtrace_id"]
    assert err["error_data"]["messaging_product"] == "whatsapp"
    return dict(err)


def test_send_inside_window_is_accepted_and_followed_by_statuses(sandbox: Harness) -> None:
    sandbox.inbound(text="¿Tienen talla M?")
    res = sandbox.text("+57 300 111 2233", "Sí, claro", biz_opaque_callback_data="ticket-7")
    assert res.status_code == 200
    body = res.json()
    assert body["contacts"] == [{"input": "+57 300 111 2233", "wa_id": LUCIA}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    statuses = sandbox.receiver.wait_for(
        lambda: (
            len(sandbox.receiver.statuses_of(wamid)) >= 3 and sandbox.receiver.statuses_of(wamid)
        )
    )
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    for status in statuses:
        assert status["recipient_id"] == LUCIA
        assert status["biz_opaque_callback_data"] == "ticket-7"
        assert status["pricing"] == {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    sent = sandbox.control.get("/sent", params={"to": LUCIA}).json()
    assert sent[-1]["id"] == wamid and sent[-1]["request"]["text"]["body"] == "Sí, claro"


def test_free_form_outside_the_window_fails_with_131047(sandbox: Harness) -> None:
    wamid = sandbox.text(CARLOS).json()["messages"][0]["id"]
    [status] = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(wamid))
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131047
    assert "pricing" not in status


def test_window_closes_24_hours_after_the_customer_wrote(sandbox: Harness) -> None:
    sandbox.config(policy_errors_sync=True)
    sandbox.inbound(CARLOS, text="hola")
    assert sandbox.text(CARLOS).status_code == 200
    sandbox.control.post("/clock", json={"advance_seconds": 24 * 3600 + 1})
    res = sandbox.text(CARLOS)
    assert res.status_code == 400 and error_of(res)["code"] == 131047


def test_click_to_whatsapp_opens_a_72_hour_free_entry_point(sandbox: Harness) -> None:
    sandbox.inbound(CARLOS, text="Vi el anuncio", referral={"headline": "Promo"})
    sandbox.control.post("/clock", json={"advance_seconds": 48 * 3600})
    wamid = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        }
    ).json()["messages"][0]["id"]
    status = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(wamid))[0]
    assert status["pricing"]["type"] == "free_entry_point"
    assert status["pricing"]["category"] == "utility"


def test_templates_are_billed_by_category(sandbox: Harness) -> None:
    media_id = sandbox.graph.post(
        f"/{NUMBER}/media",
        data={"messaging_product": "whatsapp"},
        files={"file": ("p.png", b"\x89PNG1234", "image/png")},
    ).json()["id"]
    res = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {
                "name": "promo_mensual",
                "language": {"code": "es"},
                "components": [
                    {
                        "type": "header",
                        "parameters": [{"type": "image", "image": {"id": media_id}}],
                    },
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Carlos"},
                            {"type": "text", "text": "20%"},
                        ],
                    },
                    {
                        "type": "button",
                        "sub_type": "quick_reply",
                        "index": 0,
                        "parameters": [{"type": "payload", "payload": "si"}],
                    },
                ],
            },
        }
    )
    assert res.status_code == 200, res.text
    wamid = res.json()["messages"][0]["id"]
    status = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(wamid))[0]
    assert status["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }


def test_unknown_or_unapproved_template_is_132001(sandbox: Harness) -> None:
    res = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "fr"}},
        }
    )
    assert res.status_code == 400 and error_of(res)["code"] == 132001
    res = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {"name": "no_such", "language": {"code": "es"}},
        }
    )
    assert error_of(res)["code"] == 132001


def test_parameter_count_mismatch_is_132000(sandbox: Harness) -> None:
    res = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {
                "name": "pedido_confirmado",
                "language": {"code": "es"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
            },
        }
    )
    err = error_of(res)
    assert err["code"] == 132000 and "expected number of params (2)" in str(err["error_data"])
    res = sandbox.send(
        {
            "to": CARLOS,
            "type": "template",
            "template": {
                "name": "seguimiento_envio",
                "language": {"code": "es"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "X1"}]}],
            },
        }
    )
    assert error_of(res)["code"] == 132000  # the URL button's parameter is missing


def test_paused_and_disabled_templates_are_refused(sandbox: Harness) -> None:
    template = sandbox.graph.get(
        f"/{WABA}/message_templates", params={"name": "hello_world"}
    ).json()["data"][0]
    body = {
        "to": CARLOS,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    sandbox.control.post(f"/templates/{template['id']}/status", json={"event": "PAUSED"})
    assert error_of(sandbox.send(body))["code"] == 132015
    sandbox.control.post(f"/templates/{template['id']}/status", json={"event": "DISABLED"})
    assert error_of(sandbox.send(body))["code"] == 132016


def test_marketing_to_a_user_who_stopped_marketing_fails_with_131050(sandbox: Harness) -> None:
    sandbox.config(policy_errors_sync=True)
    sandbox.control.post(
        "/customers", json={"wa_id": "573009990000", "name": "Ana", "marketing_opt_out": True}
    )
    sandbox.control.post(
        "/templates",
        json={
            "waba_id": WABA,
            "name": "oferta",
            "language": "es",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Oferta"}],
        },
    )
    res = sandbox.send(
        {
            "to": "573009990000",
            "type": "template",
            "template": {"name": "oferta", "language": {"code": "es"}},
        }
    )
    assert error_of(res)["code"] == 131050
    res = sandbox.send(
        {
            "to": "573009990000",
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        }
    )
    assert res.status_code == 200  # utility still reaches them


def test_undeliverable_and_offline_customers(sandbox: Harness) -> None:
    sandbox.control.post(
        "/customers", json={"wa_id": "573001230000", "name": "Off", "delivery": "sent"}
    )
    sandbox.control.post(
        "/customers", json={"wa_id": "573001230001", "name": "Gone", "delivery": "fail"}
    )
    tpl = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}
    offline = sandbox.send({"to": "573001230000", **tpl}).json()["messages"][0]["id"]
    gone = sandbox.send({"to": "573001230001", **tpl}).json()["messages"][0]["id"]
    failed = sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(gone))
    assert failed[0]["status"] == "failed" and failed[0]["errors"][0]["code"] == 131026
    sandbox.receiver.wait_for(lambda: sandbox.receiver.statuses_of(offline))
    sandbox.control.post("/webhooks/drain")
    assert [s["status"] for s in sandbox.receiver.statuses_of(offline)] == ["sent"]


def test_throughput_above_the_numbers_mps_is_130429(sandbox: Harness) -> None:
    sandbox.control.post(
        "/numbers", json={"display_phone_number": "15550001111", "coexistence": True}
    )
    number = next(
        n
        for n in sandbox.control.get("/numbers").json()
        if n["display_phone_number"] == "15550001111"
    )
    assert number["throughput"]["mps"] == 20
    tpl = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}
    codes = []
    for i in range(25):
        res = sandbox.send({"to": f"57300{i:07d}", **tpl}, number=number["id"])
        codes.append(res.status_code if res.status_code == 200 else error_of(res)["code"])
    # The new number has no template yet, so every accepted call would be 132001; rate comes first.
    assert codes.count(130429) >= 5


def test_pair_rate_limit_is_131056(sandbox: Harness) -> None:
    sandbox.config(pair_limit=3, pair_window=30)
    sandbox.inbound(text="hola")
    codes = [sandbox.text(LUCIA).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    res = sandbox.text(LUCIA)
    assert error_of(res)["code"] == 131056
    assert sandbox.text(CARLOS).status_code == 200  # other recipients are unaffected


def test_bad_token_is_190(sandbox: Harness) -> None:
    res = sandbox.raw.post(
        f"/v23.0/{NUMBER}/messages",
        headers={"Authorization": "Bearer nope"},
        json={"messaging_product": "whatsapp", "to": LUCIA, "text": {"body": "x"}},
    )
    assert res.status_code == 401 and error_of(res)["code"] == 190
    assert error_of(sandbox.raw.get(f"/v23.0/{NUMBER}"))["code"] == 190


def test_token_of_another_waba_is_refused(sandbox: Harness) -> None:
    other = sandbox.control.post("/numbers", json={"display_phone_number": "15550002222"}).json()
    token = sandbox.control.post("/tokens", json={"waba_ids": [other["waba_id"]]}).json()[
        "access_token"
    ]
    res = sandbox.raw.get(f"/v23.0/{NUMBER}", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 403 and error_of(res)["code"] == 200
    res = sandbox.raw.get(f"/v23.0/{other['id']}", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200


def test_invalid_parameters_are_100(sandbox: Harness) -> None:
    sandbox.inbound(text="hola")
    bad = [
        {"to": LUCIA, "type": "text", "text": {"body": ""}},
        {"to": LUCIA, "type": "text", "text": {"body": "x" * 4097}},
        {"to": "abc", "type": "text", "text": {"body": "x"}},
        {"to": LUCIA, "type": "sms", "sms": {}},
        {"to": LUCIA, "type": "image", "image": {"id": "999"}},
        {"to": LUCIA, "type": "audio", "audio": {"link": "https://x/a.ogg", "caption": "no"}},
        {
            "to": LUCIA,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": str(i), "title": "b"}} for i in range(4)
                    ]
                },
            },
        },
        {
            "to": LUCIA,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "?"},
                "action": {
                    "button": "Ver",
                    "sections": [
                        {"title": "A", "rows": [{"id": str(i), "title": "r"} for i in range(6)]},
                        {"title": "B", "rows": [{"id": f"b{i}", "title": "r"} for i in range(5)]},
                    ],
                },
            },
        },
        {"to": LUCIA, "type": "template", "template": {"name": "hello_world"}},
    ]
    for body in bad:
        res = sandbox.send(body)
        assert res.status_code == 400, body
        assert error_of(res)["code"] == 100, body
    res = sandbox.graph.post(f"/{NUMBER}/messages", json={"to": LUCIA, "text": {"body": "x"}})
    assert error_of(res)["code"] == 100  # messaging_product is required
    res = sandbox.graph.post(
        f"/{NUMBER}/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(res)["code"] == 100


def test_unknown_objects_and_paths_answer_in_metas_shape(sandbox: Harness) -> None:
    err = error_of(sandbox.graph.get("/123456"))
    assert err["code"] == 100 and err["error_subcode"] == 33
    assert error_of(sandbox.raw.get("/nonsense/1/messages"))["code"] == 2500


def test_mark_as_read_and_typing_indicator(sandbox: Harness) -> None:
    first = sandbox.inbound(text="uno")
    second = sandbox.inbound(text="dos")
    res = sandbox.send(
        {"status": "read", "message_id": second["id"], "typing_indicator": {"type": "text"}}
    )
    assert res.json() == {"success": True}
    chat = sandbox.control.get(f"/numbers/{NUMBER}/chats/{LUCIA}").json()
    assert {m["id"]: m["status"] for m in chat} == {first["id"]: "read", second["id"]: "read"}
    assert error_of(sandbox.send({"status": "read", "message_id": "wamid.nope"}))["code"] == 100


def test_phone_number_fields(sandbox: Harness) -> None:
    fields = sandbox.graph.get(
        f"/{NUMBER}", params={"fields": "is_on_biz_app,platform_type,throughput"}
    ).json()
    assert fields == {
        "id": NUMBER,
        "is_on_biz_app": True,
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD", "mps": 20},
    }
    listed = sandbox.graph.get(f"/{WABA}/phone_numbers").json()
    assert listed["data"][0]["display_phone_number"] == "15550783881"
    new = sandbox.control.post(
        "/numbers", json={"display_phone_number": "15550003333", "coexistence": False}
    ).json()
    assert new["is_on_biz_app"] is False and new["throughput"]["mps"] == 80


def test_subscribed_apps(sandbox: Harness) -> None:
    assert sandbox.graph.get(f"/{WABA}/subscribed_apps").json() == {"data": []}
    assert sandbox.graph.post(f"/{WABA}/subscribed_apps").json() == {"success": True}
    data = sandbox.graph.get(f"/{WABA}/subscribed_apps").json()["data"]
    assert data[0]["whatsapp_business_api_data"]["id"]


def test_media_upload_url_download_expiry_and_delete(sandbox: Harness) -> None:
    res = sandbox.graph.post(
        f"/{NUMBER}/media",
        data={"messaging_product": "whatsapp"},
        files={"file": ("f.pdf", b"%PDF-1.4 hola", "application/pdf")},
    )
    media_id = res.json()["id"]
    info = sandbox.graph.get(f"/{media_id}").json()
    assert info["mime_type"] == "application/pdf" and info["file_size"] == 13
    assert sandbox.raw.get(info["url"]).status_code == 401  # the token is required
    assert sandbox.graph.get(info["url"]).content == b"%PDF-1.4 hola"
    sandbox.control.post("/clock", json={"advance_seconds": 301})
    assert sandbox.graph.get(info["url"]).status_code == 404  # URLs live 5 minutes
    assert sandbox.graph.get(sandbox.graph.get(f"/{media_id}").json()["url"]).status_code == 200
    assert sandbox.graph.delete(f"/{media_id}").json() == {"success": True}
    assert error_of(sandbox.graph.get(f"/{media_id}"))["code"] == 100
    bad = sandbox.graph.post(
        f"/{NUMBER}/media",
        data={"messaging_product": "whatsapp"},
        files={"file": ("x.exe", b"MZ", "video/x-msvideo")},
    )
    assert error_of(bad)["code"] == 131053


def test_template_review_lifecycle(sandbox: Harness) -> None:
    created = sandbox.graph.post(
        f"/{WABA}/message_templates",
        json={
            "name": "bienvenida",
            "language": "es",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Bienvenido {{1}}"}],
        },
    ).json()
    assert created["status"] == "PENDING"
    rejected = sandbox.graph.post(
        f"/{WABA}/message_templates",
        json={
            "name": "please_reject_me",
            "language": "es",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "x"}],
        },
    ).json()
    updates = sandbox.receiver.wait_changes("message_template_status_update", 2)
    by_id = {u["value"]["message_template_id"]: u for u in updates}
    assert by_id[int(created["id"])]["value"]["event"] == "APPROVED"
    assert by_id[int(rejected["id"])]["value"]["event"] == "REJECTED"
    assert "time" in by_id[int(created["id"])]["entry"]
    sandbox.control.post(f"/templates/{created['id']}/status", json={"event": "PAUSED"})
    paused = sandbox.receiver.wait_changes("message_template_status_update", 3)[-1]["value"]
    assert paused["event"] == "PAUSED" and paused["other_info"]["title"] == "FIRST_PAUSE"
    assert sandbox.graph.get(f"/{created['id']}").json()["status"] == "PAUSED"
    bad = sandbox.graph.post(
        f"/{WABA}/message_templates",
        json={"name": "Bad Name", "language": "es", "category": "UTILITY", "components": []},
    )
    assert error_of(bad)["code"] == 100
    assert sandbox.graph.delete(
        f"/{WABA}/message_templates", params={"name": "bienvenida"}
    ).json() == {"success": True}
