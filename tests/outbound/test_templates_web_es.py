"""The /templates pages in the signed-in user's language: a Spanish-speaking supervisor
reads the list, the editor and a template's page (with its status, category and header
kinds) in Spanish; every text on them has a Spanish entry in the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate, TemplateStatus
from puente.outbound.templates.rules import CATEGORIES, HEADER_FORMATS
from puente.web import i18n
from puente.web.routes.templates import LABELS
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.webclient import WebClient

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "puente" / "web" / "templates"
# Spelled the same in both languages.
SAME_IN_SPANISH = {"Variables", "marketing", "video"}


def _site(settings: Settings, db: Database, locale: str) -> Iterator[tuple[WebClient, int]]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        make_channel(session, ws, waba_id="100200300")
        make_channel(session, ws, waba_id="400500600")
        user = make_user(session, ws, role="supervisor")
        user.locale = locale
        template = MessageTemplate(
            workspace_id=ws.id,
            waba_id="100200300",
            name="aviso",
            language="es",
            category="UTILITY",
            status="APPROVED",
            components=[
                {"type": "HEADER", "format": "IMAGE"},
                {"type": "BODY", "text": "Hola {{1}}, tu pedido salió."},
            ],
        )
        session.add(template)
        session.flush()
        email, template_id = user.email, template.id
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web, template_id


@pytest.fixture
def spanish(settings: Settings, db: Database) -> Iterator[tuple[WebClient, int]]:
    yield from _site(settings, db, "es")


@pytest.fixture
def english(settings: Settings, db: Database) -> Iterator[tuple[WebClient, int]]:
    yield from _site(settings, db, "en")


def test_template_pages_in_spanish(spanish: tuple[WebClient, int]) -> None:
    web, template_id = spanish
    listing = web.get("/templates").text
    for text in ("Plantillas de mensaje", "Nueva plantilla", "Sincronizar con Meta"):
        assert text in listing, text
    assert "Categoría" in listing and "Idiomas y estado" in listing
    assert "es · aprobada" in listing and ">utilidad<" in listing
    assert ">rechazada<" in listing  # the status filter's choices
    for english in ("Message templates", "Sync from Meta", "Languages and status", "· approved"):
        assert english not in listing, english

    editor = web.get("/templates/new").text
    for text in (
        "Nueva plantilla",
        "Cuenta de WhatsApp Business",
        "Categoría",
        ">utilidad<",
        ">autenticación<",
        "Sin encabezado",
        ">imagen<",
        "Cuerpo",
        "Botones, uno por línea",
        "Enviar a Meta para revisión",
    ):
        assert text in editor, text
    assert "Submit to Meta for review" not in editor and ">utility<" not in editor

    detail = web.get(f"/templates/{template_id}").text
    assert ">aprobada<" in detail and "utilidad" in detail
    assert "[imagen]" in detail and "Eliminar esta versión de idioma" in detail
    assert "Delete this language variant" not in detail


def test_template_pages_stay_in_english(english: tuple[WebClient, int]) -> None:
    web, template_id = english
    assert "Message templates" in web.get("/templates").text
    assert ">approved<" in web.get(f"/templates/{template_id}").text


def _texts(folder: str) -> set[str]:
    texts: set[str] = set()
    for path in sorted((TEMPLATES / folder).glob("*.html")):
        with path.open("rb") as fh:
            found: Any = extract(
                "jinja2",
                fh,
                keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
                options={"extensions": "jinja2.ext.i18n"},
            )
            for _line, message, _comments, _context in found:
                texts.add(message if isinstance(message, str) else message[0])
    return texts


def test_every_templates_text_and_label_has_a_spanish_translation() -> None:
    labels = {s.value.lower() for s in TemplateStatus}
    labels |= {c.lower() for c in CATEGORIES} | {f.lower() for f in HEADER_FORMATS}
    texts = _texts("templates") | labels | {"Templates synced from Meta.", "Template deleted."}
    spanish = i18n.translations("es")
    missing = sorted(t for t in texts if spanish.gettext(t) == t and t not in SAME_IN_SPANISH)
    assert missing == []


def test_every_label_is_marked_for_the_catalogue() -> None:
    # Shown through a variable, the labels are found by extraction only where marked.
    labels = {s.value.lower() for s in TemplateStatus}
    labels |= {c.lower() for c in CATEGORIES} | {f.lower() for f in HEADER_FORMATS}
    assert labels == set(LABELS)
