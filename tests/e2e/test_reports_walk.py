"""Issue 17's "done when", walked in the demo in headless Chromium: the supervisor signs in
and lands on the dashboard (the figures of right now, the team online); from the bar she
opens the seeded six months of reports: the leaderboard over the last 90 days has the
owner's phone as a row of its own beside the two agents, the messages count the imported
history under its own source, and the costs split into billable and free. Then a customer
writes from the sandbox's phone page, the supervisor closes the conversation, the phone
gets the demo number's survey (reply buttons, then a comment question), the customer taps
the best answer and comments, and the score and the comment arrive in the open
conversation without a reload.

Only the login page's and the phone page's addresses are typed; the rest is clicks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from puente.config import Settings
from puente.db.session import Database
from puente.reports.csat_settings import BUTTONS, TEXTS
from puente.reports.models import ReportFact
from tests.conftest import LiveServer
from tests.e2e.world import DEMO_SUPERVISOR, DemoWorld, start_demo_world
from tests.factories import PASSWORD
from tests.waiting import wait_until

# A newcomer's walk over the demo: the rollups under it are covered on both legs by
# tests/reports.
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
CUSTOMER, NAME = "573005550177", "Mateo Herrera"
AGENTS = ("Camila Rojas", "Andrés Gómez")
COMMENT = "Muy amables, gracias"


@pytest.fixture
def world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[DemoWorld]:
    world = start_demo_world(settings, db, live_server_factory, chats=2, messages_per_chat=2)

    # The imported history reaches the reports once the rollup worker has added its facts.
    def settled() -> bool:
        with world.runtime.db.read(unscoped="test") as session:
            pending = select(func.count()).where(ReportFact.rolled_up.is_(False))
            return bool(session.scalar(pending) == 0)

    wait_until(settled, seconds=60, what="the rollups to take in the imported history")
    yield world
    world.control.close()
    world.api.close()


def _sign_in(browser: Any, url: str) -> Any:
    # The supervisor has no language of her own in the demo: the browser's, English, decides.
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(60_000)  # a shared, busy machine, not Puente
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("input[name=email]", DEMO_SUPERVISOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def _open_report(page: Any, key: str, title: str) -> None:
    """From the Reports index, the report's card, then the last 90 days."""
    page.locator(f"[data-testid=report-card][data-key={key}] a").click()
    page.wait_for_url(f"**/reports/{key}")
    page.locator("[data-preset=last_90_days]").click()
    page.wait_for_url(f"**/reports/{key}?preset=last_90_days")
    assert page.locator("h1").inner_text() == title


def _figure(page: Any, key: str) -> int:
    value = page.locator(f"[data-testid=figure][data-key={key}] .report-figure-value")
    return int(re.sub(r"\D", "", value.inner_text()) or 0)


def _rows(page: Any, table: str) -> list[str]:
    rows: list[str] = page.locator(
        f"[data-table={table}] tbody tr td:first-child"
    ).all_inner_texts()
    return rows


def _say(phone: Any, text: str) -> None:
    phone.get_by_label("Mensaje", exact=True).fill(text)
    phone.get_by_role("button", name="Enviar", exact=True).click()


def test_a_supervisor_reads_the_demo_reports_and_sees_a_survey_answered(
    world: DemoWorld, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = _sign_in(browser, world.puente.url)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The supervisor's home: the figures of right now, and the team with both agents online.
    page.wait_for_url("**/dashboard")
    expect(page.locator("main h1")).to_have_text("Dashboard")
    for tile in ("open", "unassigned", "pending", "online"):
        expect(page.locator(f"[data-testid=dash-{tile}-value]")).to_have_text(re.compile(r"^\d+$"))
    online = page.locator("[data-testid=dash-agents-online]")
    for agent in AGENTS:
        expect(online).to_contain_text(agent)

    # The leaderboard of the last 90 days: the owner's phone is a row beside the agents.
    page.locator("nav.mainnav").get_by_role("link", name="Reports", exact=True).click()
    page.wait_for_url("**/reports")
    _open_report(page, "leaderboard", "Leaderboard")
    expect(page.locator("[data-table=leaderboard] tbody tr").first).to_be_visible()
    assert {"Business app", *AGENTS} <= set(_rows(page, "leaderboard"))

    # Messages: the imported history counts under its own source.
    page.get_by_role("link", name="All reports").click()
    _open_report(page, "messages", "Messages")
    history = page.locator("[data-testid=figure][data-key=source_history]")
    expect(history.locator(".report-figure-label")).to_have_text("Imported history")
    assert _figure(page, "source_history") > 0
    assert "Imported history" in _rows(page, "by_source")

    # Costs: billable messages and free ones, both counted.
    page.get_by_role("link", name="All reports").click()
    _open_report(page, "costs", "Costs")
    assert _figure(page, "billable") > 0
    assert _figure(page, "free") > 0

    # A customer writes to the Business-app number from the phone page.
    res = world.control.post("/customers", json={"wa_id": CUSTOMER, "name": NAME})
    assert res.status_code == 201, res.text
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{world.sandbox.url}/_sandbox/phone")
    phone.get_by_role("link", name=re.compile(f"{NAME}.*Tienda La Esquina")).click()
    theirs = phone.locator(".bubble.theirs")
    _say(phone, "Hola, ¿me confirman el envío de mi pedido?")

    # The supervisor finds it in the inbox and closes it.
    page.locator("nav.mainnav").get_by_role("link", name="Inbox", exact=True).click()
    page.wait_for_url("**/inbox")
    page.locator("[data-testid=conversation-row]", has_text=NAME).locator("a").click()
    expect(page.locator("[data-testid=conversation-title]")).to_contain_text(NAME)
    # Live from here on: the score must arrive without a reload.
    page.wait_for_selector("#inbox[data-live='1']")
    page.locator("[data-testid=close]").click()
    expect(page.locator("[data-testid=status]")).to_have_text("Closed")

    # The phone gets the survey's buttons; the customer taps the best answer, then comments.
    survey = theirs.filter(has_text=TEXTS["es"]["question"])
    expect(survey).to_have_count(1)
    for title in BUTTONS["es"].values():
        expect(survey.get_by_role("button", name=title, exact=True)).to_be_visible()
    survey.get_by_role("button", name=BUTTONS["es"][5], exact=True).click()
    expect(theirs.filter(has_text=TEXTS["es"]["comment"])).to_have_count(1)
    _say(phone, COMMENT)

    # The score and the comment arrive in the open conversation, which stays closed.
    expect(page.locator("[data-testid=csat-score]")).to_have_text("5 of 5")
    expect(page.locator("[data-testid=csat-comment]")).to_contain_text(COMMENT)
    rated = page.locator("[data-testid=csat-event]", has_text="rated the conversation")
    expect(rated).to_have_text("⭐ The customer rated the conversation 5 of 5")
    expect(page.locator("[data-testid=status]")).to_have_text("Closed")
    assert not [e for e in errors if "Content Security Policy" in e], errors
