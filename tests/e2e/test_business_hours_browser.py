"""An admin sets a number's business hours by clicking in headless Chromium: from the
number's page to its business hours, a mistake named next to its day, then a week of
split shifts, Mexico's holidays, a closed date and an away message, saved and shown back
with whether the number is open now.

With PUENTE_SCREENSHOTS=<folder> it saves business-hours.png for docs/business-hours.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from puente.accounts.models import Workspace
from puente.automation.hours import hours_of
from puente.channels.models import Channel
from tests.channels.conftest import Coex, coex, make_coex  # noqa: F401 (fixtures)
from tests.factories import PASSWORD, make_user

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def test_set_the_business_hours_by_clicking(coex: Coex, browser: Any) -> None:  # noqa: F811
    channel_id = coex.onboard(import_history=False)
    with coex.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        make_user(session, ws, role="admin", email="ana@example.com", name="Ana")
    page = browser.new_page(viewport={"width": 1200, "height": 1300})
    page.goto(f"{coex.puente.url}/channels/{channel_id}")
    page.fill("input[name=email]", "ana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/channels/{channel_id}")
    assert "always open" in page.locator("[data-testid=business-hours]").inner_text()
    page.click("[data-testid=edit-hours]")
    page.wait_for_url(f"**/channels/{channel_id}/business-hours")

    page.select_option("[data-testid=time-zone]", "America/Mexico_City")
    # Monday's first interval typed backwards: refused, named by its day.
    page.fill("[data-testid=mon-start-0]", "13:00")
    page.fill("[data-testid=mon-end-0]", "09:00")
    page.click("[data-testid=hours-save]")
    error = page.locator("[data-testid=hours-errors]")
    error.wait_for()
    assert "Monday, interval 1: the interval ends before it starts" in error.inner_text()

    for day in WEEKDAYS:
        page.fill(f"[data-testid={day}-start-0]", "09:00")
        page.fill(f"[data-testid={day}-end-0]", "13:00")
        page.fill(f"[data-testid={day}-start-1]", "15:00")
        page.fill(f"[data-testid={day}-end-1]", "19:00")
    page.fill("[data-testid=sat-start-0]", "10:00")
    page.fill("[data-testid=sat-end-0]", "14:00")
    page.select_option("[data-testid=holidays-country]", "MX")
    page.fill("[data-testid=closed-dates]", "2026-12-24")
    page.check("[data-testid=away-enabled]")
    page.fill(
        "[data-testid=away-message]",
        "Hola {contact.name|}, gracias por escribir. Abrimos de lunes a viernes de 9 a 19 h "
        "y el sábado de 10 a 14 h; te respondemos en cuanto abramos.",
    )
    page.fill("[data-testid=away-every]", "12")
    page.click("[data-testid=hours-save]")
    page.wait_for_url("**/business-hours?flash=saved")
    status = page.locator("[data-testid=hours-status]").inner_text()
    assert status == "Open now" or status.startswith("Closed now, opens"), status
    assert page.locator("[data-testid=closures]").is_visible()
    assert page.input_value("[data-testid=fri-end-1]") == "19:00"
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "business-hours.png"), full_page=True)

    with coex.db.read(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        hours = hours_of(channel)
    assert hours is not None and hours.away_enabled and hours.holidays_country == "MX"
    assert [len(day) for day in hours.week] == [2, 2, 2, 2, 2, 1, 0]

    # Back on the number's page, the summary says the same.
    page.goto(f"{coex.puente.url}/channels/{channel_id}")
    summary = page.locator("[data-testid=business-hours]").inner_text()
    assert status in summary and "Away message on" in summary
