"""Notifications and presence in headless Chromium, two agents in two browsers against a
live Puente wired to the Meta sandbox: a customer writes into Ana's conversation and her
bell counts it live (two messages, one notification), the list opens and marks it read,
and a system notification appears once she allowed them; Beto goes away and Ana sees it
in the agent list and the assignee picker without reloading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.config import Settings
from puente.conversations.models import Notification
from puente.db.session import Database
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import add_demo_number, sandbox_control, start_sandbox_and_puente
from tests.factories import (
    PASSWORD,
    make_contact,
    make_conversation,
    make_user,
    make_workspace,
)
from tests.waiting import wait_until

# What a person sees in the browser does not change with the database under it: one leg
# (the data paths behind it run on both through the HTTP and domain tests).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("sqlite")]

TOKEN = "sandbox-notify-token"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
LUCIA = "573001112233"
# Records what the page hands to the browser's Notifications API (the system popup
# itself is outside the page); the page's own code runs unchanged.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__shown = [];
  function Recording(title, options) {
    window.__shown.push({ title: title, body: (options || {}).body || "" });
    return new Real(title, options);
  }
  Object.defineProperty(Recording, "permission", { get: () => Real.permission });
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recording;
})();
"""


@dataclass
class Team:
    puente: LiveServer
    control: httpx.Client
    ana_email: str
    beto_email: str
    beto_id: int
    conversation_id: int


@pytest.fixture
def team(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Team]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        ana = make_user(session, ws, name="Ana Pérez", email="ana@esquina.example")
        beto = make_user(session, ws, name="Beto Ruiz", email="beto@esquina.example")
        beto.availability = "online"
        channel = add_demo_number(session, ws, runtime, TOKEN)
        lucia = make_contact(session, ws, wa_id=LUCIA, profile_name="Lucía Gómez")
        conversation = make_conversation(session, channel, lucia, assignee_id=ana.id)
        ids = (ana.email, beto.email, beto.id, conversation.id)
    control = sandbox_control(sandbox, puente)
    yield Team(puente, control, *ids)
    control.close()


def _sign_in(
    browser: Any, url: str, email: str, init_script: str = "", **options: Any
) -> tuple[Any, Any]:
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 800}, **options
    )
    # A generous wait: this machine is shared, and a busy moment must not fail the walk.
    context.set_default_timeout(60_000)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.goto(url + "/inbox")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    page.wait_for_selector("#notif-bell[data-live='1']")
    return context, page


def _unread(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return len(
            session.scalars(select(Notification).where(Notification.read_at.is_(None))).all()
        )


def _customer_writes(team: Team, text: str) -> None:
    res = team.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound", json={"from": LUCIA, "type": "text", "text": text}
    )
    assert res.status_code == 201, res.text


def test_two_agents_see_notifications_and_presence_live(
    team: Team, db: Database, browser: Any
) -> None:
    errors: list[str] = []
    url = team.puente.url
    # Ana allowed Puente's notifications in this browser earlier.
    ana_context, ana = _sign_in(
        browser, url, team.ana_email, RECORD_NOTIFICATIONS, permissions=["notifications"]
    )
    ana.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    beto_context, beto = _sign_in(browser, url, team.beto_email)

    # Lucía writes twice into Ana's conversation: the bell counts one notification.
    badge = ana.locator("[data-testid=notif-count]")
    assert badge.is_hidden()
    _customer_writes(team, "Hola, ¿tienen envío a Medellín?")
    ana.locator("[data-testid=notif-count]:visible", has_text="1").wait_for()
    _customer_writes(team, "Es para mañana")
    # Polled from here: the page's CSP (rightly) refuses Playwright's eval-based waiting.
    wait_until(lambda: len(ana.evaluate("window.__shown")) >= 2, seconds=60, what="two notices")
    assert badge.inner_text() == "1"
    shown = ana.evaluate("window.__shown")
    assert shown[-1] == {"title": "New message", "body": "Es para mañana"}
    # Beto's bell stays quiet: the conversation is not his.
    assert beto.locator("[data-testid=notif-count]").is_hidden()

    # The list shows the collapsed notification; marking it read empties the counter.
    ana.click("[data-testid=notifications-toggle]")
    item = ana.locator("[data-testid=notification]", has_text="2 new messages")
    item.wait_for()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        ana.screenshot(path=str(Path(SHOTS) / "notifications.png"))
    assert "Es para mañana" in item.inner_text()
    item.locator("[data-testid=notification-read]").click()
    ana.locator("[data-testid=notifications]", has_text="Nothing new.").wait_for()
    badge.wait_for(state="hidden")

    # Beto goes away: Ana sees it in the agent list and the assignee picker, no reload.
    ana.goto(f"{url}/inbox/c/{team.conversation_id}")
    ana.wait_for_selector("#inbox[data-live='1']")
    ana.evaluate("window.__sameDocument = true")
    beto_option = ana.locator(f"[data-testid=assignee-select] option[value='{team.beto_id}']")
    assert beto_option.inner_text() == "Beto Ruiz"
    beto.click(".usermenu summary")
    beto.select_option("#availability", "away")
    beto.wait_for_load_state()
    ana.wait_for_selector(
        f"[data-testid=agent][data-presence-user='{team.beto_id}'][data-presence='away']",
        state="attached",
    )
    assert beto_option.inner_text() == "Beto Ruiz (Away)"
    assert ana.evaluate("window.__sameDocument") is True

    # A message in the conversation Ana is reading shows in it and leaves nothing unread.
    shown_before = len(ana.evaluate("window.__shown"))
    _customer_writes(team, "¿Me confirmas la hora?")
    ana.locator("[data-testid=message].inbound", has_text="¿Me confirmas la hora?").wait_for()
    wait_until(lambda: _unread(db) == 0, seconds=60, what="notifications read")
    assert badge.is_hidden()
    assert len(ana.evaluate("window.__shown")) == shown_before

    # Beto has not allowed browser notifications: a button asks, only when clicked.
    beto.click("[data-testid=notifications-toggle]")
    beto.locator("[data-testid=notifications]").wait_for()
    # Nothing asked on page load (an unanswered prompt would have left "denied").
    assert beto.evaluate("Notification.permission") == "default"
    assert beto.locator("#notif-panel [data-enable-browser-notifications]").is_visible()

    assert not [e for e in errors if "Content Security Policy" in e], errors
    ana_context.close()
    beto_context.close()
