"""A person connects their WhatsApp Business app in headless Chromium: the wizard, the code
confirmed on the sandbox's simulated phone in a second tab, the page moving on by itself,
the history progress bar reaching 100 %, and the number going "disconnected: phone
inactive" when Meta says so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.channels.conftest import NUMBER, PHONE, Coex, coex, make_coex  # noqa: F401 (fixtures)
from tests.factories import PASSWORD, make_user

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]


def test_onboard_a_coexistence_number_in_the_browser(coex: Coex, browser: Any) -> None:  # noqa: F811
    from puente.accounts.models import Workspace

    coex.control.post(f"/numbers/{NUMBER}/history", json={"chats": 30, "messages": 10})
    with coex.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        make_user(session, ws, role="owner", email="ana@example.com", name="Ana")
    errors: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(coex.puente.url + "/channels")
    page.fill("input[name=email]", "ana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/channels")

    page.click("[data-testid=add-number]")
    page.click("[data-testid=method-coexistence]")
    # The checklist must be ticked before the signup starts.
    page.fill("[data-testid=phone]", "+" + PHONE)
    page.click("[data-testid=start]")
    assert "/channels/new" in page.url
    for name in ("check_version", "check_active", "check_admin"):
        page.check(f"input[name={name}]")
    page.select_option("select[name=country]", "CO")
    assert page.is_checked("[data-testid=import-history]")
    page.click("[data-testid=start]")
    page.wait_for_url("**/channels/onboarding/*")
    code = page.locator("[data-testid=confirm-code]").inner_text()
    assert len(code) == 6

    # The owner, on the phone: the Business app shows the connection request.
    phone = browser.new_page()
    phone.goto(page.locator("[data-testid=phone-link]").get_attribute("href"))
    phone.fill("input[name=confirm_code]", code)
    phone.click("form[action$='/owner/signup'] button[type=submit]")

    # Puente's page notices the confirmation by itself and opens the number's page.
    # Checked by polling the address, not by waiting for one navigation: on a busy machine
    # the status poll can answer "connected" twice, and the second redirect aborts the first
    # (the page lands all the same).
    expect(page).to_have_url(re.compile(r"/channels/\d+\?flash=connected$"), timeout=20_000)
    page.locator("[data-testid=history-percent]", has_text="100 %").wait_for(timeout=30_000)
    assert "Connected" in page.locator("[data-testid=state]").inner_text()
    assert page.locator("[data-testid=sync-history-accepted]").is_visible()
    assert page.locator("[data-testid=features]").is_visible()

    coex.control.post(
        f"/numbers/{NUMBER}/events",
        json={"event": "PARTNER_REMOVED", "reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    )
    coex.wait_status(
        int(page.url.split("/channels/")[1].split("?")[0]),
        lambda s: s["state"] == "disconnected",
        "the disconnection",
    )
    page.reload()
    assert page.locator("[data-testid=state]").inner_text() == "Disconnected: phone inactive"
    assert page.locator("[data-testid=sending-paused]").is_visible()
    assert not [e for e in errors if "Content Security Policy" in e], errors
