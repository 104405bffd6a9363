"""The simulated phone page in headless Chromium: a customer chats, replies and reacts, the team's
answer shows live with ticks, the owner sends text, files and places from the app and edits
contacts, and signup is confirmed on the phone."""

from __future__ import annotations

import hashlib
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


@pytest.mark.browser
def test_owner_sends_media_and_location_customer_replies_and_reacts_live(
    sandbox: Harness, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    sandbox.inbound(text="Hola, ¿me mandas el catálogo?")
    page.goto(f"{sandbox.url}/_sandbox/phone/{NUMBER}/owner?chat={LUCIA}")
    catalogue = tmp_path / "catalogo.pdf"
    catalogue.write_bytes(b"%PDF-1.4\n% catalogo de prueba\n")
    page.get_by_text("Más: foto o archivo, ubicación").click()
    page.get_by_label("Archivo desde la app").set_input_files(str(catalogue))
    page.get_by_label("Pie de foto desde la app").fill("Catálogo 2026")
    page.get_by_role("button", name="Enviar archivo desde la app").click()
    expect(page.locator("#thread")).to_contain_text("📄 Catálogo 2026")
    [echo] = sandbox.receiver.wait_changes("smb_message_echoes", 1)
    document = echo["value"]["message_echoes"][0]["document"]
    assert document["filename"] == "catalogo.pdf" and document["caption"] == "Catálogo 2026"
    assert document["mime_type"] == "application/pdf"
    assert document["sha256"] == hashlib.sha256(catalogue.read_bytes()).hexdigest()

    page.get_by_text("Más: foto o archivo, ubicación").click()
    page.get_by_label("Lugar desde la app").fill("Tienda La Esquina")
    page.get_by_role("button", name="Enviar ubicación desde la app").click()
    expect(page.locator("#thread")).to_contain_text("📍 Tienda La Esquina")
    echo = sandbox.receiver.wait_changes("smb_message_echoes", 2)[1]["value"]["message_echoes"][0]
    assert echo["location"] == {
        "latitude": 4.6097,
        "longitude": -74.0817,
        "name": "Tienda La Esquina",
    }

    # The customer's page follows the chat over server-sent events, not by polling.
    page.goto(f"{sandbox.url}/_sandbox/phone/{NUMBER}/chat/{LUCIA}")
    assert page.locator("#thread").get_attribute("hx-trigger") == "sse:changed"
    question = sandbox.text(LUCIA, "¿Qué talla necesitas?").json()["messages"][0]["id"]
    bubble = page.locator(f'.bubble[data-wamid="{question}"]')
    expect(bubble.locator(".tick")).to_contain_text("leído")

    bubble.get_by_role("link", name="↩ Responder").click()
    expect(page.locator("#replying")).to_contain_text("¿Qué talla necesitas?")
    page.get_by_label("Mensaje", exact=True).fill("La M, por favor")
    page.get_by_role("button", name="Enviar", exact=True).click()
    expect(page.locator(".bubble.mine", has_text="La M")).to_contain_text("↩ ¿Qué talla necesitas?")
    expect(page.locator("#replying")).to_have_count(0)
    reply = sandbox.receiver.wait_for(
        lambda: [
            m
            for c in sandbox.receiver.changes("messages")
            for m in c["value"].get("messages", [])
            if m["type"] == "text" and m["text"]["body"] == "La M, por favor"
        ]
    )[0]
    assert reply["context"] == {"from": "15550783881", "id": question}

    bubble.get_by_role("button", name="Reaccionar ❤️").click()
    expect(bubble.locator(".reaction")).to_have_text("❤️")
    reaction = sandbox.receiver.wait_for(
        lambda: [
            m
            for c in sandbox.receiver.changes("messages")
            for m in c["value"].get("messages", [])
            if m["type"] == "reaction"
        ]
    )[0]
    assert reaction["reaction"] == {"message_id": question, "emoji": "❤️"}


def test_thread_event_stream_announces_changes(sandbox: Harness) -> None:
    chat = f"/_sandbox/phone/{NUMBER}/chat/{LUCIA}"
    html = sandbox.raw.get(chat).text
    assert "every 1s" not in html and 'hx-trigger="sse:changed"' in html
    assert sandbox.raw.get("/_sandbox/static/sse.js").status_code == 200
    match = re.search(r'data-signature="(\w+)"', html)
    assert match is not None
    with sandbox.raw.stream("GET", chat + "/events", params={"since": match[1]}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        sandbox.inbound(text="¿Siguen abiertos?")
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: changed"
    # The page re-fetches the fragment, which now shows the message and a new signature.
    fragment = sandbox.raw.get(chat + "/thread").text
    assert "¿Siguen abiertos?" in fragment and match[1] not in fragment
    # A stale signature (a page rendered before the change) is told at once.
    with sandbox.raw.stream("GET", chat + "/events", params={"since": match[1]}) as stream:
        assert any(line == "event: changed" for line in stream.iter_lines())
    assert sandbox.raw.get(f"/_sandbox/phone/999/chat/{LUCIA}/events").status_code == 404
