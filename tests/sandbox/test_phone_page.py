"""The simulated phone page in headless Chromium: a customer chats, the team's answer shows
with ticks, the owner sends from the app and edits contacts, and signup is confirmed on the phone."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.conftest import LUCIA, NUMBER, Harness

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("PUENTE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required but missing at /usr/bin/chromium")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page()
        tab.set_default_timeout(10_000)
        yield tab
        browser.close()


@pytest.mark.browser
def test_phone_page_customer_owner_and_signup(sandbox: Harness, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{sandbox.url}/_sandbox/phone")
    page.get_by_role("link", name=re.compile("Lucía Gómez")).click()
    page.get_by_label("Mensaje", exact=True).fill("¿Tienen envíos a Cali?")
    page.get_by_role("button", name="Enviar", exact=True).click()
    expect(page.locator("#thread")).to_contain_text("¿Tienen envíos a Cali?")
    [change] = sandbox.receiver.wait_changes("messages", 1)
    assert change["value"]["messages"][0]["text"]["body"] == "¿Tienen envíos a Cali?"

    # The team answers through the API; the customer sees it arrive with read ticks.
    sandbox.text(LUCIA, "Sí, en 2 días")
    expect(page.locator(".bubble.theirs").last).to_contain_text("Sí, en 2 días")
    expect(page.locator(".bubble.theirs .tick").last).to_contain_text("leído")

    page.goto(f"{sandbox.url}/_sandbox/phone/{NUMBER}/owner?chat={LUCIA}")
    expect(page.locator("#thread")).to_contain_text("Equipo (API)")
    page.get_by_label("Mensaje desde la app").fill("Te escribo yo, la dueña")
    page.get_by_role("button", name="Enviar desde la app").click()
    expect(page.locator("#thread")).to_contain_text("Te escribo yo, la dueña")
    echo = sandbox.receiver.wait_changes("smb_message_echoes", 1)[0]["value"]["message_echoes"][0]
    assert echo["text"]["body"] == "Te escribo yo, la dueña"
    page.get_by_text("Editar o eliminar").click()
    page.get_by_label("Texto editado").fill("Te escribo yo, la dueña 🙂")
    page.get_by_role("button", name="Editar", exact=True).click()
    expect(page.locator("#thread")).to_contain_text("(editado)")
    page.get_by_label("Número del contacto").fill("573207778899")
    page.get_by_label("Nombre del contacto").fill("Rosa Díaz")
    page.get_by_role("button", name="Guardar contacto").click()
    expect(page.locator("#address-book")).to_contain_text("Rosa Díaz")

    page.goto(f"{sandbox.url}/_sandbox/signup")
    page.get_by_label("Número (internacional)").fill("573109990000")
    page.get_by_role("button", name="Continuar").click()
    code = page.locator("#confirm-code").inner_text().strip()
    page.get_by_role("link", name="Abrir el teléfono simulado").click()
    page.get_by_label("Código que muestra la página de registro").fill(code)
    page.get_by_role("button", name="Confirmar").click()
    expect(page.locator("#connection")).to_have_text("connected")
    page.go_back()
    page.go_back()
    expect(page.locator("#session-info")).to_contain_text("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING")
