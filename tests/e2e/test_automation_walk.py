"""Automation as a newcomer meets it in the demo, in headless Chromium: a customer writes
from the sandbox's phone page and gets the out-of-hours reply (the demo's day is closed)
while the conversation goes to one of the support team's agents in turn; a supervisor
builds a keyword workflow with a question and two branches by clicking, and the phone
gets the question and the branch the customer's answer picks; the bot answers a question
in Spanish and hands over when the customer asks for a person.

With PUENTE_SCREENSHOTS=<folder> it saves automation-phone.png for docs/automation.md."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puente.accounts.models import User
from puente.automation.kb import DEFAULT_HANDOFF
from puente.automation.kb_demo import DEMO_ENTRIES
from puente.config import Settings
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.e2e.world import DEMO_SUPERVISOR, DemoWorld, sign_in_browser, start_demo_world
from tests.waiting import wait_until

# A newcomer's walk through pages and the phone: the database under it is covered by the
# flows of tests/automation on both legs.
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
CUSTOMER, NAME = "573005550101", "Valentina Ríos"
CLOSED = "En este momento estamos fuera de horario"


@pytest.fixture
def world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[DemoWorld]:
    world = start_demo_world(settings, db, live_server_factory, chats=2, messages_per_chat=2)
    yield world
    world.control.close()
    world.api.close()


def _say(phone: Any, text: str) -> None:
    phone.get_by_label("Mensaje", exact=True).fill(text)
    phone.get_by_role("button", name="Enviar", exact=True).click()


def _build_menu(page: Any, url: str) -> None:
    """The supervisor's clicks: a keyword workflow asking Ropa or Zapatos, each answer
    going to its own message; saved, published, switched on."""
    from playwright.sync_api import expect

    page.goto(url + "/inbox")
    page.locator("nav.mainnav").get_by_role("link", name="Workflows", exact=True).click()
    page.wait_for_url("**/workflows")
    page.locator("[data-testid=new-workflow]").click()
    page.locator("[data-testid=workflow-name]").fill("Catálogo")
    page.locator("[data-testid=create-workflow]").click()
    page.wait_for_url("**/workflows/*?flash=created")
    page.locator("[data-testid=trigger-match-keyword]").check()
    page.locator("[data-testid=trigger-keywords]").fill("catálogo")
    page.get_by_role("button", name="Ask a question").click()
    page.wait_for_url("**#step-question_1")
    question = page.locator("[data-testid=step][data-step=question_1]")
    question.locator("[data-testid=step-text]").fill("¿Qué te interesa?")
    answers = question.locator("[data-testid=option-title]")
    answers.nth(0).fill("Ropa")
    answers.nth(1).fill("Zapatos")
    for n in (1, 2):
        page.locator("[data-testid=new-step-type]").select_option("send_message")
        page.locator("[data-testid=add-step]").click()
        page.wait_for_url(f"**#step-send_message_{n}")
    nexts = question.locator("[data-testid=option-next]")
    nexts.nth(0).select_option("send_message_1")
    nexts.nth(1).select_option("send_message_2")
    page.locator("[data-step=send_message_1] [data-testid=step-text]").fill(
        "La ropa nueva llega cada lunes."
    )
    page.locator("[data-step=send_message_2] [data-testid=step-text]").fill(
        "Los zapatos están en oferta hasta el domingo, {contact.first_name|}."
    )
    page.locator("[data-testid=publish]").click()
    page.wait_for_url("**?flash=published")
    page.locator("[data-testid=workflow-switch]").click()
    page.wait_for_url("**?flash=enabled")
    expect(page.locator("[data-testid=workflow-switch]")).to_have_attribute("aria-checked", "true")


def test_a_newcomer_sees_automation_at_work_in_the_demo(world: DemoWorld, browser: Any) -> None:
    from playwright.sync_api import expect

    res = world.control.post("/customers", json={"wa_id": CUSTOMER, "name": NAME})
    assert res.status_code == 201, res.text
    page = sign_in_browser(browser, world.puente.url, DEMO_SUPERVISOR, height=900)
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{world.sandbox.url}/_sandbox/phone")
    phone.get_by_role("link", name=re.compile(f"{NAME}.*Tienda La Esquina")).click()
    theirs = phone.locator(".bubble.theirs")

    # Out of hours (the demo's inventory day): the reply comes, and routing gives the
    # conversation to one of the support team's two agents.
    _say(phone, "Buenas tardes")
    expect(theirs.filter(has_text=CLOSED)).to_have_count(1)
    contact = world.api.get("/contacts", params={"phone": "+" + CUSTOMER}).json()["items"][0]

    def assignee() -> int | None:
        items = world.api.get("/conversations", params={"limit": 100}).json()["items"]
        mine = [c for c in items if c["contact_id"] == contact["id"]]
        return mine[0]["assignee_id"] if mine else None

    agent = wait_until(assignee, what="the round-robin assignment")
    with world.runtime.db.read(unscoped="test") as session:
        user = session.get(User, agent)
        assert user is not None and user.name in ("Camila Rojas", "Andrés Gómez")

    # A keyword workflow built by clicking answers on the phone.
    _build_menu(page, world.puente.url)
    _say(phone, "Hola, ¿me mandas el catálogo?")
    question = theirs.filter(has_text="¿Qué te interesa? [Ropa | Zapatos]")
    expect(question).to_have_count(1)
    # The customer taps the button, as on WhatsApp (Meta sends its id and title).
    question.get_by_role("button", name="Zapatos", exact=True).click()
    expect(theirs.last).to_contain_text("Los zapatos están en oferta hasta el domingo, Valentina.")

    # The bot answers a question in Spanish, and hands over when asked for a person.
    _say(phone, "¿A qué hora abren?")
    expect(theirs.last).to_contain_text(DEMO_ENTRIES[0][1])
    _say(phone, "quiero hablar con una persona")
    expect(theirs.last).to_contain_text(DEFAULT_HANDOFF["es"])
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(Path(SHOTS) / "automation-phone.png"), full_page=True)
