"""A supervisor builds a workflow by clicking in headless Chromium: from the bar to the
Workflows page, a new workflow with a keyword trigger, a question with two answers each
going to its own message, saved, published and switched on.

With PUENTE_SCREENSHOTS=<folder> it saves workflows.png, workflows-builder.png and
workflows-builder-phone.png (1366 and 390 pixels wide) for docs/automation.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puente.app import create_app
from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import Workflow
from puente.config import Settings
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.e2e.world import sign_in_browser
from tests.factories import make_channel, make_contact, make_conversation, make_user, make_workspace

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
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
        contact = make_contact(session, ws, name="Lucía Gómez")
        make_conversation(session, make_channel(session, ws), contact)
    yield live_server_factory(create_app(settings, db)).start()


def shoot(page: Any, name: str, *, full_page: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=full_page)


def test_build_a_keyword_workflow_with_a_question_and_two_branches(
    puente: LiveServer, db: Database, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = sign_in_browser(browser, puente.url, SUPERVISOR, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.locator("nav.mainnav").get_by_role("link", name="Workflows", exact=True).click()
    page.wait_for_url("**/workflows")
    expect(page.locator("[data-testid=no-workflows]")).to_be_visible()
    page.locator("[data-testid=new-workflow]").click()
    page.locator("[data-testid=workflow-name]").fill("Precios")
    page.locator("[data-testid=create-workflow]").click()
    page.wait_for_url("**/workflows/*?flash=created")
    expect(page.locator("[data-testid=no-steps]")).to_be_visible()

    # The keyword box shows once "a message with a keyword" is chosen.
    keywords = page.locator("[data-testid=trigger-keywords]")
    expect(keywords).to_be_hidden()
    page.locator("[data-testid=trigger-match-keyword]").check()
    keywords.fill("precio\ncuánto cuesta")

    page.get_by_role("button", name="Ask a question").click()
    page.wait_for_url("**#step-question_1")
    question = page.locator("[data-testid=step][data-step=question_1]")
    question.locator("[data-testid=step-text]").fill("¿Qué te interesa?")
    answers = question.locator("[data-testid=option-title]")
    expect(answers).to_have_count(2)
    answers.nth(0).fill("Ropa")
    answers.nth(1).fill("Zapatos")
    for n in (1, 2):
        page.locator("[data-testid=new-step-type]").select_option("send_message")
        page.locator("[data-testid=add-step]").click()
        page.wait_for_url(f"**#step-send_message_{n}")
    expect(page.locator("[data-testid=step]")).to_have_count(3)
    # What was typed before adding the steps was saved with them.
    expect(question.locator("[data-testid=step-text]")).to_have_value("¿Qué te interesa?")
    expect(keywords).to_have_value("precio\ncuánto cuesta")

    nexts = question.locator("[data-testid=option-next]")
    nexts.nth(0).select_option("send_message_1")
    nexts.nth(1).select_option("send_message_2")
    page.locator("[data-step=send_message_1] [data-testid=step-text]").fill(
        "Tenemos ropa nueva cada semana, {contact.name|amigo}."
    )
    page.locator("[data-step=send_message_2] [data-testid=step-text]").fill(
        "Los zapatos están en oferta hasta el domingo."
    )
    page.locator("[data-testid=save-draft]").click()
    page.wait_for_url("**?flash=saved")
    expect(page.get_by_text("Draft saved.")).to_be_visible()

    page.locator("[data-testid=publish]").click()
    page.wait_for_url("**?flash=published")
    expect(page.locator("[data-testid=published-version]")).to_have_text("Version 1 published")
    switch = page.locator("[data-testid=workflow-switch]")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    page.wait_for_url("**?flash=enabled")
    expect(switch).to_have_attribute("aria-checked", "true")

    with db.read(unscoped="test") as session:
        workflow = session.query(Workflow).one()
        assert workflow.enabled and workflow.published_version_id is not None
        definition = parse_definition(workflow.draft)
    assert definition.trigger.keywords == ["precio", "cuánto cuesta"]
    assert [(o.title, o.next) for o in definition.steps[0].options] == [
        ("Ropa", "send_message_1"),
        ("Zapatos", "send_message_2"),
    ]

    # The docs' pictures: the trigger and the question at a laptop's width, the question
    # on a phone.
    page.set_viewport_size({"width": 1366, "height": 1300})
    page.evaluate("window.scrollTo(0, document.querySelector('#trigger').offsetTop - 70)")
    shoot(page, "workflows-builder.png", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("document.querySelector('#step-question_1').scrollIntoView()")
    shoot(page, "workflows-builder-phone.png", full_page=False)
    page.set_viewport_size({"width": 1366, "height": 900})

    # A test run on a contact found by name (htmx fills the select), then its page.
    page.locator("[data-testid=test-search]").fill("nadie así")
    expect(page.locator("[data-testid=test-contact]")).to_contain_text("No contact found")
    page.locator("[data-testid=test-search]").fill("lucía")
    expect(page.locator("[data-testid=test-contact]")).to_contain_text("Lucía Gómez")
    page.locator("[data-testid=start-test]").click()
    page.wait_for_url("**/runs/*")
    expect(page.locator("[data-testid=run-status]")).to_be_visible()
    expect(page.get_by_text("Lucía Gómez")).to_be_visible()

    page.locator("nav.mainnav").get_by_role("link", name="Workflows", exact=True).click()
    page.wait_for_url("**/workflows")
    row = page.locator("[data-testid=workflow-row]")
    expect(row).to_contain_text("A message containing “precio”, “cuánto cuesta”")
    expect(row.locator("[data-testid=workflow-switch]")).to_have_attribute("aria-checked", "true")
    shoot(page, "workflows.png")
    assert not [e for e in errors if "Content Security Policy" in e], errors
