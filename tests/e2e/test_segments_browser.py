"""Segments in headless Chromium: a supervisor goes from the home page to Contacts, then
Segments, builds a segment whose count follows each change of the filter (htmx, no page
load), saves it and opens its contacts.

With PUENTE_SCREENSHOTS=<folder> it saves segments-form.png and segments.png for
docs/contacts.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import ContactTag, Tag
from puente.db.session import Database
from tests.factories import PASSWORD, make_contact, make_user, make_workspace

# What a person sees and clicks: the counts and flows run on both legs in
# tests/contacts/test_segments_*.py (see the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        # The whole page in one tall viewport: the sticky bar and count stay in place.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 1280, "height": min(int(height), 2400)})
        page.evaluate("window.scrollTo(0, 0)")
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name))
        page.set_viewport_size({"width": 1280, "height": 900})


def test_a_supervisor_builds_a_segment_and_opens_its_contacts(
    settings: Settings, db: Database, live_server_factory: Any, browser: Any
) -> None:
    from playwright.sync_api import expect

    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        make_user(session, ws, role="supervisor", email="sofia@example.com", name="Sofía")
        vip = Tag(workspace_id=ws.id, name="vip")
        session.add(vip)
        session.flush()
        for n, (name, city) in enumerate(
            [("Lucía", "Puebla"), ("Carlos", "Puebla"), ("Marta", "Oaxaca"), ("Raúl", "Puebla")]
        ):
            contact = make_contact(session, ws, name=name, sources=["whatsapp"])
            contact.custom_fields = {"ciudad": city}
            if n < 3:
                session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=vip.id))
    server = live_server_factory(create_app(settings, db, run_workers=False)).start()
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    counted: list[str] = []
    page.on("request", lambda r: counted.append(r.url) if "/segments/count" in r.url else None)
    page.goto(server.url + "/")
    page.fill("input[name=email]", "sofia@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()

    page.locator("nav.mainnav a[href='/contacts']").click()
    page.wait_for_url("**/contacts")
    page.get_by_test_id("segments-link").click()
    page.wait_for_url("**/contacts/segments")
    page.get_by_test_id("new-segment").click()
    page.wait_for_url("**/contacts/segments/new")
    # Marks the document: a page load would lose it, htmx's swaps keep it.
    page.evaluate("document.body.dataset.stayed = 'yes'")
    count = page.get_by_test_id("segment-count")
    expect(count).to_have_attribute("data-count", "4")

    page.get_by_test_id("segment-name").fill("VIP de Puebla")
    page.get_by_test_id("tags-any").fill("vip")
    expect(count).to_have_attribute("data-count", "3")
    page.get_by_test_id("field-key").first.fill("ciudad")
    page.get_by_test_id("field-value").first.fill("Puebla")
    expect(count).to_have_attribute("data-count", "2")
    expect(count).to_contain_text("2 contacts match")
    page.get_by_test_id("lm-op").select_option("within")
    page.get_by_test_id("lm-days").fill("0")
    expect(page.get_by_test_id("count-problem")).to_be_visible()
    page.get_by_test_id("lm-op").select_option("")
    page.get_by_test_id("lm-days").fill("")
    expect(count).to_have_attribute("data-count", "2")
    assert page.evaluate("document.body.dataset.stayed") == "yes"
    # The count asks with the filter only: no CSRF token in an address (logs keep those).
    assert counted and not [u for u in counted if "csrf_token" in u or "name=" in u], counted
    shoot(page, "segments-form.png")

    page.get_by_test_id("save-segment").click()
    page.wait_for_url("**/contacts/segments?done=created*")
    row = page.get_by_test_id("segment-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("segment-count-cell")).to_have_text("2")
    shoot(page, "segments.png")

    row.get_by_test_id("view-contacts").click()
    page.wait_for_url("**/contacts?segment=*")
    expect(page.get_by_test_id("segment-filter")).to_contain_text("VIP de Puebla")
    names = page.get_by_test_id("contact-row").all_inner_texts()
    assert sorted(n.split("\t")[0].strip() for n in names) == ["Carlos", "Lucía"], names
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()
