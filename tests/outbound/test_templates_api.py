"""Templates through the REST API, against Puente's Meta sandbox over real HTTP:
create and submit, refusal before Meta, drafts, sync, preview, delete."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.app import create_app
from puente.channels.models import Channel
from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from puente.secrets import secret_box
from tests.factories import make_channel, make_token, make_workspace
from tests.graph_sandbox import TOKEN, GraphSandbox, start_graph_sandbox
from tests.outbound.test_templates_rules import marketing, utility

WABA = "100200300"


@dataclass
class Setup:
    client: TestClient
    graph: GraphSandbox
    auth: dict[str, str]
    workspace_id: int

    def template_requests(self, method: str) -> list[Any]:
        return self.graph.requests("/message_templates", method)


def add_channel(
    settings: Settings, db: Database, graph: GraphSandbox, workspace_id: int, waba: str = WABA
) -> None:
    """A number of the WABA, at Meta and in the workspace."""
    from puente.accounts.models import Workspace

    number = graph.add_number(waba_id=waba)
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        channel = make_channel(session, ws, phone_number_id=number["id"], waba_id=waba)
        channel.access_token_encrypted = secret_box(settings).encrypt(TOKEN)


@pytest.fixture
def setup(settings: Settings, db: Database, live_server_factory: Any) -> Iterator[Setup]:
    graph = start_graph_sandbox(live_server_factory)
    settings.graph_base_url = graph.url
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        token = make_token(session, ws)
        ws_id = ws.id
    add_channel(settings, db, graph, ws_id)
    with TestClient(create_app(settings, db), base_url="http://testserver/api/v1") as client:
        yield Setup(client, graph, {"Authorization": f"Bearer {token}"}, ws_id)


def test_a_valid_template_is_submitted_to_meta_and_listed_as_pending(setup: Setup) -> None:
    body = utility()
    for comp in body["components"]:
        comp["type"] = comp["type"].lower()  # people write it either way
    r = setup.client.post("/templates", json=body, headers=setup.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "PENDING"
    assert created["meta_id"]
    assert created["waba_id"] == WABA

    sent = setup.template_requests("POST")
    assert len(sent) == 1
    assert sent[0]["path"].endswith(f"/{WABA}/message_templates")
    assert sent[0]["body"]["name"] == "order_shipped"
    assert [c["type"] for c in sent[0]["body"]["components"]] == [
        "HEADER",
        "BODY",
        "FOOTER",
        "BUTTONS",
    ]
    assert sent[0]["body"]["parameter_format"] == "positional"

    listed = setup.client.get("/templates", headers=setup.auth).json()["items"]
    assert [(t["name"], t["language"], t["status"]) for t in listed] == [
        ("order_shipped", "es_MX", "PENDING")
    ]


def test_a_template_breaking_the_rules_never_reaches_meta(setup: Setup) -> None:
    body = marketing()
    body["name"] = "Promo Verano"
    body["components"][1]["text"] = "{{first_name}}, " + "x" * 1100
    body["components"][2]["buttons"].append({"type": "QUICK_REPLY", "text": "Otra"})
    r = setup.client.post("/templates", json=body, headers=setup.auth)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "template_invalid"
    problems = {(p["field"], p["code"]) for p in error["details"]}
    assert {
        ("name", "name_format"),
        ("components[1].text", "body_text_too_long"),
        ("components[1].text", "body_starts_with_variable"),
        ("components[2].buttons", "buttons_not_grouped"),
    } <= problems
    assert all(p["message"] for p in error["details"])
    assert setup.template_requests("POST") == []
    assert setup.client.get("/templates", headers=setup.auth).json()["items"] == []


def test_check_reports_problems_without_creating(setup: Setup) -> None:
    body = utility()
    body["components"][2]["text"] = "Visítanos en {{1}}"
    r = setup.client.post("/templates/check", json=body, headers=setup.auth)
    assert r.status_code == 200
    assert r.json()["valid"] is False
    assert r.json()["problems"][0]["code"] == "footer_has_variables"
    ok = setup.client.post("/templates/check", json=utility(), headers=setup.auth).json()
    assert ok == {"valid": True, "problems": []}
    assert setup.template_requests("POST") == []


def test_same_name_and_language_twice_is_a_conflict(setup: Setup) -> None:
    assert setup.client.post("/templates", json=utility(), headers=setup.auth).status_code == 201
    again = setup.client.post("/templates", json=utility(), headers=setup.auth)
    assert again.status_code == 409
    assert "exists already" in again.json()["error"]["message"]
    english = {**utility(), "language": "en_US"}
    assert setup.client.post("/templates", json=english, headers=setup.auth).status_code == 201
    names = [
        (t["name"], t["language"])
        for t in setup.client.get("/templates?name=order_shipped", headers=setup.auth).json()[
            "items"
        ]
    ]
    assert names == [("order_shipped", "en_US"), ("order_shipped", "es_MX")]


def test_a_draft_stays_local_until_submitted(setup: Setup) -> None:
    r = setup.client.post("/templates", json={**utility(), "submit": False}, headers=setup.auth)
    assert r.status_code == 201
    draft = r.json()
    assert draft["status"] == "DRAFT" and draft["meta_id"] is None
    assert setup.template_requests("POST") == []

    submitted = setup.client.post(f"/templates/{draft['id']}/submit", headers=setup.auth)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "PENDING"
    assert submitted.json()["id"] == draft["id"]
    assert len(setup.template_requests("POST")) == 1
    twice = setup.client.post(f"/templates/{draft['id']}/submit", headers=setup.auth)
    assert twice.status_code == 409


def test_meta_refusing_a_template_is_reported_with_metas_words(
    setup: Setup, settings: Settings, db: Database
) -> None:
    # The number's stored token has expired at Meta.
    with db.unit_of_work(scope=setup.workspace_id) as session:
        channel = session.scalars(select(Channel)).one()
        token = setup.graph.expiring_token([channel.waba_id])
        channel.access_token_encrypted = secret_box(settings).encrypt(token)
    setup.graph.expire_tokens()
    r = setup.client.post("/templates", json=utility(), headers=setup.auth)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "meta_refused"
    assert "Session has expired" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["code"] == 190
    assert setup.client.get("/templates", headers=setup.auth).json()["items"] == []


def test_sync_reads_every_template_from_meta(setup: Setup, db: Database) -> None:
    for i in range(130):  # more than one page of 100
        setup.graph.add_template(
            WABA,
            name=f"aviso_{i:03d}",
            language="es",
            category="UTILITY",
            parameter_format="POSITIONAL",
            components=[{"type": "BODY", "text": f"Aviso {i}"}],
        )
    setup.graph.add_template(
        WABA,
        rejected="PROMOTIONAL",
        name="oferta",
        language="es_MX",
        category="MARKETING",
        components=[{"type": "BODY", "text": "Oferta"}],
    )
    # A template deleted in WhatsApp Manager disappears here too; a local draft stays.
    with db.unit_of_work(unscoped="test") as session:
        for name, meta_id in (("borrada", "40000"), ("borrador", None)):
            session.add(
                MessageTemplate(
                    workspace_id=setup.workspace_id,
                    waba_id=WABA,
                    name=name,
                    language="es",
                    category="UTILITY",
                    status="APPROVED" if meta_id else "DRAFT",
                    meta_id=meta_id,
                    components=[{"type": "BODY", "text": "x"}],
                )
            )

    r = setup.client.post("/templates/sync", headers=setup.auth)
    assert r.status_code == 200, r.text
    assert r.json() == [{"waba_id": WABA, "created": 131, "updated": 0, "removed": 1}]

    items = setup.client.get("/templates", headers=setup.auth).json()["items"]
    names = {t["name"] for t in items}
    assert len(items) == 132
    assert "borrada" not in names and "borrador" in names
    rejected = next(t for t in items if t["name"] == "oferta")
    assert rejected["status"] == "REJECTED"
    assert rejected["status_reason"] == "PROMOTIONAL"
    approved = setup.client.get("/templates?status=approved", headers=setup.auth).json()["items"]
    assert len(approved) == 130

    again = setup.client.post("/templates/sync", headers=setup.auth).json()
    assert again == [{"waba_id": WABA, "created": 0, "updated": 131, "removed": 0}]


def test_preview_fills_samples_or_given_values(setup: Setup) -> None:
    created = setup.client.post("/templates", json=utility(), headers=setup.auth).json()
    url = f"/templates/{created['id']}/preview"
    sample = setup.client.post(url, json={}, headers=setup.auth).json()
    assert sample["header"] == "Pedido A-17"
    assert sample["body"] == "Hola Ana, tu pedido A-17 va en camino."
    assert sample["footer"] == "Tienda Ejemplo"
    assert sample["buttons"][0]["url"] == "https://tienda.example/envios/A-17"
    assert sample["missing"] == []

    given = setup.client.post(
        url,
        json={"values": {"body": {"1": "Luis"}, "buttons": {"0": "Z-9"}}},
        headers=setup.auth,
    ).json()
    assert given["body"] == "Hola Luis, tu pedido A-17 va en camino."
    assert given["buttons"][0]["url"] == "https://tienda.example/envios/Z-9"


def test_preview_of_named_variables(setup: Setup) -> None:
    created = setup.client.post("/templates", json=marketing(), headers=setup.auth).json()
    r = setup.client.post(
        f"/templates/{created['id']}/preview",
        json={"values": {"body": {"first_name": "Marta"}}},
        headers=setup.auth,
    ).json()
    assert r["header_format"] == "IMAGE"
    assert r["body"].startswith("Hola Marta, usa el código")
    assert [b["type"] for b in r["buttons"]] == ["QUICK_REPLY", "QUICK_REPLY", "COPY_CODE"]


def test_delete_removes_the_variant_at_meta_and_here(setup: Setup) -> None:
    created = setup.client.post("/templates", json=utility(), headers=setup.auth).json()
    r = setup.client.delete(f"/templates/{created['id']}", headers=setup.auth)
    assert r.status_code == 204
    deletes = setup.template_requests("DELETE")
    assert len(deletes) == 1
    assert setup.graph.templates(WABA) == []
    assert setup.client.get(f"/templates/{created['id']}", headers=setup.auth).status_code == 404
    gone = setup.client.delete(f"/templates/{created['id']}", headers=setup.auth)
    assert gone.status_code == 404


def test_delete_refused_by_meta_keeps_the_template(setup: Setup, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        t = MessageTemplate(
            workspace_id=setup.workspace_id,
            waba_id=WABA,
            name="desconocida",
            language="es",
            category="UTILITY",
            status="APPROVED",
            meta_id="123",
            components=[],
        )
        session.add(t)
        session.flush()
        template_id = t.id
    r = setup.client.delete(f"/templates/{template_id}", headers=setup.auth)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "meta_refused"
    with db.read(unscoped="test") as session:
        assert session.get(MessageTemplate, template_id) is not None


def test_templates_are_per_workspace_and_need_scopes(
    setup: Setup, settings: Settings, db: Database
) -> None:
    created = setup.client.post("/templates", json=utility(), headers=setup.auth).json()
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Otra")
        other_token = make_token(session, other)
        reader = make_token(session, other, scopes=["templates:read"])
    other_auth = {"Authorization": f"Bearer {other_token}"}
    assert setup.client.get(f"/templates/{created['id']}", headers=other_auth).status_code == 404
    assert setup.client.get("/templates", headers=other_auth).json()["items"] == []
    # No number connected: nothing to submit to.
    r = setup.client.post("/templates", json=utility(), headers=other_auth)
    assert r.status_code == 422
    assert "connect a WhatsApp number" in r.json()["error"]["message"]
    denied = setup.client.post(
        "/templates", json=utility(), headers={"Authorization": f"Bearer {reader}"}
    )
    assert denied.status_code == 403


def test_several_wabas_need_the_waba_id(setup: Setup, settings: Settings, db: Database) -> None:
    add_channel(settings, db, setup.graph, setup.workspace_id, waba="999888777")
    r = setup.client.post("/templates", json=utility(), headers=setup.auth)
    assert r.status_code == 422
    assert r.json()["error"]["details"] == {"waba_ids": ["100200300", "999888777"]}
    ok = setup.client.post(
        "/templates", json={**utility(), "waba_id": "999888777"}, headers=setup.auth
    )
    assert ok.status_code == 201
    assert setup.template_requests("POST")[0]["path"].endswith("/999888777/message_templates")
    with db.read(unscoped="test") as session:
        rows = session.scalars(select(MessageTemplate.waba_id)).all()
    assert rows == ["999888777"]
