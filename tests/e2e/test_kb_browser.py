"""The knowledge-base bot in headless Chromium, as the demo sets it up: a supervisor opens
the Bot page from the bar, adds an entry, tries a question in the test box and sees which
entry matched with what score; then, as a customer on the sandbox's phone page, asks
something and gets the bot's answer, asks for a person and gets the handoff, and the
conversation waits in the inbox with the bot paused.

With PUENTE_SCREENSHOTS=<folder> it saves the screenshot of docs/knowledge-base-bot.md."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from puente.automation.kb import DEFAULT_HANDOFF
from puente.automation.kb_demo import DEMO_ENTRIES, seed_demo_knowledge_base
from puente.config import Settings
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.e2e.world import (
    add_demo_number,
    sandbox_control,
    sign_in_browser,
    start_sandbox_and_puente,
)
from tests.factories import make_user, make_workspace

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]

TOKEN = "sandbox-kb-token"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
SUPERVISOR = "sofia@esquina.example"
HOURS = DEMO_ENTRIES[0][1]
RECHARGE = "Sí: recargas de todos los operadores desde $2.000, en la caja."


@dataclass
class Shop:
    puente: LiveServer
    sandbox: LiveServer
    control: httpx.Client


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        make_user(session, ws, role="supervisor", name="Sofía Supervisora", email=SUPERVISOR)
        add_demo_number(session, ws, runtime, TOKEN)
        seed_demo_knowledge_base(session, ws)
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, sandbox, control)
    control.close()


def test_a_supervisor_adds_an_entry_tries_it_and_a_customer_is_answered_then_handed_over(
    shop: Shop, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = sign_in_browser(browser, shop.puente.url, SUPERVISOR, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.locator("nav.mainnav").get_by_role("link", name="Bot", exact=True).click()
    page.wait_for_url("**/bot")
    expect(page.locator("[data-testid=kb-entry]")).to_have_count(len(DEMO_ENTRIES))
    expect(page.locator("[data-testid=bot-enabled]")).to_be_checked()

    page.locator("[data-testid=add-entry]").click()
    page.locator("[data-testid=entry-phrasings]").fill(
        "¿Venden recargas de celular?\n¿Hacen recargas?"
    )
    page.locator("[data-testid=entry-answer]").fill(RECHARGE)
    page.locator("[data-testid=entry-save]").click()
    page.wait_for_url("**/bot?flash=added")
    expect(page.locator("[data-testid=kb-entry]")).to_have_count(len(DEMO_ENTRIES) + 1)

    # The test box answers in place (htmx): the entry, the score, the verdict.
    page.evaluate("document.body.dataset.stayed = 'yes'")
    page.locator("[data-testid=bot-question]").fill("hacen recargas de celular?")
    page.locator("[data-testid=bot-test] button[type=submit]").click()
    verdict = page.locator("[data-testid=bot-verdict]")
    expect(verdict).to_have_attribute("data-action", "answer")
    expect(page.locator("[data-testid=bot-answer]")).to_have_text(RECHARGE)
    best = page.locator("[data-testid=bot-match]").first
    expect(best).to_contain_text("¿Venden recargas de celular?")
    assert float(best.get_attribute("data-score") or 0) >= 0.5
    assert page.evaluate("document.body.dataset.stayed") == "yes"
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "knowledge-base-bot.png"))

    page.locator("[data-testid=bot-question]").fill("Quiero hablar con una persona")
    page.locator("[data-testid=bot-test] button[type=submit]").click()
    expect(verdict).to_have_attribute("data-action", "handoff")

    # A customer on the sandbox's phone asks, is answered, then asks for a person.
    phone = page.context.new_page()
    phone.goto(f"{shop.sandbox.url}/_sandbox/phone")
    phone.get_by_role("link", name=re.compile("Lucía Gómez")).click()
    phone.get_by_label("Mensaje", exact=True).fill("Hola, ¿a qué hora abren?")
    phone.get_by_role("button", name="Enviar", exact=True).click()
    expect(phone.locator(".bubble.theirs").last).to_contain_text(HOURS)
    phone.get_by_label("Mensaje", exact=True).fill("quiero hablar con una persona")
    phone.get_by_role("button", name="Enviar", exact=True).click()
    expect(phone.locator(".bubble.theirs").last).to_contain_text(DEFAULT_HANDOFF["es"])

    # The team finds it among the unassigned conversations, the bot paused.
    page.goto(f"{shop.puente.url}/inbox?tab=unassigned")
    page.locator("[data-testid=conversation-row]", has_text="Lucía").first.click()
    expect(page.locator("[data-testid=bot-state]")).to_have_text("Bot paused")
    assert not [e for e in errors if "Content Security Policy" in e], errors
