"""Merging two contacts in headless Chromium: a supervisor goes from the home page to a
contact, merges a duplicate into it choosing which e-mail stays, sees the merge in the
activity, and splits them back.

With PUENTE_SCREENSHOTS=<folder> it saves contacts-merge.png (the side-by-side
comparison) for docs/contacts.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact, ContactMerge
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.e2e.world import sign_in_browser
from tests.factories import make_channel, make_contact, make_conversation, make_user, make_workspace

# What a person sees and clicks: the merge and split themselves run on both legs in
# tests/contacts/ (see the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
SUPERVISOR = "sofia@esquina.example"


@pytest.fixture
def puente(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[LiveServer]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        make_user(session, ws, role="supervisor", name="Sofía Supervisora", email=SUPERVISOR)
        lucia = make_contact(session, ws, wa_id="5215512345678", name="Lucía Gómez")
        lucia.custom_fields = {"email": "lucia@old.example", "ciudad": "Puebla"}
        twin = make_contact(session, ws, wa_id="525512345678", profile_name="Lu")
        twin.custom_fields = {"email": "lucia@new.example"}
        make_conversation(session, make_channel(session, ws), lucia)
        make_conversation(
            session, make_channel(session, ws, display_phone_number="15550002222"), twin
        )
    yield live_server_factory(create_app(settings, db, run_workers=False)).start()


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_a_supervisor_merges_a_duplicate_and_splits_it_back(
    puente: LiveServer, db: Database, browser: Any
) -> None:
    page = sign_in_browser(browser, puente.url, SUPERVISOR, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(puente.url + "/")
    page.locator("nav.mainnav").get_by_role("link", name="Contacts", exact=True).click()
    page.get_by_role("link", name="Lucía Gómez").click()
    page.locator("[data-testid=merge-with]").click()
    page.fill("[data-testid=merge-q]", "Lu")
    page.locator("[data-testid=merge-search] button[type=submit]").click()
    page.locator("[data-testid=merge-candidate]", has_text="Lu").locator("a").click()
    compare = page.locator("[data-testid=merge-compare]")
    compare.wait_for()
    assert "Lucía Gómez" in compare.inner_text() and "Puebla" in compare.inner_text()
    page.locator("[data-testid='other-custom.email']").check()
    shoot(page, "contacts-merge.png")
    page.locator("[data-testid=confirm-merge]").click()

    page.locator("[data-testid=merge-event]").wait_for()
    assert page.locator("[data-testid=conversation]").count() == 2
    assert "lucia@new.example" in page.locator("[data-testid=contact]").inner_text()
    page.locator("[data-testid=split]").click()

    page.locator("[data-testid=activity][data-kind=split_out]").wait_for()
    assert page.locator("[data-testid=conversation]").count() == 1
    with db.read(unscoped="test") as session:
        contacts = {c.wa_id: c.custom_fields for c in session.query(Contact)}
        [merge] = session.query(ContactMerge).all()
        assert merge.split_at is not None
    assert contacts == {
        "5215512345678": {"email": "lucia@old.example", "ciudad": "Puebla"},
        "525512345678": {"email": "lucia@new.example"},
    }
    assert not [e for e in errors if "Content Security Policy" in e], errors
