"""Two-factor sign-in in headless Chromium against a live server."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from puente.accounts.models import User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.secrets import secret_box
from tests.factories import PASSWORD, make_user, make_workspace

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]


def test_two_factor_login_in_the_browser(
    settings: Settings, db: Database, live_server_factory: Any, browser: Any
) -> None:
    secret = pyotp.random_base32()
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        user = make_user(session, ws, role="owner", email="ana@example.com", name="Ana")
        user.totp_secret_encrypted = secret_box(settings).encrypt(secret)
        user.totp_enabled = True
    server = live_server_factory(create_app(settings, db, run_workers=False)).start()
    errors: list[str] = []
    page = browser.new_page(locale="es-ES")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/settings/profile")
    assert "/login" in page.url
    page.fill("input[name=email]", "ana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/code**")
    page.fill("input[name=code]", "000000")
    page.click("button[type=submit]")
    assert page.locator("[data-testid=error]").is_visible()
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    page.wait_for_url("**/settings/profile")
    assert page.locator("[data-testid=workspace-name]").inner_text() == "Ferretería Sol"
    assert page.locator("[data-testid=mfa-status]").is_visible()
    # htmx and our script loaded under the strict CSP without violations.
    assert page.evaluate("typeof window.htmx") == "object"
    assert not [e for e in errors if "Content Security Policy" in e], errors
    with db.read(unscoped="test") as session:
        row = session.scalar(select(User).where(User.email == "ana@example.com"))
        assert row is not None and row.last_login_at is not None
