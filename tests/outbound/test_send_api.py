"""POST /api/v1/messages and friends: what an API client sees, refusals included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.channels.models import ConnectionState
from puente.runtime import Runtime
from tests.factories import make_token
from tests.outbound.conftest import Shop, close_window, make_shop, set_channel


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime.settings, runtime.db, run_workers=False)) as c:
        yield c


def token_for(runtime: Runtime, shop: Shop, scopes: list[str] | None = None) -> dict[str, str]:
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, shop.workspace_id)
        assert ws is not None
        return {"Authorization": f"Bearer {make_token(session, ws, scopes)}"}


@pytest.fixture
def auth(runtime: Runtime, shop: Shop) -> dict[str, str]:
    return token_for(runtime, shop)


def send(client: TestClient, auth: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/messages", json=body, headers=auth)


def test_text_into_an_open_window_is_queued_and_readable(
    client: TestClient, auth: dict[str, str], shop: Shop
) -> None:
    response = send(
        client, auth, conversation_id=shop.conversations[0], type="text", text={"body": "Hola"}
    )
    assert response.status_code == 202
    message = response.json()
    assert message["status"] == "queued"
    assert message["direction"] == "outbound"
    assert message["source"] == "api"
    assert message["type"] == "text"
    assert message["content"] == {"body": "Hola"}
    assert message["wamid"] is None
    assert message["conversation_id"] == shop.conversations[0]
    assert message["timestamp"].endswith("Z") or message["timestamp"].endswith("+00:00")
    assert message["edited"] is False
    assert message["revoked"] is False

    again = client.get(f"/api/v1/messages/{message['id']}", headers=auth)
    assert again.status_code == 200
    assert again.json() == message


def test_closed_window_refuses_free_text_but_takes_a_template(
    client: TestClient, auth: dict[str, str], shop: Shop, runtime: Runtime
) -> None:
    close_window(runtime.db, shop.conversations[0])
    refused = send(
        client, auth, conversation_id=shop.conversations[0], type="text", text={"body": "Hola"}
    )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "window_closed"
    assert "template" in error["message"]
    assert error["details"]["alternative"] == "template"

    template = send(
        client,
        auth,
        conversation_id=shop.conversations[0],
        type="template",
        template={
            "name": "seguimiento",
            "language": {"code": "es_MX"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
        },
    )
    assert template.status_code == 202
    assert template.json()["status"] == "queued"


def test_a_customer_who_never_wrote_only_gets_templates(
    client: TestClient, runtime: Runtime
) -> None:
    shop = make_shop(runtime, customers=1, window_open=False)
    refused = send(
        client,
        token_for(runtime, shop),
        conversation_id=shop.conversations[0],
        type="text",
        text={"body": "hola"},
    )
    assert refused.status_code == 422
    assert "has not written" in refused.json()["error"]["message"]


def test_unknown_contact_and_foreign_conversation_are_not_found(
    client: TestClient, auth: dict[str, str], runtime: Runtime
) -> None:
    unknown = send(client, auth, contact_id=999999, type="text", text={"body": "hola"})
    assert unknown.status_code == 404
    assert "contact" in unknown.json()["error"]["message"]

    other = make_shop(runtime, customers=1)
    foreign = send(
        client, auth, conversation_id=other.conversations[0], type="text", text={"body": "x"}
    )
    assert foreign.status_code == 404


def test_paused_number_refuses_with_409(
    client: TestClient, auth: dict[str, str], shop: Shop, runtime: Runtime
) -> None:
    set_channel(
        runtime.db,
        shop.channel_id,
        connection_state=ConnectionState.OFFBOARDED.value,
        state_reason="ACCOUNT_OFFBOARDED",
    )
    response = send(
        client, auth, conversation_id=shop.conversations[0], type="text", text={"body": "hola"}
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "channel_paused"
    assert "paused" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "text", "text": {"body": "x" * 4097}}, "text.body"),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "¿Cuál?"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": f"b{i}", "title": f"Opción {i}"}}
                            for i in range(4)
                        ]
                    },
                },
            },
            "buttons",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": "Elige"},
                    "action": {
                        "button": "Ver",
                        "sections": [
                            {
                                "title": "A",
                                "rows": [{"id": f"a{i}", "title": "x"} for i in range(6)],
                            },
                            {
                                "title": "B",
                                "rows": [{"id": f"b{i}", "title": "y"} for i in range(5)],
                            },
                        ],
                    },
                },
            },
            "action",
        ),
        ({"type": "image", "image": {"caption": "sin archivo"}}, "image"),
        ({"type": "text", "image": {"id": "1"}}, "body"),
    ],
)
def test_invalid_bodies_are_refused_naming_the_field(
    client: TestClient, auth: dict[str, str], shop: Shop, body: dict[str, Any], field: str
) -> None:
    response = send(client, auth, conversation_id=shop.conversations[0], **body)
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert any(field in f for f in fields), fields


def test_sending_to_a_new_number_creates_the_contact(
    client: TestClient, auth: dict[str, str], shop: Shop
) -> None:
    template = {"name": "bienvenida", "language": {"code": "es"}}
    response = send(
        client,
        auth,
        to="+52 55 1234 9999",
        channel_id=shop.channel_id,
        type="template",
        template=template,
    )
    assert response.status_code == 202
    contact = client.get(f"/api/v1/contacts/{response.json()['contact_id']}", headers=auth)
    assert contact.status_code == 200
    assert contact.json()["phone"] == "+525512349999"
    assert "api" in contact.json()["sources"]

    bad = send(
        client, auth, to="12", channel_id=shop.channel_id, type="template", template=template
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "to"


def test_scopes_and_authentication(client: TestClient, shop: Shop, runtime: Runtime) -> None:
    body = {"conversation_id": shop.conversations[0], "type": "text", "text": {"body": "hola"}}
    assert client.post("/api/v1/messages", json=body).status_code == 401
    read_only = token_for(runtime, shop, ["messages:read"])
    refused = client.post("/api/v1/messages", json=body, headers=read_only)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"

    sent = client.post("/api/v1/messages", json=body, headers=token_for(runtime, shop))
    assert client.get(f"/api/v1/messages/{sent.json()['id']}", headers=read_only).status_code == 200


def test_cancel_a_queued_message(client: TestClient, auth: dict[str, str], shop: Shop) -> None:
    message = send(
        client, auth, conversation_id=shop.conversations[0], type="text", text={"body": "oops"}
    ).json()
    cancelled = client.post(f"/api/v1/messages/{message['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/messages/{message['id']}/cancel", headers=auth)
    assert again.status_code == 409
    outbox = client.get("/api/v1/outbox", params={"state": "cancelled"}, headers=auth)
    assert [i["message_id"] for i in outbox.json()] == [message["id"]]
