"""The composer's attachments and questions with options in headless Chromium, against a
live Puente wired to the Meta sandbox: a PNG and a PDF are uploaded and reach the
customer's phone; an oversized file and a wrong type are refused with the reason shown;
a question goes as reply buttons, the customer taps one and the answer shows quoting the
question; a list goes with its button; a list without its button is refused."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.session import Database
from puente.outbound.models import OutboxItem
from puente.runtime import Runtime
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import LiveServer
from tests.e2e.world import (
    add_demo_number,
    sandbox_control,
    sign_in_browser,
    start_sandbox_and_puente,
)
from tests.factories import make_user, make_workspace

# What a person sees in the browser does not change with the database under it: one leg
# (the data paths behind it run on both through the HTTP and domain tests).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("postgres")]

TOKEN = "sandbox-composer-token"
SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
LUCIA = "573001112244"


@dataclass
class Live:
    puente: LiveServer
    sandbox: LiveServer
    runtime: Runtime
    control: httpx.Client
    owner_email: str


@pytest.fixture
def live(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Live]:
    sandbox, puente, runtime = start_sandbox_and_puente(
        settings, db, live_server_factory, TOKEN, status_delays=(0.0, 0.3, 0.8), backoff_base=0.05
    )
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        owner = make_user(session, ws, role="owner", name="Olga Dueña", email="olga@esq.example")
        add_demo_number(session, ws, runtime, TOKEN)
        owner_email = owner.email
    control = sandbox_control(sandbox, puente)
    yield Live(puente, sandbox, runtime, control, owner_email)
    control.close()


def _png() -> bytes:
    """A real 2×2 RGB PNG, so anything that decodes it sees a picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _sent(live: Live, kind: str) -> list[dict[str, Any]]:
    sent = live.control.get("/sent", params={"to": LUCIA}).json()
    return [m for m in sent if m["type"] == kind]


def _queued(db: Database) -> int:
    with db.read(unscoped="test") as s:
        return int(s.scalar(select(func.count()).select_from(OutboxItem)) or 0)


def _sign_in(live: Live, browser: Any) -> Any:
    return sign_in_browser(browser, live.puente.url, live.owner_email, height=900)


def _open_conversation(live: Live, db: Database, agent: Any) -> None:
    res = live.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound",
        json={"from": LUCIA, "name": "Lucía Gómez", "text": "Hola, ¿me mandan el catálogo?"},
    )
    assert res.status_code == 201, res.text
    row = agent.locator("[data-testid=conversation-row]", has_text="Lucía Gómez")
    row.wait_for()
    row.locator("a").click()
    agent.wait_for_selector("#inbox[data-live='1']")
    agent.locator("[data-testid=message].inbound", has_text="catálogo").wait_for()


def test_attachments_reach_the_phone_and_bad_files_are_refused(
    live: Live, db: Database, browser: Any, tmp_path: Path
) -> None:
    agent = _sign_in(live, browser)
    _open_conversation(live, db, agent)
    agent.click("[data-testid=attach-panel] summary")

    # A PNG with a caption: pending at once, then ticks; the customer's phone gets it.
    png = tmp_path / "pedido.png"
    png.write_bytes(_png())
    agent.set_input_files("[data-testid=attach-file]", str(png))
    agent.fill("[data-testid=attach-caption]", "Tu pedido empacado")
    agent.click("[data-testid=attach-send]")
    image = agent.locator("[data-testid=message].outbound", has_text="Tu pedido empacado")
    image.wait_for()
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('Tu pedido empacado')"
    )
    assert image.locator("img.media-img").count() == 1
    natural = image.locator("img.media-img").evaluate("img => img.naturalWidth")
    assert natural == 2  # the stored file is served back to the agent
    (sent_image,) = _sent(live, "image")
    assert sent_image["content"]["image"]["caption"] == "Tu pedido empacado"
    assert sent_image["content"]["image"]["id"]  # sent by media id, after the upload
    phone = agent.context.new_page()
    phone.goto(f"{live.sandbox.url}/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}")
    phone.locator(".bubble", has_text="Tu pedido empacado").wait_for()

    # A PDF arrives as a document with its name, downloadable in the conversation.
    pdf = tmp_path / "catalogo-2026.pdf"
    pdf.write_bytes(PDF)
    agent.set_input_files("[data-testid=attach-file]", str(pdf))
    agent.click("[data-testid=attach-send]")
    link = agent.locator("[data-testid=message].outbound [data-testid=document-link]")
    link.wait_for()
    assert link.inner_text() == "catalogo-2026.pdf"
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('catalogo-2026.pdf')"
    )
    phone.reload()  # the phone's own live updates are the sandbox's business, not this test's
    phone.locator(".bubble", has_text="catalogo-2026.pdf").wait_for()
    (sent_doc,) = _sent(live, "document")
    assert sent_doc["content"]["document"]["filename"] == "catalogo-2026.pdf"
    queued = _queued(db)

    # An image over Meta's 5 MB and a GIF are refused with the reason, nothing queued.
    big = tmp_path / "enorme.png"
    big.write_bytes(_png() + b"\x00" * (5 * 1024 * 1024 + 1))
    agent.set_input_files("[data-testid=attach-file]", str(big))
    error = agent.locator("[data-testid=attach-error]")
    error.wait_for()
    assert "enorme.png is too big" in error.inner_text() and "5 MB" in error.inner_text()
    agent.click("[data-testid=attach-send]")
    assert "too big" in error.inner_text()
    gif = tmp_path / "baile.gif"
    gif.write_bytes(b"GIF89a" + b"\x00" * 32)
    agent.set_input_files("[data-testid=attach-file]", str(gif))
    agent.wait_for_selector("[data-testid=attach-error]:has-text('baile.gif')")
    assert "does not accept this type of file" in error.inner_text()
    # The server refuses on its own too (the browser's check is only a convenience): a
    # file pretending to be a PNG passes the browser but not the server.
    fake = tmp_path / "foto.png"
    fake.write_bytes(b"MZ" + b"\x00" * 100)
    agent.set_input_files("[data-testid=attach-file]", str(fake))
    agent.click("[data-testid=attach-send]")
    agent.wait_for_selector("[data-testid=attach-error]:has-text('foto.png')")
    assert _queued(db) == queued
    assert len(_sent(live, "image")) == 1


def test_a_question_with_options_and_the_customers_answer(
    live: Live, db: Database, browser: Any
) -> None:
    agent = _sign_in(live, browser)
    _open_conversation(live, db, agent)
    # Keyboard only: open the builder and fill it.
    agent.focus("[data-testid=question-panel] summary")
    agent.keyboard.press("Enter")
    agent.fill("[data-testid=question-body]", "¿Cuándo te lo enviamos?")
    options = agent.locator("[data-testid=question-option]")
    options.nth(0).fill("Hoy")
    options.nth(1).fill("Mañana")
    options.nth(1).press("Control+Enter")
    question = agent.locator("[data-testid=message].outbound", has_text="¿Cuándo te lo enviamos?")
    question.wait_for()
    assert question.locator("[data-testid=interactive-options] li").all_inner_texts() == [
        "Hoy",
        "Mañana",
    ]
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('¿Cuándo te lo enviamos?')"
    )
    (sent,) = _sent(live, "interactive")
    buttons = sent["content"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Hoy", "Mañana"]

    # The customer taps "Mañana": the answer shows, quoting the question.
    res = live.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound",
        json={
            "from": LUCIA,
            "type": "interactive",
            "payload": {
                "type": "button_reply",
                "button_reply": {"id": buttons[1]["reply"]["id"], "title": "Mañana"},
            },
            "context_id": sent["id"],
        },
    )
    assert res.status_code == 201, res.text
    answer = agent.locator("[data-testid=message].inbound", has_text="Mañana")
    answer.wait_for()
    assert "¿Cuándo te lo enviamos?" in answer.locator("[data-testid=quoted]").inner_text()
    assert "Mañana" in answer.locator("[data-testid=interactive-reply]").inner_text()

    # A list of 4 options: without the button that opens it the server refuses it.
    agent.check("[data-testid=style-list]")
    agent.fill("[data-testid=question-body]", "¿En qué sucursal lo recoges?")
    for n, name in enumerate(["Centro", "Norte", "Sur", "Aeropuerto"]):
        options.nth(n).fill(name)
    agent.locator("[data-testid=question-description]").nth(0).fill("Calle 10 # 4-20")
    agent.click("[data-testid=question-send]")
    error = agent.locator("[data-testid=question-error]")
    error.wait_for()
    assert "Name the button that opens the list" in error.inner_text()
    agent.fill("[data-testid=question-list-button]", "Ver sucursales")
    agent.click("[data-testid=question-send]")
    listed = agent.locator("[data-testid=message].outbound", has_text="¿En qué sucursal")
    listed.wait_for()
    assert listed.locator("[data-testid=interactive-options] li").count() == 4
    agent.wait_for_selector(
        "[data-testid=message].outbound[data-status='read']:has-text('¿En qué sucursal')"
    )
    sent_list = [
        m for m in _sent(live, "interactive") if m["content"]["interactive"]["type"] == "list"
    ]
    (only,) = sent_list
    action = only["content"]["interactive"]["action"]
    assert action["button"] == "Ver sucursales"
    assert action["sections"][0]["rows"][0]["description"] == "Calle 10 # 4-20"
    with db.read(unscoped="test") as s:
        conversation = s.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == LUCIA)
        ).one()
        kinds = s.scalars(
            select(Message.type).where(
                Message.conversation_id == conversation.id, Message.direction == "outbound"
            )
        ).all()
    assert sorted(kinds) == ["interactive", "interactive"]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        agent.screenshot(path=str(Path(SHOTS) / "composer-extras.png"))
