"""The supervisor's dashboard in headless Chromium against a live Puente wired to the Meta
sandbox: the supervisor signs in and lands on it; a customer writes from the sandbox's
phone and the open and unassigned figures go up, with the customer at the top of the
longest waiting, without a reload; the row opens the conversation; an agent (who lands in
the inbox) closes it and the figures come down again, live.

With PUENTE_SCREENSHOTS=<folder> it saves dashboard.png and dashboard-phone.png (1280 and
390 pixels wide) for docs/dashboard.md."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database
from puente.reports.facts import Fact, Kind, record
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import add_demo_number, sandbox_control, start_sandbox_and_puente
from tests.factories import (
    PASSWORD,
    make_contact,
    make_conversation,
    make_team,
    make_user,
    make_workspace,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.one_leg]

TOKEN = "sandbox-dashboard-token"
LUCIA = "573001112233"  # one of the sandbox's people: Lucía Gómez
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")


@dataclass
class Shop:
    puente: LiveServer
    sandbox: LiveServer
    control: httpx.Client
    supervisor: str
    agent: str


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    now = utcnow()
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        ws.timezone = "America/Bogota"
        sofia = make_user(
            session, ws, role="supervisor", name="Sofía Supervisora", email="sofia@esquina.example"
        )
        sofia.timezone = "America/Bogota"
        ana = make_user(session, ws, name="Ana Pérez", email="ana@esquina.example")
        beto = make_user(session, ws, name="Beto Ruiz", email="beto@esquina.example")
        carla = make_user(session, ws, name="Carla Méndez", email="carla@esquina.example")
        beto.availability, carla.availability = "online", "away"
        ventas = make_team(session, ws, "Ventas", [beto, carla])
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.name = "Tienda La Esquina"
        # Customers already waiting: one for Beto in Ventas, one nobody has taken yet.
        for wa_id, name, minutes, assignee in (
            ("573001230001", "Jorge Salazar", 42, beto.id),
            ("573001230002", "Marta Ríos", 18, None),
        ):
            contact = make_contact(session, ws, wa_id=wa_id, profile_name=name)
            conversation = make_conversation(session, channel, contact, assignee_id=assignee)
            conversation.waiting_since = now - dt.timedelta(minutes=minutes)
            conversation.last_activity_at = conversation.waiting_since
            conversation.team_id = ventas.id if assignee else None
        emails = (sofia.email, ana.email)
    # Earlier today and the same weekday last week, as the facts the inbox records.
    local = now.astimezone(ZoneInfo("America/Bogota"))
    today = min(dt.timedelta(minutes=30), (local - local.replace(hour=0, minute=0)) / 2)
    with runtime.db.unit_of_work(scope=ws.id) as session:
        for at, new, closed, received, first in (
            (now - today, 6, 4, 23, (45.0, 80.0, 150.0)),
            (now - today - dt.timedelta(days=7), 8, 5, 31, (200.0, 260.0)),
        ):
            for kind, count, dims in (
                (Kind.OPENED, new, {"label": "new"}),
                (Kind.RESOLVED, closed, {}),
                (Kind.MESSAGE, received, {"source": "customer", "label": "text"}),
            ):
                record(session, Fact(kind=kind, workspace_id=ws.id, at=at, count=count, **dims))
            for seconds in first:
                record(
                    session,
                    Fact(kind=Kind.FIRST_RESPONSE, workspace_id=ws.id, at=at, seconds=seconds),
                )
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, sandbox, control, *emails)
    control.close()


def _sign_in(browser: Any, url: str, email: str, width: int = 1280) -> Any:
    context = browser.new_context(locale="en-US", viewport={"width": width, "height": 900})
    # A generous wait: this machine is shared, and a busy moment must not fail the walk.
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(url + "/login")  # the only address typed
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def _figure(page: Any, name: str) -> int:
    return int(page.locator(f"[data-testid=dash-{name}-value]").inner_text())


def _shot(page: Any, name: str, width: int) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_the_supervisor_watches_a_conversation_open_and_close_live(
    shop: Shop, browser: Any
) -> None:
    errors: list[str] = []
    sofia = _sign_in(browser, shop.puente.url, shop.supervisor)
    sofia.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sofia.wait_for_url("**/dashboard")
    assert sofia.locator("main h1").inner_text() == "Dashboard"
    current = sofia.locator("nav.mainnav a[aria-current=page]")
    assert current.inner_text() == "Dashboard"
    sofia.wait_for_selector("#dashboard[data-live='1']")
    loads: list[str] = []
    sofia.on("load", lambda p: loads.append(p.url))

    before = {name: _figure(sofia, name) for name in ("open", "unassigned", "today-new")}
    assert before == {"open": 2, "unassigned": 1, "today-new": 6}
    waiting = sofia.locator("[data-testid=dash-waiting-name]")
    assert waiting.all_inner_texts() == ["Jorge Salazar", "Marta Ríos"]

    # Lucía writes from her phone: a new conversation, open and nobody's.
    phone = browser.new_page()
    phone.goto(f"{shop.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}")
    phone.fill("form.compose input[name=text]", "Hola, ¿tienen la talla 38?")
    phone.click("form.compose button[type=submit]")
    wait_until(
        lambda: _figure(sofia, "open") == 3 and _figure(sofia, "unassigned") == 2,
        seconds=60,
        what="the open and unassigned figures to go up",
    )
    sofia.locator("[data-testid=dash-waiting-name]", has_text="Lucía Gómez").wait_for()
    assert _figure(sofia, "today-new") == 7
    assert loads == [], f"the page reloaded: {loads}"
    _shot(sofia, "dashboard", 1280)
    _shot(sofia, "dashboard-phone", 390)
    sofia.set_viewport_size({"width": 1280, "height": 900})

    # Her row opens the conversation; the bar's Dashboard link leads back.
    sofia.locator("[data-testid=dash-waiting-row]", has_text="Lucía Gómez").locator("a").click()
    sofia.locator("[data-testid=conversation-title]", has_text="Lucía Gómez").wait_for()
    sofia.locator("nav.mainnav a", has_text="Dashboard").click()
    sofia.wait_for_url("**/dashboard")
    sofia.wait_for_selector("#dashboard[data-live='1']")
    loads.clear()

    # Ana, an agent, lands in the inbox and closes it there.
    ana = _sign_in(browser, shop.puente.url, shop.agent)
    ana.wait_for_url("**/inbox")
    assert ana.locator("nav.mainnav a", has_text="Dashboard").count() == 0
    ana.locator("[data-testid=conversation-row]", has_text="Lucía Gómez").locator("a").click()
    ana.locator("[data-testid=conversation-title]", has_text="Lucía Gómez").wait_for()
    ana.wait_for_selector("#inbox[data-live='1']")
    ana.click("[data-testid=close]")
    ana.locator("[data-testid=status]", has_text="Closed").wait_for()

    wait_until(
        lambda: _figure(sofia, "open") == 2 and _figure(sofia, "unassigned") == 1,
        seconds=60,
        what="the open and unassigned figures to come down",
    )
    wait_until(
        lambda: "Lucía Gómez" not in sofia.locator("[data-testid=dash-waiting]").inner_text(),
        seconds=60,
        what="Lucía to leave the longest waiting",
    )
    assert _figure(sofia, "today-resolved") == 5
    assert loads == [], f"the page reloaded: {loads}"

    # The unassigned figure opens the inbox on the Unassigned tab.
    sofia.click("[data-testid=dash-unassigned]")
    sofia.wait_for_url("**/inbox?tab=unassigned")
    sofia.locator("[data-testid=conversation-row]", has_text="Marta Ríos").wait_for()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    ana.context.close()
    sofia.context.close()
