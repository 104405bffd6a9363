"""A supervisor reads the reports in headless Chromium: from the bar to the Reports page,
two reports opened from their cards, another preset and a team filter that change the
figures, the chart and the table, and a table downloaded as CSV. The chart is drawn by
Chart.js from node_modules under the strict content security policy, which reports no
violation.

With PUENTE_SCREENSHOTS=<folder> it saves reports.png, reports-<key>.png for each report
(1366 pixels wide) and reports-phone.png (390 wide) for docs/reports.md."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puente.app import create_app
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database
from puente.reports.facts import Fact, Kind, record
from puente.reports.models import CsatSurvey
from puente.reports.queries import REPORTS
from puente.reports.worker import drain
from tests.conftest import LiveServer
from tests.e2e.world import sign_in_browser
from tests.factories import (
    PASSWORD,
    make_channel,
    make_contact,
    make_conversation,
    make_team,
    make_user,
    make_workspace,
)

# On the PostgreSQL leg, which has the shorter list (see tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("postgres")]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
SUPERVISOR = "sofia@esquina.example"
DAYS = 75  # of made-up history, ending today


def _seed(db: Database) -> int:
    """A small shop's last 75 days: two teams of agents, a number, and what each report
    counts, varied by day so that the charts have a shape."""
    with db.unit_of_work(unscoped="test") as s:
        ws = make_workspace(s, "Tienda La Esquina")
        ws.timezone = "America/Mexico_City"
        make_user(s, ws, role="supervisor", name="Sofía Supervisora", email=SUPERVISOR)
        ana = make_user(s, ws, role="agent", name="Ana López")
        beto = make_user(s, ws, role="agent", name="Beto Ruiz")
        carla = make_user(s, ws, role="agent", name="Carla Díaz")
        ventas = make_team(s, ws, "Ventas", [ana, beto])
        soporte = make_team(s, ws, "Soporte", [carla])
        channel = make_channel(s, ws, display_phone_number="+52 55 1234 5678")
        contact = make_contact(s, ws, name="Lucía Gómez")
        conversation = make_conversation(s, channel, contact, status="resolved")
        ws_id, channel_id, conversation_id, contact_id = (
            ws.id,
            channel.id,
            conversation.id,
            contact.id,
        )
        people = [(ana.id, ventas.id), (beto.id, ventas.id), (carla.id, soporte.id)]
    now = utcnow()
    with db.unit_of_work(scope=ws_id) as s:

        def fact(kind: Kind, at: dt.datetime, **dims: Any) -> None:
            dims.setdefault("channel_id", channel_id)
            record(s, Fact(kind=kind.value, workspace_id=ws_id, at=at, **dims))

        for back in range(DAYS):
            day = now - dt.timedelta(days=back)
            wave = 3 + (back * 7) % 11 + (6 if back % 7 in (1, 2) else 0)
            for n in range(wave):
                at = day - dt.timedelta(hours=n % 9, minutes=7 * n)
                agent, team = people[(back + n) % 3]
                who = {"agent_id": agent, "team_id": team}
                fact(Kind.OPENED, at, label="reopened" if n % 5 == 0 else "new", source="customer")
                fact(Kind.FIRST_RESPONSE, at, source="agent", seconds=40 + 37 * n + back, **who)
                fact(Kind.RESPONSE, at, source="agent", seconds=25 + 11 * n, **who)
                fact(
                    Kind.ASSIGNED,
                    at,
                    label="reassigned" if n % 4 == 0 else "assigned",
                    seconds=15 + 9 * n,
                    **who,
                )
                if n % 3 != 2:
                    fact(Kind.RESOLVED, at, seconds=900 + 600 * n + 30 * back, **who)
                fact(Kind.MESSAGE, at, source="customer", label="text", count=4, **who)
                fact(Kind.MESSAGE, at, source="agent", label="text", count=3, **who)
                fact(Kind.CSAT, at, label=str(5 - (n + back) % 3 if n % 4 else 3), **who)
            # The owner answered from the phone, the bot too; history came in once.
            fact(Kind.FIRST_RESPONSE, day, source="business_app", seconds=90 + back)
            fact(Kind.MESSAGE, day, source="business_app", label="text", count=2 + back % 3)
            fact(Kind.MESSAGE, day, source="bot", label="interactive", count=1 + back % 4)
            fact(Kind.MESSAGE, day, source="customer", label="image", count=back % 3)
            fact(Kind.CONTACT, day, channel_id=0, source="whatsapp", count=2 + back % 5)
            fact(Kind.CONTACT, day, channel_id=0, source="business_app", count=back % 2)
            fact(Kind.CONSENT, day, channel_id=0, label="opt_in", count=1 + back % 3)
            fact(Kind.CONSENT, day, channel_id=0, label="opt_out", count=back % 4 == 0)
            for agent, _team in people:
                for status, hours in (("online", 6 + back % 3), ("away", 1), ("offline", 17)):
                    fact(
                        Kind.PRESENCE,
                        day,
                        channel_id=0,
                        agent_id=agent,
                        label=status,
                        seconds=hours * 3600.0,
                    )
            fact(Kind.PRICING, day, source="marketing", label="billable:MX", count=20 + back % 9)
            fact(Kind.PRICING, day, source="utility", label="billable:CO", count=5 + back % 4)
            fact(Kind.PRICING, day, source="service", label="free_customer_service:MX", count=30)
            fact(Kind.PRICING, day, source="app", label="business_app:", count=2 + back % 3)
            if back % 10 == 3:
                template = "promo_julio" if back < 40 else "bienvenida"
                for state, count in (
                    ("sent", 120),
                    ("delivered", 112),
                    ("read", 80),
                    ("replied", 14),
                    ("failed:131049", 6),
                    ("failed:131026", 2),
                ):
                    fact(Kind.BROADCAST, day, source=template, label=state, count=count)
        fact(Kind.MESSAGE, now - dt.timedelta(days=60), source="history", label="text", count=900)
        for score, text in ((5, "¡Muy rápidos, gracias!"), (2, "Tardaron en contestar.")):
            s.add(
                CsatSurvey(
                    workspace_id=ws_id,
                    conversation_id=conversation_id,
                    channel_id=channel_id,
                    contact_id=contact_id,
                    agent_id=people[0][0],
                    team_id=people[0][1],
                    state="answered",
                    score=score,
                    comment=text,
                    answered_at=now - dt.timedelta(days=score),
                )
            )
    drain(db)
    return ws_id


@pytest.fixture
def puente(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[LiveServer]:
    _seed(db)
    yield live_server_factory(create_app(settings, db)).start()


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


SCROLL_UNDER_BAR = """selector => {
  const top = document.querySelector(selector).getBoundingClientRect().top + window.scrollY;
  window.scrollTo(0, top - document.querySelector('header.topbar').offsetHeight - 8);
}"""


def listen(console: list[str], message: Any) -> None:
    # A phone's browser asks for /favicon.ico, which Puente does not have.
    if not str(message.location.get("url", "")).endswith("/favicon.ico"):
        console.append(f"{message.type}: {message.text}")


CHART_JS = """c => {
  const chart = window.Chart && window.Chart.getChart(c);
  if (!chart) return null;
  const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
  return {
    inked,
    totals: chart.data.datasets.map(d => d.data.reduce((a, b) => a + (b || 0), 0)),
    labels: chart.data.labels.length,
  };
}"""


def chart_of(page: Any) -> dict[str, Any]:
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart]'))"
    )
    drawn: dict[str, Any] = page.locator("canvas[data-chart]").evaluate(CHART_JS)
    assert drawn["inked"] > 2000, "the chart drew nothing"
    return drawn


def figure(page: Any, key: str) -> str:
    text: str = page.locator(
        f"[data-testid=figure][data-key={key}] .report-figure-value"
    ).inner_text()
    return text


def table_rows(page: Any, table: str) -> list[str]:
    rows: list[str] = page.locator(
        f"[data-table={table}] tbody tr td:first-child"
    ).all_inner_texts()
    return rows


def test_a_supervisor_reads_two_reports_filters_them_and_downloads_a_table(
    puente: LiveServer, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = sign_in_browser(browser, puente.url, SUPERVISOR, height=900)
    console: list[str] = []
    page.on("console", lambda m: listen(console, m))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

    page.locator("nav.mainnav").get_by_role("link", name="Reports", exact=True).click()
    page.wait_for_url("**/reports")
    expect(page.locator("[data-testid=report-card]")).to_have_count(len(REPORTS))
    shoot(page, "reports")

    # Conversations, last 7 days by default, then the last 30.
    page.locator("[data-testid=report-card][data-key=conversations] a").click()
    page.wait_for_url("**/reports/conversations")
    expect(page.locator("h1")).to_have_text("Conversations")
    expect(page.locator("[data-preset=last_7_days]")).to_have_attribute("aria-current", "true")
    week = chart_of(page)
    assert week["labels"] == 7
    new_in_week = figure(page, "new")
    rows_in_week = len(table_rows(page, "by_day"))
    page.locator("[data-preset=last_30_days]").click()
    page.wait_for_url("**/reports/conversations?preset=last_30_days")
    month = chart_of(page)
    assert month["labels"] == 30 and month["totals"][0] > week["totals"][0]
    assert figure(page, "new") != new_in_week
    assert len(table_rows(page, "by_day")) == 30 != rows_in_week

    # The leaderboard, narrowed to one team by its filter.
    page.get_by_role("link", name="All reports").click()
    page.locator("[data-testid=report-card][data-key=leaderboard] a").click()
    page.wait_for_url("**/reports/leaderboard")
    chart_of(page)
    everyone = table_rows(page, "leaderboard")
    assert everyone[-1] == "Business app" and {"Ana López", "Carla Díaz"} <= set(everyone)
    page.locator("[data-testid=filter-team]").select_option(label="Soporte")
    page.wait_for_url("**/reports/leaderboard?*team=*")
    expect(page.locator("[data-testid=filter-team]")).to_have_value(
        page.locator("[data-testid=filter-team] option", has_text="Soporte").get_attribute("value")
        or ""
    )
    expect(page.locator("[data-table=leaderboard] tbody tr")).to_have_count(1)
    assert table_rows(page, "leaderboard") == ["Carla Díaz"]
    assert chart_of(page)["labels"] == 1
    # Changing a filter kept the preset the page showed.
    expect(page.locator("[data-preset=last_7_days]")).to_have_attribute("aria-current", "true")

    with page.expect_download() as download:
        page.locator("[data-table=leaderboard] [data-testid=download-csv]").click()
    saved = tmp_path / "leaderboard.csv"
    download.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig"))))
    assert rows[0][:3] == ["Agent", "Resolved", "First response (s)"]
    assert [r[0] for r in rows[1:]] == ["Carla Díaz"]
    assert float(rows[1][2]) > 0

    # Every report, for the docs; each draws its chart.
    for key in REPORTS:
        page.get_by_role("link", name="All reports").click()
        page.locator(f"[data-testid=report-card][data-key={key}] a").click()
        page.wait_for_url(f"**/reports/{key}")
        chart_of(page)
        shoot(page, f"reports-{key}")

    refused = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    assert refused == [], refused
    assert [m for m in console if m.startswith(("error", "pageerror"))] == []


def test_a_report_reads_on_a_phone(puente: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        locale="en-US", viewport={"width": 390, "height": 844}, is_mobile=True
    )
    context.set_default_timeout(60_000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: listen(console, m))
    page.goto(puente.url + "/inbox")
    page.fill("input[name=email]", SUPERVISOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    page.locator("label.nav-toggle-label").click()
    page.locator("nav.mainnav").get_by_role("link", name="Reports", exact=True).click()
    page.locator("[data-testid=report-card][data-key=responses] a").click()
    page.wait_for_url("**/reports/responses")
    chart_of(page)
    # Nothing wider than the screen: the page does not scroll sideways.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    for part in ("report-filters", "figures"):
        box = page.locator(f"[data-testid={part}]")
        assert not box.evaluate("b => b.scrollWidth > b.clientWidth + 1"), f"{part} is cut off"
    expect(page.locator("[data-testid=figure]").first).to_be_in_viewport()
    if SHOTS:  # the phone's screen from the range down (under the sticky bar): figures, chart
        page.evaluate(SCROLL_UNDER_BAR, "[data-testid=range-text]")
        page.screenshot(path=str(Path(SHOTS) / "reports-phone.png"))
    assert [m for m in console if "Content Security Policy" in m or m.startswith("error")] == [], (
        console
    )
    context.close()
