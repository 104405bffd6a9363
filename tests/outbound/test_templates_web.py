"""The /templates pages, signed in through the real form: list with status badges, the
live rule check, create, preview with sample values, delete; agents are kept out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from puente.secrets import secret_box
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.graph_sandbox import TOKEN, GraphSandbox, start_graph_sandbox
from tests.webclient import WebClient

# How the pages look and read runs on one leg: what they change is checked on both engines
# through the API and the domain tests (see the one_leg marker in tests/conftest.py).
pytestmark = pytest.mark.one_leg

WABA = "100200300"

VALID_FORM = {
    "name": "pedido_enviado",
    "category": "UTILITY",
    "language": "es_MX",
    "parameter_format": "positional",
    "header_format": "",
    "body_text": "Hola {{1}}, tu pedido {{2}} ya salió.",
    "body_samples": "Ana\nA-17",
    "footer_text": "Tienda Ejemplo",
    "buttons": "QUICK_REPLY | Gracias\nQUICK_REPLY | Tengo una duda",
}


@dataclass
class Site:
    web: WebClient
    graph: GraphSandbox
    workspace_id: int


def _site(settings: Settings, db: Database, live_server_factory: Any, role: str) -> Iterator[Site]:
    graph = start_graph_sandbox(live_server_factory)
    settings.graph_base_url = graph.url
    number = graph.add_number(waba_id=WABA)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        channel = make_channel(session, ws, phone_number_id=number["id"], waba_id=WABA)
        channel.access_token_encrypted = secret_box(settings).encrypt(TOKEN)
        user = make_user(session, ws, role=role)
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id=WABA,
                name="oferta",
                language="es",
                category="MARKETING",
                status="REJECTED",
                status_reason="PROMOTIONAL: Make it less pushy.",
                meta_id="9",
                components=[{"type": "BODY", "text": "Oferta"}],
            )
        )
        email, ws_id = user.email, ws.id
    with TestClient(create_app(settings, db)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield Site(web, graph, ws_id)


@pytest.fixture
def site(settings: Settings, db: Database, live_server_factory: Any) -> Iterator[Site]:
    yield from _site(settings, db, live_server_factory, "supervisor")


def test_list_shows_each_variant_with_its_status_and_reason(site: Site) -> None:
    page = site.web.get("/templates")
    assert page.status_code == 200
    assert 'data-testid="template-oferta"' in page.text
    assert "status-rejected" in page.text
    assert "Make it less pushy." in page.text


def test_live_check_names_each_problem_then_previews(site: Site) -> None:
    bad = {**VALID_FORM, "name": "Pedido Enviado", "body_text": "{{1}}, tu pedido {{3}}"}
    r = site.web.htmx("POST", "/templates/check", data=bad)
    assert r.status_code == 200
    assert 'data-testid="template-problems"' in r.text
    for code in (
        "name_format",
        "body_starts_with_variable",
        "body_ends_with_variable",
        "variables_not_consecutive",
    ):
        assert f'data-code="{code}"' in r.text
    ok = site.web.htmx("POST", "/templates/check", data=VALID_FORM)
    assert 'data-testid="template-preview"' in ok.text
    assert "Hola Ana, tu pedido A-17 ya salió." in ok.text


def test_invalid_form_is_refused_before_meta(site: Site) -> None:
    r = site.web.post("/templates/new", {**VALID_FORM, "footer_text": "x" * 61})
    assert r.status_code == 422
    assert 'data-code="footer_text_too_long"' in r.text
    assert 'value="pedido_enviado"' in r.text  # what was typed is kept
    assert site.graph.requests("/message_templates") == []


def test_create_preview_and_delete(site: Site) -> None:
    r = site.web.post("/templates/new", VALID_FORM, follow_redirects=True)
    assert r.status_code == 200, r.text
    assert 'data-testid="template-status"' in r.text and ">pending<" in r.text
    assert "Hola Ana, tu pedido A-17 ya salió." in r.text
    submitted = [q["body"] for q in site.graph.requests(method="POST")]
    assert submitted[-1]["name"] == "pedido_enviado"
    assert [b["type"] for b in submitted[-1]["components"][-1]["buttons"]] == [
        "QUICK_REPLY",
        "QUICK_REPLY",
    ]
    detail_url = str(r.url)
    tried = site.web.get(detail_url, params={"body.1": "Luis"})
    assert "Hola Luis, tu pedido A-17 ya salió." in tried.text

    gone = site.web.post(f"{detail_url}/delete", follow_redirects=True)
    assert gone.status_code == 200
    assert "Template deleted." in gone.text
    assert "pedido_enviado" not in gone.text
    assert site.web.get(detail_url).status_code == 404


def test_sync_button_reads_templates_from_meta(site: Site) -> None:
    site.graph.add_template(
        WABA,
        name="bienvenida",
        language="es",
        category="UTILITY",
        components=[{"type": "BODY", "text": "Bienvenido"}],
    )
    r = site.web.post("/templates/sync", follow_redirects=True)
    assert r.status_code == 200
    assert "Templates synced from Meta." in r.text
    assert 'data-testid="template-bienvenida"' in r.text
    assert 'data-testid="template-oferta"' not in r.text  # deleted at Meta meanwhile


def test_agents_cannot_manage_templates(
    settings: Settings, db: Database, live_server_factory: Any
) -> None:
    for site in _site(settings, db, live_server_factory, "agent"):
        assert site.web.get("/templates").status_code == 403
        assert site.web.post("/templates/new", VALID_FORM).status_code == 403
