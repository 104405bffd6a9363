"""The inbox as a person first meets it, in headless Chromium on a laptop (1366×768) and a
phone (390×844): every composer button is in view without scrolling inside a panel (the
template picker too when the window is closed), the filter panel shows its Apply button, a
conversation opens at its newest message even after its pictures load, and the snippet
menu answers to Enter, Tab and Escape."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from puente.app import create_app
from puente.config import Settings
from puente.conversations.models import Media, Snippet
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from tests.conftest import LiveServer
from tests.e2e.world import sign_in_browser
from tests.factories import make_channel, make_user, make_workspace
from tests.inbox.helpers import add_conversation, add_message

# What a person sees and clicks: the flows underneath run on both legs in tests/ (see
# the one_leg marker in tests/conftest.py).
# On the PostgreSQL leg, which has the shorter list (see tests/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("postgres")]

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LONG = "Les cuento con detalle lo que pasó con el pedido de la semana pasada. " * 8

# Where an element is, told as a person would: "ok" when it is in the window and no
# scrolling (or clipping) box around it hides any part of it.
IN_VIEW = """el => {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return "not drawn";
  if (r.top < -0.5 || r.left < -0.5 || r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5)
    return "outside the window: " + JSON.stringify(r);
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (!/(auto|scroll|hidden|clip)/.test(s.overflowX + " " + s.overflowY)) continue;
    const b = a.getBoundingClientRect();
    if (r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5 || r.left < b.left - 0.5 || r.right > b.right + 0.5)
      return "hidden by its scrolling box " + (a.id || a.className);
  }
  return "ok";
}"""


@dataclass
class Site:
    puente: LiveServer
    email: str
    lucia: int  # window open, a long talk ending with pictures and one last line
    marta: int  # window closed: only templates


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def site(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Site]:
    picture = _png(600, 400)
    sha = hashlib.sha256(picture).hexdigest()
    path = Path(settings.data_dir) / "media" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(picture)
    with db.unit_of_work(unscoped="test") as s:
        ws = make_workspace(s, "Tienda La Esquina")
        owner = make_user(s, ws, role="owner", name="Olga Dueña", email="olga@esq.example")
        channel = make_channel(s, ws)
        lucia = add_conversation(s, ws.id, channel.id, "Lucía Gómez", at=NOW)
        start = NOW - dt.timedelta(hours=2)
        for n in range(40):
            add_message(s, lucia, at=start + dt.timedelta(minutes=n), text=f"{n}. {LONG}")
        for n in range(3):
            image = add_message(
                s, lucia, at=NOW - dt.timedelta(minutes=5 - n), type_="image",
                content={"id": f"img{n}", "mime_type": "image/png"},
            )  # fmt: skip
            s.add(
                Media(
                    workspace_id=ws.id, channel_id=channel.id, message_id=image.id,
                    meta_media_id=f"img{n}", mime_type="image/png", sha256=sha,
                    file_size=len(picture), state="stored",
                )
            )  # fmt: skip
        add_message(s, lucia, at=NOW, text="El más nuevo: ¿ya salió mi pedido?")
        marta = add_conversation(s, ws.id, channel.id, "Marta Ruiz", at=NOW, window_open=False)
        add_message(s, marta, at=NOW - dt.timedelta(days=3), text="Gracias")
        s.add(
            MessageTemplate(
                workspace_id=ws.id, waba_id=channel.waba_id, name="seguimiento",
                language="es", category="UTILITY", status="APPROVED",
                components=[{"type": "BODY", "text": "Hola, ¿pudiste ver tu pedido?"}],
            )
        )  # fmt: skip
        for shortcut, body in (
            ("gracias", "¡Gracias por escribirnos!"),
            ("garantia", "La garantía es de 12 meses."),
        ):
            s.add(Snippet(workspace_id=ws.id, owner_id=None, shortcut=shortcut, body=body))
        ids = (owner.email, lucia.id, marta.id)
    puente = live_server_factory(create_app(settings, db, run_workers=False)).start()
    yield Site(puente, *ids)


def _open(browser: Any, site: Site, viewport: dict[str, int], path: str) -> Any:
    page = sign_in_browser(browser, site.puente.url, site.email)
    page.set_viewport_size(viewport)
    page.goto(site.puente.url + path)
    page.wait_for_selector("#inbox[data-live='1']")
    return page


def _where(page: Any, selector: str) -> list[str]:
    found = page.locator(selector)
    assert found.count() > 0, selector
    return [found.nth(i).evaluate(IN_VIEW) for i in range(found.count())]


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_every_composer_button_is_in_view(
    browser: Any, site: Site, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport, f"/inbox/c/{site.lucia}")
    for selector in (
        "[data-testid=reply-box]",
        "[data-testid=send]",
        "[data-emoji-insert]",
        "[data-testid=attach-panel] > summary",
        "[data-testid=question-panel] > summary",
        "[data-testid=note-tab]",
    ):
        assert set(_where(page, selector)) == {"ok"}, selector
    page.goto(f"{site.puente.url}/inbox/c/{site.marta}")
    page.wait_for_selector("#inbox[data-live='1']")
    assert _where(page, "[data-testid=template-select]") == ["ok"]


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_filter_panel_shows_its_apply_button(
    browser: Any, site: Site, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport, "/inbox")
    page.click("[data-testid=filters] summary")
    apply = "[data-testid=filters] button[type=submit]"
    page.locator(apply).wait_for()
    assert _where(page, apply) == ["ok"]
    assert set(_where(page, "[data-testid=filters] select")) == {"ok"}


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_a_conversation_opens_at_its_newest_message_after_its_pictures_load(
    browser: Any, site: Site, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport, f"/inbox/c/{site.lucia}")
    # The pictures sit just above the newest line: shown once scrolled to, they grow from
    # nothing to 18rem each. A picture's load event fires in the task that completes it.
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#timeline img.media-img')];"
        " return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth === 600); }"
    )
    newest = page.locator("[data-testid=message]", has_text="El más nuevo")
    assert newest.evaluate(IN_VIEW) == "ok"


def test_the_snippet_menu_picks_with_enter_or_tab_and_closes_with_escape(
    browser: Any, site: Site
) -> None:
    page = _open(browser, site, LAPTOP, f"/inbox/c/{site.lucia}")
    box = page.locator("[data-testid=reply-box]")
    menu = page.locator("[data-testid=snippet-menu]")
    box.click()
    box.press_sequentially("/g")
    menu.locator(".snippet-option").nth(1).wait_for()
    highlighted = menu.locator(".snippet-option.active").get_attribute("data-text")
    box.press("Enter")
    assert box.input_value() == highlighted
    assert menu.is_hidden()

    box.fill("")
    box.press_sequentially("/g")
    menu.locator(".snippet-option").nth(1).wait_for()
    box.press("ArrowDown")
    second = menu.locator(".snippet-option.active").get_attribute("data-text")
    assert second != highlighted
    box.press("Tab")
    assert box.input_value() == second
    assert box.evaluate("el => el === document.activeElement")

    box.fill("")
    box.press_sequentially("/gar")
    page.wait_for_function(
        "() => { const m = document.querySelector('[data-testid=snippet-menu]');"
        " return !m.hidden && m.querySelectorAll('.snippet-option').length === 1; }"
    )
    box.press("Escape")
    assert menu.is_hidden()
    assert box.input_value() == "/gar"
    assert page.locator("[data-testid=message].outbound").count() == 0  # nothing was sent
