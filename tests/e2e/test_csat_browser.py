"""The satisfaction survey in headless Chromium, against a live Puente and the Meta sandbox:
a supervisor turns the survey on for a number by clicking through the settings, closes a
conversation in the inbox, the customer taps an answer on the sandbox's phone page, and the
score arrives in the open conversation (its panel and its timeline) while it stays closed.

With PUENTE_SCREENSHOTS=<folder> it saves csat-settings.png and csat-conversation.png for
docs/csat.md."""

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

pytestmark = [pytest.mark.browser, pytest.mark.one_leg]

TOKEN = "sandbox-csat-token"
SUPERVISOR = "sofia@floreria.example"
LUCIA = "573001117788"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")


@dataclass
class Shop:
    puente: LiveServer
    sandbox: LiveServer
    control: httpx.Client
    db: Database
    channel_id: int


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Florería Luna")
        make_user(session, ws, role="supervisor", name="Sofía Supervisora", email=SUPERVISOR)
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.name = "Florería Luna"
        session.flush()
        channel_id = channel.id
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, sandbox, control, db, channel_id)
    control.close()


def conversation_of(db: Database) -> Conversation | None:
    with db.read(unscoped="test") as session:
        found = session.scalar(select(Conversation).join(Contact).where(Contact.wa_id == LUCIA))
        if found is not None:
            session.expunge(found)
        return found


def _shot(page: Any, name: str, *, full_page: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def test_a_supervisor_turns_the_survey_on_and_sees_the_score_arrive(
    shop: Shop, browser: Any
) -> None:
    from playwright.sync_api import expect

    body = {"from": LUCIA, "name": "Lucía", "text": "¿Me ayudan a cambiar la dirección del ramo?"}
    res = shop.control.post(f"/numbers/{DEMO_NUMBER}/inbound", json=body)
    assert res.status_code == 201, res.text
    cid = wait_until(lambda: (c := conversation_of(shop.db)) and c.id, what="the conversation")

    page = sign_in_browser(browser, shop.puente.url, SUPERVISOR, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Settings → Satisfaction surveys → the number: reply buttons, saved.
    page.goto(f"{shop.puente.url}/settings/profile")
    page.locator("[data-testid=nav-surveys]").click()
    page.wait_for_url("**/settings/surveys")
    expect(page.locator(f"[data-testid=survey-mode-{shop.channel_id}]")).to_have_text(
        "Off: no survey"
    )
    page.locator(f"[data-testid=edit-survey-{shop.channel_id}]").click()
    page.wait_for_url(f"**/channels/{shop.channel_id}/survey")
    expect(page.locator("[data-testid=survey-limit]")).to_contain_text(
        "WhatsApp allows at most 3 reply buttons"
    )
    page.locator("[data-testid=survey-mode-buttons]").check()
    page.locator("[data-testid=survey-save]").click()
    page.wait_for_url("**/survey?flash=saved")
    expect(page.locator("[data-testid=survey-mode-buttons]")).to_be_checked()
    _shot(page, "csat-settings", full_page=True)

    # The supervisor closes the conversation in the inbox.
    page.goto(f"{shop.puente.url}/inbox/c/{cid}")
    page.locator("[data-testid=close]").click()
    expect(page.locator("[data-testid=status]")).to_have_text("Closed")

    # Lucía gets the survey on her phone and taps the best answer.
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{shop.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}")
    survey = phone.locator(".bubble.theirs", has_text="How would you rate the help you got?")
    expect(survey).to_have_count(1)
    # Meta stamps her answer in whole seconds: she taps in the next second, so that it
    # sorts after the survey Puente stamped to the microsecond, as a person's answer would.
    asked = int(time.time())
    wait_until(lambda: int(time.time()) > asked, what="the next second")
    survey.get_by_role("button", name="😀 Great", exact=True).click()

    # The score arrives in the open conversation, which stays closed.
    expect(page.locator("[data-testid=csat-score]")).to_have_text("5 of 5")
    expect(page.locator("[data-testid=csat-event]")).to_have_text(
        "⭐ The customer rated the conversation 5 of 5"
    )
    expect(page.locator("[data-testid=status]")).to_have_text("Closed")
    assert conversation_of(shop.db).status == "resolved"  # type: ignore[union-attr]
    page.reload()  # the timeline in time order: the survey, the tap, the score
    expect(page.locator("[data-testid=csat-score]")).to_have_text("5 of 5")
    _shot(page, "csat-conversation")
    assert errors == []
