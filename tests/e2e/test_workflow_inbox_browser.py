"""A workflow run from the inbox, in headless Chromium against a live Puente and the Meta
sandbox: a customer writes, the owner picks "Run a workflow" in the conversation's panel,
the customer's phone gets the workflow's question and taps an answer, and the timeline
shows the run, opened on its steps: the tag, the question with the answer chosen, the
branch's message, and the end.

With PUENTE_SCREENSHOTS=<folder> it saves conversation-workflow.png and
conversation-workflow-phone.png (1366 and 390 pixels wide) for docs/automation.md."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.automation.workflows.service import do_create_workflow, do_publish, do_set_enabled
from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from puente.db.session import Database
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import (
    add_demo_number,
    sandbox_control,
    sign_in_browser,
    start_sandbox_and_puente,
)
from tests.factories import make_user, make_workspace
from tests.waiting import wait_until

# What a person sees in the browser does not change with the database under it: one leg
# (the data paths behind it run on both through the HTTP and domain tests).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("postgres")]

TOKEN = "sandbox-workflow-inbox-token"
OWNER = "olga@taller.example"
LUCIA = "573001114455"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")

PICKUP: dict[str, Any] = {
    "trigger": {"type": "manual"},
    "steps": [
        {
            "id": "tag",
            "type": "add_tag",
            "title": "Marcar seguimiento",
            "tag": "moto-lista",
            "next": "ask",
        },
        {
            "id": "ask",
            "type": "question",
            "title": "¿Cuándo pasa?",
            "text": "Hola {contact.name|}, tu moto está lista. ¿Cuándo pasas por ella?",
            "options": [
                {"id": "hoy", "title": "Hoy", "next": "today"},
                {"id": "manana", "title": "Mañana", "next": "tomorrow"},
            ],
        },
        {
            "id": "today",
            "type": "send_message",
            "title": "Hoy",
            "text": "¡Perfecto! Te esperamos hasta las 6 p. m.",
        },
        {
            "id": "tomorrow",
            "type": "send_message",
            "title": "Mañana",
            "text": "Listo, mañana abrimos a las 9.",
        },
    ],
}


@dataclass
class Shop:
    puente: LiveServer
    control: httpx.Client
    db: Database


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Taller La Curva")
        owner = make_user(session, ws, role="owner", name="Olga Dueña", email=OWNER)
        owner.timezone = "America/Bogota"
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.name = "Taller La Curva"
        session.flush()
        workflow = do_create_workflow(
            session, ws.id, name="Moto lista", definition=parse_definition(PICKUP)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, control, db)
    control.close()


def customer_sends(shop: Shop, body: dict[str, Any]) -> None:
    res = shop.control.post(f"/numbers/{DEMO_NUMBER}/inbound", json={"from": LUCIA, **body})
    assert res.status_code == 201, res.text


def conversation_id(db: Database) -> int | None:
    with db.read(unscoped="test") as session:
        return session.scalar(select(Conversation.id).join(Contact).where(Contact.wa_id == LUCIA))


def run_status(db: Database) -> str | None:
    with db.read(unscoped="test") as session:
        return session.scalar(select(WorkflowRun.status))


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def test_the_owner_runs_a_workflow_and_the_timeline_shows_each_step(
    shop: Shop, browser: Any
) -> None:
    from playwright.sync_api import expect

    customer_sends(shop, {"name": "Lucía", "text": "Hola, ¿ya está lista mi moto?"})
    cid = wait_until(lambda: conversation_id(shop.db), what="the conversation")
    page = sign_in_browser(browser, shop.puente.url, OWNER, height=800)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{shop.puente.url}/inbox/c/{cid}")

    panel = page.locator("[data-testid=run-workflow]")
    expect(panel.locator("[data-testid=run-workflow-select]")).to_have_value(
        panel.locator("option", has_text="Moto lista").get_attribute("value") or ""
    )
    panel.locator("[data-testid=run-workflow-submit]").click()
    expect(page.locator("[data-testid=inbox-flash]")).to_have_text(
        "The workflow started: its steps show in the timeline."
    )
    run = page.locator("[data-testid=workflow-run]")
    expect(run).to_have_count(1)
    expect(run.locator("[data-testid=run-started]")).to_have_text(
        "Workflow “Moto lista” started (started by hand)"
    )

    # The question reaches the phone live; Lucía taps "Hoy". Meta stamps her answer in
    # whole seconds: it is sent in the next second, so that it sorts after the question
    # Puente stamped to the microsecond, as a person's answer would.
    expect(page.locator("[data-testid=interactive-options]")).to_contain_text("Hoy")
    asked = int(time.time())
    wait_until(lambda: int(time.time()) > asked, what="the next second")
    customer_sends(
        shop,
        {
            "text": "",
            "type": "interactive",
            "payload": {"type": "button_reply", "button_reply": {"id": "hoy", "title": "Hoy"}},
        },
    )
    wait_until(lambda: run_status(shop.db) == RunStatus.DONE.value, what="the run done")
    expect(page.locator(".msg", has_text="Te esperamos hasta las 6")).to_have_count(1)

    page.goto(f"{shop.puente.url}/inbox/c/{cid}")
    run = page.locator("[data-testid=workflow-run]")
    expect(run).to_have_attribute("data-status", "done")
    run.locator("summary").click()
    steps = run.locator("[data-testid=run-step]")
    expect(steps).to_have_count(4)
    expect(steps.nth(0)).to_contain_text("Marcar seguimiento · Done: moto-lista")
    expect(steps.nth(1)).to_contain_text("¿Cuándo pasa? · Asked: Hola Lucía, tu moto está lista.")
    expect(steps.nth(2)).to_contain_text("¿Cuándo pasa? · Done: Answered “Hoy”.")
    expect(steps.nth(3)).to_contain_text("Hoy · Done: ¡Perfecto! Te esperamos hasta las 6 p. m.")
    expect(run.locator("[data-testid=run-end]")).to_contain_text("The run ended.")
    expect(run.locator("[data-testid=run-link]")).to_have_attribute(
        "href", f"/workflows/{_workflow_id(shop.db)}/runs"
    )
    run.scroll_into_view_if_needed()
    _shot(page, "conversation-workflow")

    page.set_viewport_size({"width": 390, "height": 844})
    run.scroll_into_view_if_needed()
    expect(run.locator("[data-testid=run-end]")).to_be_visible()
    _shot(page, "conversation-workflow-phone")
    assert errors == []


def _workflow_id(db: Database) -> int:
    with db.read(unscoped="test") as session:
        found = session.scalar(select(WorkflowRun.workflow_id))
        assert found is not None
        return int(found)
