"""The team inbox in headless Chromium against a live Puente wired to the Meta sandbox:
a customer writes from the simulated phone and the message appears live; the agent
replies and the ticks update; the owner answers from the Business app and the echo
shows marked; assignment, notes with mentions, closing and snoozing; the window closes
and the template picker takes over; the interface switches to Spanish.

With PUENTE_SCREENSHOTS=<folder> the walk also saves the screenshots of docs/inbox.md.
"""

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

from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.collab import publish_conversation
from puente.conversations.models import Conversation, Message, Notification
from puente.db.session import Database
from puente.outbound.templates.service import do_sync_workspace
from puente.runtime import Runtime
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import (
    add_demo_number,
    sandbox_control,
    sign_in_browser,
    start_sandbox_and_puente,
)
from tests.factories import PASSWORD, make_user, make_workspace
from tests.waiting import wait_until

# What a person sees in the browser does not change with the database under it: one leg
# (the data paths behind it run on both through the HTTP and domain tests).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("sqlite")]

TOKEN = "sandbox-inbox-token"
LUCIA = "573001112233"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")


@dataclass
class Live:
    puente: LiveServer
    sandbox: LiveServer
    runtime: Runtime
    control: httpx.Client
    owner_email: str
    ana_id: int


@pytest.fixture
def live(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Live]:
    sandbox, puente, runtime = start_sandbox_and_puente(
        settings, db, live_server_factory, TOKEN, status_delays=(0.0, 0.3, 0.8), backoff_base=0.05
    )
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        owner = make_user(
            session, ws, role="owner", name="Olga Dueña", email="olga@esquina.example"
        )
        ana = make_user(session, ws, role="agent", name="Ana Pérez", email="ana@esquina.example")
        owner.timezone = "America/Bogota"
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.name = "Tienda La Esquina"
        session.flush()
        do_sync_workspace(session, runtime, ws.id)
        owner_email, ana_id = owner.email, ana.id
    control = sandbox_control(sandbox, puente)
    yield Live(puente, sandbox, runtime, control, owner_email, ana_id)
    control.close()


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def _conversation(db: Database) -> Conversation:
    with db.read(unscoped="test") as session:
        conversation = session.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == LUCIA)
        ).one()
        session.expunge(conversation)
        return conversation


def test_the_inbox_walk(live: Live, db: Database, browser: Any) -> None:
    errors: list[str] = []
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 800})
    # A generous wait: this machine is shared, and a busy moment must not fail the walk.
    context.set_default_timeout(60_000)
    agent = context.new_page()
    agent.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    agent.goto(live.puente.url + "/inbox")
    agent.fill("input[name=email]", live.owner_email)
    agent.fill("input[name=password]", PASSWORD)
    agent.click("button[type=submit]")
    agent.wait_for_url("**/inbox")
    agent.wait_for_selector("#inbox[data-live='1']")

    # A customer writes from the simulated phone: the row appears without a reload.
    phone = browser.new_page()
    phone.goto(f"{live.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}")
    phone.fill("form.compose input[name=text]", "Hola, ¿tienen envío a *Medellín*?")
    phone.click("form.compose button[type=submit]")
    row = agent.locator("[data-testid=conversation-row]", has_text="Lucía Gómez")
    row.wait_for()
    assert "Medellín" in row.inner_text()
    assert agent.locator("[data-testid=count-unassigned]").inner_text() == "1"
    _shot(agent, "inbox-list")

    row.locator("a").click()
    agent.wait_for_selector("#inbox[data-live='1']")
    incoming = agent.locator("[data-testid=message].inbound", has_text="Hola, ¿tienen envío")
    assert incoming.locator("strong").inner_text() == "Medellín"
    assert "Window open" in agent.locator("[data-testid=window]").inner_text()

    # The agent replies: pending at once, then the ticks move on their own.
    agent.fill("[data-testid=reply-box]", "Sí, enviamos en 2 días 🚚")
    agent.click("[data-testid=send]")
    reply = agent.locator("[data-testid=message].outbound", has_text="enviamos en 2 días")
    reply.wait_for()
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('enviamos en 2 días')"
    )
    assert reply.count() == 1
    phone.locator(".bubble", has_text="enviamos en 2 días").wait_for()

    # The owner answers from the Business app: the echo appears, marked.
    owner_phone = browser.new_page()
    owner_phone.goto(f"{live.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/owner?chat={LUCIA}")
    owner_phone.fill("form.compose input[name=text]", "Te lo confirmo desde el teléfono")
    owner_phone.click("form.compose button[type=submit]")
    echo = agent.locator("[data-testid=message].src-business_app", has_text="desde el teléfono")
    echo.wait_for()
    assert "Sent from the WhatsApp Business app" in echo.inner_text()
    _shot(agent, "conversation")

    # The owner's answer pauses the bot: the panel is redrawn live with it. Wait for that
    # before using the panel, or the redraw can swap the form under the clicks.
    agent.locator("[data-testid=bot-state]", has_text="Bot paused").wait_for()
    # Assignment, a note that mentions Ana, closing with a note, reopening and snoozing.
    agent.select_option("[data-testid=assignee-select]", str(live.ana_id))
    agent.click("[data-testid=assign-submit]")
    agent.locator("[data-testid=assignee]", has_text="Ana Pérez").wait_for()
    agent.click("[data-testid=note-tab]")
    agent.fill("[data-testid=note-box]", "@ana confirma la dirección antes de enviar")
    agent.click("[data-testid=add-note]")
    agent.locator("[data-testid=note]", has_text="confirma la dirección").wait_for()
    with db.read(unscoped="test") as session:
        kinds = session.scalars(
            select(Notification.kind).where(Notification.user_id == live.ana_id)
        ).all()
    assert sorted(kinds) == ["assigned", "mention"]
    agent.fill("[data-testid=closing-note]", "Envío programado")
    agent.click("[data-testid=close]")
    agent.locator("[data-testid=status]", has_text="Closed").wait_for()
    agent.locator("[data-testid=timeline-event]", has_text="Envío programado").wait_for()
    agent.click("[data-testid=reopen]")
    agent.locator("[data-testid=status]", has_text="Open").wait_for()
    agent.select_option("[data-testid=snooze-preset]", "1h")
    agent.click("[data-testid=snooze]")
    agent.locator("[data-testid=status]", has_text="Snoozed").wait_for()
    agent.click("[data-testid=reopen]")
    agent.locator("[data-testid=status]", has_text="Open").wait_for()
    _shot(agent, "collaboration")

    # The service window closes (here: moved to a few seconds from now) and the
    # template picker takes over the composer by itself.
    with db.unit_of_work(unscoped="test") as session:
        conversation = session.get(Conversation, _conversation(db).id)
        assert conversation is not None
        conversation.window_expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        publish_conversation(session, conversation, "status")
    agent.wait_for_selector("[data-testid=template-picker]")
    assert agent.locator("[data-testid=reply-box]").count() == 0
    agent.select_option("[data-testid=template-select]", label="pedido_confirmado (es) · UTILITY")
    fields = agent.locator("[data-testid=template-var]")
    fields.nth(0).fill("Lucía")
    fields.nth(1).fill("A-7")
    agent.locator(
        "[data-testid=template-preview]", has_text="Hola Lucía, tu pedido A-7 está confirmado."
    ).wait_for()
    _shot(agent, "template-picker")
    agent.click("[data-testid=send-template]")
    agent.locator("[data-testid=message].outbound", has_text="pedido_confirmado").wait_for()
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('pedido_confirmado')"
    )
    sent = live.control.get("/sent", params={"number_id": DEMO_NUMBER}).json()
    assert [m.get("type") for m in sent].count("template") == 1

    # Spanish: chosen in the user menu, kept for the user.
    agent.click(".usermenu summary")
    agent.select_option("#language", "es")
    agent.wait_for_load_state()
    agent.locator("[data-testid=tab-mine]", has_text="Mías").wait_for()
    assert "Ventana cerrada" in agent.locator("[data-testid=window]").inner_text()
    _shot(agent, "conversation-es")

    # A phone-sized screen shows one pane at a time.
    small = browser.new_context(locale="es-ES", viewport={"width": 390, "height": 800})
    mobile = small.new_page()
    mobile.goto(live.puente.url + "/inbox")
    mobile.fill("input[name=email]", live.owner_email)
    mobile.fill("input[name=password]", PASSWORD)
    mobile.click("button[type=submit]")
    mobile.wait_for_url("**/inbox")
    assert mobile.locator("[data-testid=conversation-row]").first.is_visible()
    _shot(mobile, "inbox-phone")
    small.close()

    assert not [e for e in errors if "Content Security Policy" in e], errors
    agent.context.close()


def _messages_from_lucia(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return len(
            session.scalars(
                select(Message)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.wa_id == LUCIA, Message.direction == "inbound")
            ).all()
        )


def test_what_arrives_before_the_stream_listens_still_shows(
    live: Live, db: Database, browser: Any
) -> None:
    """A page is drawn, then its event stream connects: a message stored in between (or
    while the stream is down) must still reach the list and the open conversation."""
    agent = sign_in_browser(browser, live.puente.url, live.owner_email)

    def customer_writes(text: str, count: int) -> None:
        res = live.control.post(
            f"/numbers/{DEMO_NUMBER}/inbound", json={"from": LUCIA, "name": "Lucía", "text": text}
        )
        assert res.status_code == 201, res.text
        wait_until(lambda: _messages_from_lucia(db) == count, seconds=60, what=f"'{text}' stored")

    customer_writes("Hola, una pregunta", 1)
    agent.goto(live.puente.url + f"/inbox/c/{_conversation(db).id}")
    agent.wait_for_selector("#inbox[data-live='1']")

    # The page is drawn while its stream cannot connect; the customer writes meanwhile.
    agent.route("**/inbox/events", lambda route: route.abort())
    agent.reload()
    agent.locator("[data-testid=message].inbound", has_text="una pregunta").wait_for()
    customer_writes("¿Siguen abiertos hoy?", 2)
    late = agent.locator("[data-testid=message].inbound", has_text="Siguen abiertos")
    assert late.count() == 0  # nothing told this page yet
    assert agent.get_attribute("#inbox", "data-live") != "1"

    # The stream connects: the message and the list's snippet catch up without a reload.
    agent.unroute("**/inbox/events")
    agent.wait_for_selector("#inbox[data-live='1']")
    late.wait_for()
    assert late.count() == 1
    agent.locator("[data-testid=conversation-row]", has_text="Siguen abiertos").wait_for()
    agent.context.close()


def test_a_late_answer_never_turns_the_ticks_back(live: Live, db: Database, browser: Any) -> None:
    """Each status change makes the page fetch the message again; answers can come back
    out of order. The first fetch is held until the message shows as read, then answered
    with what it read then: the ticks must stay at read."""
    agent = sign_in_browser(browser, live.puente.url, live.owner_email)
    res = live.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound", json={"from": LUCIA, "name": "Lucía", "text": "Hola"}
    )
    assert res.status_code == 201, res.text
    wait_until(lambda: _messages_from_lucia(db) == 1, seconds=60, what="the message stored")
    agent.goto(live.puente.url + f"/inbox/c/{_conversation(db).id}")
    agent.wait_for_selector("#inbox[data-live='1']")

    held: list[tuple[Any, Any]] = []
    claimed: list[Any] = []

    def hold_the_first(route: Any) -> None:
        # Claimed before fetching: while route.fetch() waits, Playwright dispatches the
        # next request's handler, which must pass through rather than be held as well.
        if claimed:
            route.continue_()
            return
        claimed.append(route)
        held.append((route, route.fetch()))  # what the server says now, answered later

    agent.route("**/inbox/c/*/m/*", hold_the_first)
    agent.fill("[data-testid=reply-box]", "Ya va en camino")
    agent.click("[data-testid=send]")
    reply = agent.locator("[data-testid=message].outbound", has_text="Ya va en camino")
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('Ya va en camino')"
    )
    assert len(held) == 1
    route, stale = held[0]
    assert 'data-status="read"' not in stale.text()

    with agent.expect_request_finished(lambda r: r.url == route.request.url):
        route.fulfill(response=stale)
    # Let the page's promise chain run past the late answer before looking.
    agent.evaluate("() => new Promise(done => setTimeout(done, 200))")
    assert reply.count() == 1
    assert reply.get_attribute("data-status") == "read"
    agent.context.close()
