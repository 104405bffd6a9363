"""Meta's template rules and the template service's errors in the reader's language: the
editor's live check, the refused create form and a missing template's page are Spanish for
a Spanish-speaking supervisor and English for an English one, while the REST API keeps
its English messages and the shape of its details."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from tests.factories import PASSWORD, make_channel, make_token, make_user, make_workspace
from tests.inbox.helpers import add_conversation
from tests.webclient import WebClient

WABA = "100200300"

# A form breaking several rules at once: name, variables, footer length, buttons.
BAD_FORM = {
    "name": "Pedido Enviado",
    "category": "UTILITY",
    "language": "es_MX",
    "parameter_format": "positional",
    "header_format": "",
    "body_text": "{{1}}, tu pedido {{3}}",
    "body_samples": "Ana\nA-17\nX",
    "footer_text": "x" * 61,
    "buttons": "QUICK_REPLY | " + "r" * 30,
}

VALID_FORM = {
    **BAD_FORM,
    "name": "aviso",
    "language": "es",
    "body_text": "Hola {{1}}, tu pedido salió.",
    "body_samples": "Ana",
    "footer_text": "",
    "buttons": "",
}


@dataclass
class Site:
    web: WebClient
    api: TestClient
    auth: dict[str, str]
    template_id: int
    paused_id: int
    conversation_id: int


def _site(settings: Settings, db: Database, locale: str) -> Iterator[Site]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        channel = make_channel(session, ws, waba_id=WABA)
        user = make_user(session, ws, role="supervisor")
        user.locale = locale
        token = make_token(session, ws)
        template = MessageTemplate(
            workspace_id=ws.id,
            waba_id=WABA,
            name="aviso",
            language="es",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Hola {{1}}, tu pedido salió."}],
        )
        paused = MessageTemplate(
            workspace_id=ws.id,
            waba_id=WABA,
            name="recordatorio",
            language="es",
            category="UTILITY",
            status="PAUSED",
            components=[{"type": "BODY", "text": "Tu cita es mañana."}],
        )
        session.add_all([template, paused])
        session.flush()
        now = dt.datetime.now(dt.UTC)
        conversation = add_conversation(session, ws.id, channel.id, "Lucía", at=now)
        email, ids = user.email, (template.id, paused.id, conversation.id)
    app = create_app(settings, db, run_workers=False)
    with (
        TestClient(app) as client,
        TestClient(app, base_url="http://testserver/api/v1") as api,
    ):
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield Site(web, api, {"Authorization": f"Bearer {token}"}, *ids)


@pytest.fixture
def spanish(settings: Settings, db: Database) -> Iterator[Site]:
    yield from _site(settings, db, "es")


@pytest.fixture
def english(settings: Settings, db: Database) -> Iterator[Site]:
    yield from _site(settings, db, "en")


SPANISH_PROBLEMS = (
    "el nombre solo puede llevar letras minúsculas, dígitos y guiones bajos",
    "el cuerpo no puede empezar con una variable",
    "el cuerpo no puede terminar con una variable",
    "las variables posicionales deben numerarse {{1}}, {{2}}... en orden; se encontró {{1}}, {{3}}",
    "el pie tiene 61 caracteres; como máximo 60",
    "tiene 30 caracteres; el texto de un botón tiene como máximo 25",
)

ENGLISH_PROBLEMS = (
    "the name may only hold lowercase letters, digits and underscores",
    "the body cannot start with a variable",
    "the body cannot end with a variable",
    "positional variables must be numbered {{1}}, {{2}}... in sequence; found {{1}}, {{3}}",
    "the footer has 61 characters; at most 60",
    "has 30 characters; button text is at most 25",
)


def test_live_check_names_the_problems_in_spanish(spanish: Site) -> None:
    r = spanish.web.htmx("POST", "/templates/check", data=BAD_FORM)
    assert r.status_code == 200
    assert 'data-code="footer_text_too_long"' in r.text  # codes stay as they are
    for text in SPANISH_PROBLEMS:
        assert text in r.text, text
    for text in ENGLISH_PROBLEMS:
        assert text not in r.text, text


def test_live_check_names_the_problems_in_english(english: Site) -> None:
    r = english.web.htmx("POST", "/templates/check", data=BAD_FORM)
    assert r.status_code == 200
    for text in ENGLISH_PROBLEMS:
        assert text in r.text, text
    assert "el cuerpo no puede" not in r.text


def test_refused_create_form_lists_the_problems_in_spanish(spanish: Site) -> None:
    r = spanish.web.post("/templates/new", {**BAD_FORM, "waba_id": WABA})
    assert r.status_code == 422
    assert "el pie tiene 61 caracteres; como máximo 60" in r.text
    assert "the footer has" not in r.text


def test_a_template_that_exists_already_is_refused_in_spanish(spanish: Site) -> None:
    r = spanish.web.post("/templates/new", {**VALID_FORM, "waba_id": WABA})
    assert r.status_code == 409
    assert "ya existe una plantilla" in r.text
    assert "en es (estado APPROVED); usa otro nombre o elimínala primero" in r.text
    assert "exists already" not in r.text


def test_a_missing_template_page_says_so_in_spanish(spanish: Site) -> None:
    r = spanish.web.get(f"/templates/{spanish.template_id + 100}")
    assert r.status_code == 404
    assert f"no hay ninguna plantilla {spanish.template_id + 100} en este espacio de trabajo" in (
        r.text
    )


def test_a_paused_template_is_refused_in_the_inbox_in_spanish(spanish: Site) -> None:
    cid = spanish.conversation_id
    spanish.web.get(f"/inbox/c/{cid}")
    r = spanish.web.post(
        f"/inbox/c/{cid}/send-template",
        {"template_id": spanish.paused_id, "key": "t1"},
        headers={"x-inbox": "1"},
    )
    assert r.status_code == 409
    assert "(es) está en estado paused; solo se pueden enviar plantillas aprobadas" in r.text


def test_the_api_keeps_english_messages_and_its_details(spanish: Site) -> None:
    # The same token-holder's API answers do not depend on anyone's page language.
    body = {
        "name": "x" * 513,
        "category": "UTILITY",
        "language": "es",
        "components": [{"type": "BODY", "text": "Hola", "unknown": 1}, {"type": "FOOTER"}],
    }
    checked = spanish.api.post("/templates/check", json=body, headers=spanish.auth).json()
    assert checked["problems"] == [
        {
            "field": "name",
            "code": "name_too_long",
            "message": "the name has 513 characters; at most 512",
        },
        {
            "field": "components[1].text",
            "code": "footer_text_missing",
            "message": "the FOOTER needs text",
        },
    ]
    missing = spanish.api.get(f"/templates/{spanish.template_id + 100}", headers=spanish.auth)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "not_found",
            "message": f"no template {spanish.template_id + 100} in this workspace",
        }
    }
    again = spanish.api.post("/templates", json={**body, "name": "aviso"}, headers=spanish.auth)
    assert again.status_code == 422
    error = again.json()["error"]
    assert error["details"] == [
        {
            "field": "components[1].text",
            "code": "footer_text_missing",
            "message": "the FOOTER needs text",
        }
    ]
