"""Routing and availability in headless Chromium, against a live Puente (with its workers)
wired to the Meta sandbox: a supervisor sets a team's strategy and capacity on the teams
page by clicking, and a customer who writes from the sandbox's phone is given to the
team's next agent; an agent's presence follows her tab (static/presence.js reports her
activity, the stream her open tab): idle she turns away, back at the keyboard online,
her tab closed offline, and a colleague's inbox shows each change live.

With PUENTE_SCREENSHOTS=<folder> it saves routing.png for docs/routing.md."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.accounts.models import User
from puente.accounts.presence import OFFLINE_AFTER
from puente.automation.routing.models import TeamRouting
from puente.automation.routing.worker import sweep_step
from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from puente.db.base import utcnow
from puente.db.session import Database
from puente.runtime import Runtime
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import add_demo_number, sandbox_control, start_sandbox_and_puente
from tests.factories import PASSWORD, make_team, make_user, make_workspace
from tests.waiting import wait_until

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]

TOKEN = "sandbox-routing-token"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
CUSTOMER = "573001112233"


@dataclass
class Shop:
    puente: LiveServer
    runtime: Runtime
    control: httpx.Client
    ids: dict[str, int]


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        make_user(
            session, ws, role="supervisor", name="Sofía Supervisora", email="sofia@esquina.example"
        )
        ana = make_user(session, ws, name="Ana Pérez", email="ana@esquina.example")
        beto = make_user(session, ws, name="Beto Ruiz", email="beto@esquina.example")
        carla = make_user(session, ws, name="Carla Díaz", email="carla@esquina.example")
        for person in (ana, beto, carla):
            person.availability = "online"
        soporte = make_team(session, ws, "Soporte", [ana, beto, carla])
        make_team(session, ws, "Ventas", [beto])
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.default_team_id = soporte.id
        ids = {"team": soporte.id, "ana": ana.id, "beto": beto.id, "carla": carla.id}
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, runtime, control, ids)
    control.close()


def _sign_in(browser: Any, url: str, email: str, path: str = "/inbox", clock: bool = False) -> Any:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)  # a shared, busy machine; not a measure of Puente
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(url + path)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**" + path)
    return page


def _availability(db: Database, user_id: int) -> str:
    with db.read(unscoped="test") as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.availability


def _last_active(db: Database, user_id: int) -> dt.datetime | None:
    with db.read(unscoped="test") as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.last_active_at


def _tabs_beat_until(db: Database, when: dt.datetime, *user_ids: int) -> None:
    """The open tabs of `user_ids` went on beating until `when` (streams do every 30 s)."""
    with db.unit_of_work(unscoped="test") as session:
        for user_id in user_ids:
            user = session.get(User, user_id)
            assert user is not None
            user.last_seen_at = when


def test_a_supervisor_sets_round_robin_by_clicking_and_the_next_customer_is_routed(
    shop: Shop, db: Database, browser: Any
) -> None:
    errors: list[str] = []
    page = _sign_in(browser, shop.puente.url, "sofia@esquina.example", "/settings/teams")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    form = page.locator("[data-testid='routing-Soporte']")
    form.locator("[data-testid=strategy]").select_option("round_robin")
    form.locator("[data-testid=capacity]").fill("5")
    form.locator("[data-testid=save-routing]").click()
    saved = page.locator("[data-testid='routing-Soporte'] [data-testid=routing-saved]")
    saved.wait_for()
    assert saved.inner_text() == "Saved."
    # Supervisors set how conversations are assigned; the members stay the admins'.
    assert page.locator("text=Save members").count() == 0
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "routing.png"), full_page=True)
    with db.read(unscoped="test") as session:
        routing = session.get(TeamRouting, shop.ids["team"])
        assert routing is not None and (routing.strategy, routing.capacity) == ("round_robin", 5)

    # A customer writes from the sandbox's phone: the number's team takes it, and its
    # first agent in turn has it.
    res = shop.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound", json={"from": CUSTOMER, "name": "Lucía", "text": "Hola"}
    )
    assert res.status_code == 201, res.text

    def assigned() -> int | None:
        with db.read(unscoped="test") as session:
            return session.scalar(
                select(Conversation.assignee_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.wa_id == CUSTOMER)
            )

    assert wait_until(assigned, what="the customer's conversation assigned") == shop.ids["ana"]
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.context.close()


def test_an_agents_presence_follows_her_activity_and_her_tab(
    shop: Shop, db: Database, browser: Any
) -> None:
    url = shop.puente.url
    ana = _sign_in(browser, url, "ana@esquina.example", clock=True)
    beto = _sign_in(browser, url, "beto@esquina.example")
    beto.wait_for_selector("#inbox[data-live='1']")
    ana_in_betos_list = f"[data-testid=agent][data-presence-user='{shop.ids['ana']}']"

    # Her page reported her activity when it opened (static/presence.js).
    first = wait_until(lambda: _last_active(db, shop.ids["ana"]), what="her first report")

    # Eleven idle minutes later (the workspace's idle time is ten) she is away, and
    # Beto's inbox shows it without a reload.
    later = utcnow() + dt.timedelta(minutes=11)
    _tabs_beat_until(db, later, shop.ids["ana"], shop.ids["beto"], shop.ids["carla"])
    assert sweep_step(db, later) >= 1
    assert _availability(db, shop.ids["ana"]) == "away"
    beto.wait_for_selector(f"{ana_in_betos_list}[data-presence='away']", state="attached")

    # Back at her keyboard after those minutes: her page tells Puente at once.
    ana.clock.fast_forward("11:00")
    ana.mouse.move(300, 300)
    ana.mouse.move(320, 340)
    wait_until(lambda: _availability(db, shop.ids["ana"]) == "online", what="her return")
    assert (_last_active(db, shop.ids["ana"]) or first) > first
    beto.wait_for_selector(f"{ana_in_betos_list}[data-presence='online']", state="attached")

    # She closes her tab: once the grace period is over, she is offline.
    hub = shop.puente.server.config.app.state.inbox_hub  # type: ignore[attr-defined]
    ana.context.close()
    wait_until(lambda: hub.subscriber_count() == 1, what="her stream to end")
    gone = utcnow() + OFFLINE_AFTER + dt.timedelta(seconds=1)
    _tabs_beat_until(db, gone, shop.ids["beto"], shop.ids["carla"])
    assert sweep_step(db, gone) == 1
    assert _availability(db, shop.ids["ana"]) == "offline"
    beto.wait_for_selector(f"{ana_in_betos_list}[data-presence='offline']", state="attached")
    beto.context.close()
