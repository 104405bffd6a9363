"""The /broadcasts pages in the signed-in user's language: every text on them comes from
the Babel catalogs, so a Spanish-speaking supervisor reads the list, the new-broadcast
form and a broadcast's detail page (with its live progress fragment) in Spanish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact, ContactTag, Tag
from puente.db.session import Database
from puente.outbound.broadcasts import service as broadcasts
from puente.outbound.models import BroadcastState, MessageTemplate
from puente.web import i18n
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.webclient import WebClient

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "puente" / "web" / "templates"
# Words that are spelled the same in both languages.
SAME_IN_SPANISH = {"CSV"}


def _site(settings: Settings, db: Database, locale: str) -> Iterator[tuple[WebClient, int]]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        make_channel(session, ws)
        user = make_user(session, ws, role="supervisor")
        user.locale = locale
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id="100200300",
                name="aviso",
                language="es",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hola {{1}}, tu pedido salió."}],
            )
        )
        tag = Tag(workspace_id=ws.id, name="clientes")
        contact = Contact(workspace_id=ws.id, wa_id="573001112233", name="Lucía", sources=[])
        session.add_all([tag, contact])
        session.flush()
        session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=tag.id))
        session.flush()
        # Scheduled far ahead, so it stays put while the pages are read.
        broadcast = broadcasts.do_create_broadcast(
            session,
            workspace_id=ws.id,
            name="Aviso de pedidos",
            template_name="aviso",
            language="es",
            variables={"body.1": "{first_name|cliente}"},
            audience={"kind": "tags", "tags": ["clientes"]},
            scheduled_at="2099-01-01T10:00",
        )
        email, broadcast_id = user.email, broadcast.id
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web, broadcast_id


@pytest.fixture
def spanish(settings: Settings, db: Database) -> Iterator[tuple[WebClient, int]]:
    yield from _site(settings, db, "es")


@pytest.fixture
def english(settings: Settings, db: Database) -> Iterator[tuple[WebClient, int]]:
    yield from _site(settings, db, "en")


def test_broadcast_pages_in_spanish(spanish: tuple[WebClient, int]) -> None:
    web, broadcast_id = spanish
    listing = web.get("/broadcasts")
    assert listing.status_code == 200
    assert "Nueva difusión" in listing.text and "Destinatarios" in listing.text
    assert "programada" in listing.text  # the broadcast's state
    assert "New broadcast" not in listing.text

    form = web.get("/broadcasts/new").text
    for text in ("Audiencia", "Contactos con etiquetas", "Subir un CSV", "Enviar difusión"):
        assert text in form, text
    assert "Estimar el costo" in form and "Estimate cost" not in form

    detail = web.get(f"/broadcasts/{broadcast_id}").text
    for text in ("Pausar", "Cancelar", "Exportar resultados (CSV)", "Teléfono", "en cola"):
        assert text in detail, text
    assert "Pause" not in detail
    assert "(es, utilidad)" in detail  # the template's category

    progress = web.get(f"/broadcasts/{broadcast_id}/progress").text
    assert ">programada<" in progress and ">scheduled<" not in progress
    assert "en cola: 1" in progress


def test_broadcast_pages_stay_in_english(english: tuple[WebClient, int]) -> None:
    web, broadcast_id = english
    assert "New broadcast" in web.get("/broadcasts").text
    detail = web.get(f"/broadcasts/{broadcast_id}").text
    assert "Pause" in detail and "Pausar" not in detail


def test_every_broadcasts_text_has_a_spanish_translation() -> None:
    texts: set[str] = set()
    for path in sorted((TEMPLATES / "broadcasts").glob("*.html")):
        with path.open("rb") as fh:
            for _line, message, _comments, _context in extract(
                "jinja2",
                fh,
                keywords={"_": None, "gettext": None},
                options={"extensions": "jinja2.ext.i18n"},
            ):
                texts.add(message if isinstance(message, str) else message[0])
    # States are shown through _(state): the broadcast's, and a recipient's as shown.
    texts |= {s.value for s in BroadcastState} | set(broadcasts.SHOWN_STATES)
    spanish = i18n.translations("es")
    assert len(texts) > 40
    assert sorted(t for t in texts if spanish.gettext(t) == t and t not in SAME_IN_SPANISH) == []
