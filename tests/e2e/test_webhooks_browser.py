"""Outgoing webhooks in headless Chromium, against a live Puente (with its workers) and the
Meta sandbox: an admin goes from the home page to Settings → Webhooks, adds an endpoint
pointing at the repository's example receiver and copies its secret (shown once); a
customer writes from the sandbox's phone page and the receiver gets the signed
`message.created`, verified with that secret; the admin sends a test event and watches
both arrive as delivered in the endpoint's log, opening one onto its attempt.

With PUENTE_SCREENSHOTS=<folder> it saves webhooks.png, webhooks-new.png,
webhooks-secret.png, webhooks-log.png and webhooks-log-phone.png for docs/webhooks.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from puente.config import Settings
from puente.db.session import Database
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import add_demo_number, sandbox_control, start_sandbox_and_puente
from tests.factories import PASSWORD, make_user, make_workspace
from tests.integrations.receiver import Receiver
from tests.waiting import wait_until

# What a person sees and clicks: the sending, retries and pages' refusals run in
# tests/integrations (see the one_leg marker in tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg]

TOKEN = "sandbox-webhooks-token"
ADMIN = "ines@ferreteria.example"
LUCIA = "573001117788"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")


@dataclass
class Shop:
    puente: LiveServer
    sandbox: LiveServer
    control: httpx.Client


@pytest.fixture
def shop(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Shop]:
    # The example receiver runs on this machine: the operator allows private addresses.
    settings = settings.model_copy(update={"webhooks_allow_private": True})
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, TOKEN)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Norte")
        make_user(session, ws, role="admin", name="Inés Admin", email=ADMIN)
        channel = add_demo_number(session, ws, runtime, TOKEN)
        channel.name = "Ferretería Norte"
    control = sandbox_control(sandbox, puente)
    yield Shop(puente, sandbox, control)
    control.close()


def _console(errors: list[str], message: Any) -> None:
    # The browser asks for /favicon.ico, which Puente does not have.
    url = str(message.location.get("url", ""))
    if message.type == "error" and not url.endswith("/favicon.ico"):
        errors.append(f"{url}: {message.text}")


def _shot(page: Any, name: str, *, full_page: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def test_an_admin_adds_an_endpoint_and_sees_deliveries_arrive(shop: Shop, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shop.puente.url)
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: _console(errors, m))
    page.goto(shop.puente.url + "/")
    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    # Home → Settings → Webhooks → Add endpoint.
    page.locator(".mainnav").get_by_role("link", name="Settings").click()
    page.locator("[data-testid=nav-webhooks]").click()
    page.wait_for_url("**/settings/webhooks")
    expect(page.locator(".empty-state")).to_contain_text("No endpoints yet.")
    page.locator("[data-testid=add-endpoint]").click()
    page.wait_for_url("**/settings/webhooks/new")

    receiver = Receiver()
    page.fill("[data-testid=endpoint-url]", receiver.url)
    page.fill("[data-testid=endpoint-description]", "Tienda online: pedidos por WhatsApp")
    page.get_by_role("button", name="Check all", exact=True).click()
    expect(page.locator("[data-testid='event-broadcast.finished']")).to_be_checked()
    page.get_by_role("button", name="Uncheck all").click()
    page.check("[data-testid='event-message.created']")
    page.check("[data-testid='event-conversation.created']")
    page.check("[data-testid='event-conversation.status_changed']")
    _shot(page, "webhooks-new", full_page=True)
    page.locator("[data-testid=endpoint-save]").click()

    # The secret, once, with a button that copies it.
    secret = page.locator("[data-testid=new-secret]").inner_text().strip()
    assert secret.startswith("whsec_")
    page.locator("[data-testid=copy-secret]").click()
    expect(page.locator("[data-testid=copy-secret]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    _shot(page, "webhooks-secret")

    with receiver.serving(secret):
        # A customer writes from the phone page: the receiver gets message.created, signed.
        phone = context.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(f"{shop.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}")
        phone.fill("form.compose input[name=text]", "Hola, ¿tienen tornillos de 3 pulgadas?")
        phone.click("form.compose button[type=submit]")
        wait_until(
            lambda: "message.created" in {e["type"] for e in receiver.events},
            seconds=60,
            what="the receiver to verify message.created",
        )
        created = next(e for e in receiver.events if e["type"] == "message.created")
        assert "tornillos" in str(created["data"])

        # And a test event from the endpoint's page.
        page.locator("[data-testid=send-test]").click()
        expect(page.locator(".flash")).to_contain_text("Test event queued")
        wait_until(
            lambda: "webhook.test" in {e["type"] for e in receiver.events},
            seconds=60,
            what="the receiver to verify the test event",
        )

    # The log: every delivery delivered, newest (the test event) first.
    page.reload()
    log = page.locator("[data-testid=delivery-log] details.delivery")
    expect(log.first).to_contain_text("Test event")
    expect(log.first.locator(".pill")).to_have_text("Delivered")
    message_row = log.filter(has_text="A message is sent or received")
    expect(message_row.locator(".pill")).to_have_text("Delivered")
    message_row.locator("summary").click()
    attempt = message_row.locator("[data-testid=attempt]")
    expect(attempt).to_have_count(1)
    expect(attempt).to_contain_text("200")
    _shot(page, "webhooks-log", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "webhooks-log-phone", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    page.locator("[data-testid=back-to-webhooks]").click()
    page.wait_for_url("**/settings/webhooks")
    endpoint_row = page.locator("[data-testid=endpoints] tbody tr")
    expect(endpoint_row).to_have_count(1)
    expect(endpoint_row).to_contain_text("Enabled")
    expect(endpoint_row).to_contain_text("Delivered")
    _shot(page, "webhooks")
    assert errors == []
