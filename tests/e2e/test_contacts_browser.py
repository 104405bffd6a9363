"""The contact page in headless Chromium: a custom field edited in place (htmx swaps the
block, no page load), on a phone-sized screen, under the strict CSP."""

from __future__ import annotations

from typing import Any

import pytest

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact
from puente.db.session import Database
from tests.factories import PASSWORD, make_contact, make_user, make_workspace

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
PHONE_WIDTH = 390


def _overflowing(page: Any) -> list[str]:
    """Elements reaching past the right edge of a phone's screen."""
    found: list[str] = page.evaluate(
        "w => Array.from(document.querySelectorAll('main *'))"
        ".filter(e => e.getBoundingClientRect().right > w + 1)"
        ".map(e => e.tagName + '.' + e.className + ' ' + (e.dataset.testid || ''))",
        PHONE_WIDTH,
    )
    return found


def test_agent_edits_a_custom_field_in_place_on_a_phone(
    settings: Settings, db: Database, live_server_factory: Any, browser: Any
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        make_user(session, ws, role="agent", email="beto@example.com", name="Beto")
        contact = make_contact(
            session, ws, wa_id="5215512345678", business_app_name="Lucía (tienda)"
        )
        contact.custom_fields = {"ciudad": "Puebla"}
        contact_id = contact.id
    server = live_server_factory(create_app(settings, db, run_workers=False)).start()
    errors: list[str] = []
    page = browser.new_page(locale="es-MX", viewport={"width": PHONE_WIDTH, "height": 844})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/contacts/{contact_id}")
    page.fill("input[name=email]", "beto@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/contacts/{contact_id}")
    assert page.locator("[data-testid=contact-name]").inner_text() == "Lucía (tienda)"
    # Marks the document: a full page load would lose it, an htmx swap keeps it.
    page.evaluate("document.body.dataset.stayed = 'yes'")

    field = page.locator("[data-testid=field][data-key=ciudad]")
    field.locator("[data-testid=edit-field]").click()
    editor = page.locator("[data-testid=field-input]")
    editor.wait_for()
    assert editor.input_value() == "Puebla"
    editor.fill("Oaxaca de Juárez")
    page.locator("[data-testid=field-form] button[type=submit]").click()
    page.locator("[data-testid=field-value]", has_text="Oaxaca de Juárez").wait_for()
    assert page.evaluate("document.body.dataset.stayed") == "yes"
    assert page.locator("[data-testid=field-input]").count() == 0

    # Adding a field works the same way.
    page.fill("[data-testid=new-field-key]", "RFC")
    page.fill("[data-testid=new-field-value]", "LURA800101")
    page.locator("[data-testid=add-field] button[type=submit]").click()
    page.locator("[data-testid=field][data-key=RFC]").wait_for()
    assert page.evaluate("document.body.dataset.stayed") == "yes"

    # The page fits a phone: nothing wider than the screen.
    assert _overflowing(page) == []
    page.goto(f"{server.url}/contacts")
    page.locator("[data-testid=contact-row]").first.wait_for()
    assert _overflowing(page) == []
    assert not [e for e in errors if "Content Security Policy" in e], errors
    with db.read(unscoped="test") as session:
        stored = session.get(Contact, contact_id)
        assert stored is not None
        assert stored.custom_fields == {"ciudad": "Oaxaca de Juárez", "RFC": "LURA800101"}
