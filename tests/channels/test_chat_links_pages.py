"""The chat links page of a number, signed in through the login form: reached from the
number's page; create, edit and delete; the QR code inline, as downloads and on the
print page; refusals shown on the page; agents kept out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import segno
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import User
from puente.app import create_app
from puente.channels.chat_links_models import ChatLink
from puente.config import Settings
from puente.db.session import Database
from tests.channels.qr_images import PNG_SIGNATURE, png_modules, svg_modules
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.webclient import WebClient

PHONE = "5215512345678"


@dataclass
class Page:
    app_client: TestClient
    channel_id: int
    db: Database

    def signed_in(self, email: str) -> WebClient:
        web = WebClient(self.app_client)
        assert web.login(email, PASSWORD).status_code == 200
        return web

    def links(self) -> list[ChatLink]:
        with self.db.read(unscoped="test") as session:
            rows = session.scalars(select(ChatLink).order_by(ChatLink.id)).all()
            session.expunge_all()
            return list(rows)


@pytest.fixture
def page(settings: Settings, db: Database) -> Iterator[Page]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Café")
        make_user(session, ws, role="owner", email="owner@example.com", name="Olga")
        es = make_user(session, ws, role="admin", email="admin@example.com", name="Ana")
        es_user = session.get(User, es.id)
        assert es_user is not None
        es_user.locale = "es"
        make_user(session, ws, role="agent", email="agent@example.com")
        channel_id = make_channel(session, ws, display_phone_number=PHONE).id
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        yield Page(client, channel_id, db)


def test_create_edit_and_delete_a_link_from_the_numbers_page(page: Page) -> None:
    web = page.signed_in("owner@example.com")
    number = web.get(f"/channels/{page.channel_id}")
    assert f'href="/channels/{page.channel_id}/chat-links"' in number.text
    base = f"/channels/{page.channel_id}/chat-links"
    assert "No chat links yet." in web.get(base).text

    created = web.post(base, {"name": "Mesa 4", "text": "¿Me traen la carta?"})
    assert created.status_code == 200  # followed to the list
    assert "Chat link created." in created.text
    (link,) = page.links()
    assert link.created_by and link.name == "Mesa 4"
    assert f"(ref: {link.code})" in created.text
    assert (
        f"https://wa.me/{PHONE}?text=%C2%BFMe%20traen%20la%20carta%3F%20%28ref%3A%20{link.code}%29"
        in created.text
    )
    assert re.search(r'data-testid="chat-link-count">0<', created.text)

    summary = web.get(f"{base}/summary")
    assert "1 link</strong> · 0 conversations started" in summary.text

    edit = web.get(f"{base}/{link.id}")
    assert "¿Me traen la carta?" in edit.text
    saved = web.post(f"{base}/{link.id}", {"name": "Mesa 5", "text": "Hola"})
    assert "Chat link saved." in saved.text and f"Hola (ref: {link.code})" in saved.text

    deleted = web.post(f"{base}/{link.id}/delete")
    assert "Chat link deleted." in deleted.text and page.links() == []
    assert "No chat links yet." in web.get(f"{base}/summary").text


def test_the_qr_code_inline_downloaded_and_printed(page: Page) -> None:
    web = page.signed_in("owner@example.com")
    base = f"/channels/{page.channel_id}/chat-links"
    web.post(base, {"name": "Vitrina", "text": ""})
    (link,) = page.links()
    url = f"https://wa.me/{PHONE}?text=%28ref%3A%20{link.code}%29"
    expected = [[bool(v) for v in row] for row in segno.make(url, error="m").matrix]

    svg = web.get(f"{base}/{link.id}/qr.svg")
    assert svg.headers["content-disposition"].startswith("inline")
    assert svg_modules(svg.content) == expected
    download = web.get(f"{base}/{link.id}/qr.png?download=true")
    assert download.headers["content-disposition"] == (
        f'attachment; filename="chat-link-{link.code}.png"'
    )
    assert download.content.startswith(PNG_SIGNATURE)
    assert png_modules(download.content, scale=12) == expected

    printed = web.get(f"{base}/{link.id}/print")
    assert printed.status_code == 200
    sheet = re.search(r'<div class="print-qr"[^>]*>(.*?)</div>', printed.text, re.S)
    assert sheet is not None
    drawn = ET.fromstring(sheet.group(1))  # noqa: S314 (our own page)
    assert drawn.tag.endswith("svg")
    assert f"wa.me/{PHONE}" in printed.text and "Write to us on WhatsApp" in printed.text


def test_refusals_show_on_the_page_with_what_was_written(page: Page) -> None:
    web = page.signed_in("admin@example.com")
    base = f"/channels/{page.channel_id}/chat-links"
    refused = web.post(base, {"name": "Largo", "text": "x" * 301})
    assert refused.status_code == 422
    assert 'data-testid="error"' in refused.text
    assert "x" * 301 in refused.text  # what they wrote stays in the form
    assert page.links() == []
    missing = web.get(f"{base}/98765")
    assert missing.status_code == 404


def test_agents_cannot_open_the_page(page: Page) -> None:
    web = page.signed_in("agent@example.com")
    base = f"/channels/{page.channel_id}/chat-links"
    assert web.get(base).status_code == 403
    assert web.post(base, {"name": "x"}).status_code == 403
    assert page.links() == []
