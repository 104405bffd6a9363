"""An owner makes a chat link for a number in headless Chromium and a customer starts a
chat with it: from the home page to the number's chat links, a link created, its QR code
shown and its link copied, the print page, then on the sandbox's phone page the link
opened with its text in the composer and sent; the link's count becomes 1.

With PUENTE_SCREENSHOTS=<folder> it saves chat-links.png, chat-links-print.png and
chat-links-phone.png for docs/chat-links.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from puente.accounts.models import Workspace
from tests.channels.conftest import Coex, coex, make_coex  # noqa: F401 (fixtures)
from tests.factories import PASSWORD, make_user
from tests.waiting import wait_until

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
TEXT = "Hola, quiero reservar una mesa para hoy"


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        page.evaluate("window.scrollTo(0, 0)")
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_print_a_chat_link_and_start_a_chat_with_it(coex: Coex, browser: Any) -> None:  # noqa: F811
    channel_id = coex.onboard(share_history=False)
    with coex.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        make_user(session, ws, role="owner", email="olga@example.com", name="Olga")
    context = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=coex.puente.url)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(coex.puente.url + "/")
    page.fill("input[name=email]", "olga@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.click("nav.mainnav >> text=Channels")
    page.click(f"[data-testid=channel-{channel_id}] a")
    page.click("[data-testid=open-chat-links]")
    page.wait_for_url(f"**/channels/{channel_id}/chat-links")
    page.fill("[data-testid=chat-link-name]", "Shop window poster")
    page.fill("[data-testid=chat-link-text]", TEXT)
    page.click("[data-testid=chat-link-create]")
    page.wait_for_url("**/chat-links?flash=added#link-*")

    card = page.locator("section.chat-link", has_text="Shop window poster")
    qr = card.locator("[data-testid=chat-link-qr]")
    qr.wait_for()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    assert card.locator("[data-testid=chat-link-count]").inner_text() == "0"
    prefilled = card.locator("[data-testid=chat-link-prefilled]").inner_text()
    assert prefilled.startswith(f"«{TEXT} (ref: ") and prefilled.endswith(")»")
    card.locator("[data-testid=chat-link-copy]").click()
    card.locator("[data-testid=chat-link-copy]", has_text="Copied").wait_for()
    url = card.locator("[data-testid=chat-link-url]").input_value()
    assert url.startswith("https://wa.me/")
    assert page.evaluate("navigator.clipboard.readText()") == url

    card.locator("[data-testid=chat-link-print]").click()
    page.wait_for_url("**/print")
    assert page.locator("[data-testid=print-qr] svg").is_visible()
    _shot(page, "chat-links-print.png")
    page.go_back()

    # The customer scans the code: the phone opens the chat with the text already written.
    phone = context.new_page()
    phone.goto(coex.sandbox_server.url + "/_sandbox/phone")
    phone.fill("[data-testid=open-link] input[name=link]", url)
    phone.click("[data-testid=open-link] button[type=submit]")
    composer = phone.locator("form.compose input[name=text]")
    assert composer.input_value() == prefilled.strip("«»")
    _shot(phone, "chat-links-phone.png")
    phone.click("form.compose button[type=submit]")

    def counted() -> bool:
        page.reload()
        return card.locator("[data-testid=chat-link-count]").inner_text() == "1"

    wait_until(counted, seconds=60, what="the conversation the link started")
    assert "1 conversation started" in card.inner_text()
    _shot(page, "chat-links.png")

    # The number's page says how its links are doing.
    page.click(f"a[href='/channels/{channel_id}']")
    summary = page.locator("[data-testid=chat-links-summary]")
    summary.wait_for()
    assert summary.inner_text() == (
        "1 link · 1 conversation started · most: Shop window poster (1)"
    )
    assert not [e for e in errors if "Content Security Policy" in e], errors
