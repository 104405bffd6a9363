"""The composer's attachments and questions with options, through HTTP: Meta's limits are
checked on the server before anything is stored, uploaded or queued, and each refusal
reads clearly in the agent's language. (The upload and the send against the sandbox are
walked in the browser: tests/e2e/test_inbox_composer.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from puente.accounts.models import User
from puente.config import Settings
from puente.conversations.models import Message
from puente.db.session import Database
from puente.outbound.models import OutboxItem
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation, add_message
from tests.webclient import WebClient

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("postgres")

SCRIPT = {"x-inbox": "1"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _conversation(db: Database, shop: Shop, *, window_open: bool = True) -> int:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, window_open=window_open
        )
        add_message(s, c, at=NOW - dt.timedelta(minutes=1), text="Hola", wamid="wamid.C1")
        return c.id


def _queued(db: Database) -> int:
    with db.read(unscoped="test") as s:
        return int(s.scalar(select(func.count()).select_from(OutboxItem)) or 0)


def _attach(web: WebClient, cid: int, name: str, data: bytes, mime: str, caption: str = "") -> Any:
    web.get(f"/inbox/c/{cid}")
    assert web.csrf
    return web.http.post(
        f"/inbox/c/{cid}/send-media",
        data={"caption": caption, "key": "k-" + name},
        files={"file": (name, data, mime)},
        headers={**SCRIPT, "x-csrf-token": web.csrf, "accept": "text/html"},
    )


def _stored_files(settings: Settings) -> list[str]:
    root = settings.data_dir / "media"
    return [p.name for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_the_composer_offers_attachments_and_questions(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert 'data-testid="attach-form"' in page and 'enctype="multipart/form-data"' in page
    assert 'data-testid="question-form"' in page
    assert "image/png" in page  # the limits travel to the browser's instant check


def test_an_oversized_image_is_refused_before_anything_is_stored(
    owner_web: WebClient, shop: Shop, db: Database, settings: Settings
) -> None:
    cid = _conversation(db, shop)
    big = PNG + b"\x00" * (5 * 1024 * 1024)
    response = _attach(owner_web, cid, "foto.png", big, "image/png")
    assert response.status_code == 422
    assert "foto.png is too big" in response.text and "5 MB" in response.text
    assert _queued(db) == 0 and _stored_files(settings) == []


def test_a_body_over_the_largest_whatsapp_file_is_refused_unread(
    owner_web: WebClient, shop: Shop, db: Database, settings: Settings
) -> None:
    # Over 100 MB nothing WhatsApp takes can be inside: refused on the declared length,
    # before the form is parsed (the message names no file: none was read).
    cid = _conversation(db, shop)
    huge = b"%PDF-1.4\n" + b"\x00" * (102 * 1024 * 1024)
    response = _attach(owner_web, cid, "catalogo.pdf", huge, "application/pdf")
    assert response.status_code == 422
    assert "WhatsApp takes no file over 100 MB" in response.text
    assert _queued(db) == 0 and _stored_files(settings) == []


def test_a_wrong_type_is_refused(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _conversation(db, shop)
    gif = _attach(owner_web, cid, "baile.gif", b"GIF89a" + b"\x00" * 20, "image/gif")
    assert gif.status_code == 422
    assert "does not accept this type of file (baile.gif)" in gif.text
    # A program renamed to look like a picture is refused too.
    fake = _attach(owner_web, cid, "foto.png", b"MZ\x90\x00" * 10, "image/png")
    assert fake.status_code == 422 and "foto.png" in fake.text
    assert _queued(db) == 0


def test_a_static_sticker_over_100_kb_is_refused(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * (150 * 1024)
    response = _attach(owner_web, cid, "sticker.webp", webp, "image/webp")
    assert response.status_code == 422 and "100 KB / 500 KB" in response.text
    assert _queued(db) == 0


def test_audio_takes_no_caption(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _conversation(db, shop)
    response = _attach(owner_web, cid, "nota.mp3", b"ID3" + b"\x00" * 50, "audio/mpeg", "hola")
    assert response.status_code == 422
    assert "Audio and stickers cannot carry a caption" in response.text
    assert _queued(db) == 0


def test_a_closed_window_refuses_an_attachment_before_uploading(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop, window_open=False)
    response = _attach(owner_web, cid, "foto.png", PNG, "image/png")
    assert response.status_code == 422
    assert "24-hour window is closed" in response.text
    assert response.headers.get("x-inbox-refresh") == "composer"
    assert _queued(db) == 0


def test_refusals_read_in_spanish(owner_web: WebClient, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        owner = s.get(User, shop.owner_id)
        assert owner is not None
        owner.locale = "es"
    cid = _conversation(db, shop)
    too_big = _attach(owner_web, cid, "foto.png", PNG + b"\x00" * (6 * 1024 * 1024), "image/png")
    assert "demasiado grande" in too_big.text
    question = owner_web.post(
        f"/inbox/c/{cid}/send-question",
        {"body": "¿Color?", "option": ["Rojo", "Azul", "Verde", "Negro"], "style": "buttons"},
        headers=SCRIPT,
    )
    assert question.status_code == 422 and "como máximo 3 opciones" in question.text


# -- questions with options ----------------------------------------------------------------


def _ask(web: WebClient, cid: int, **fields: Any) -> Any:
    web.get(f"/inbox/c/{cid}")
    return web.post(f"/inbox/c/{cid}/send-question", fields, headers=SCRIPT)


def _payloads(db: Database) -> list[dict[str, Any]]:
    with db.read(unscoped="test") as s:
        return [dict(p) for p in s.scalars(select(OutboxItem.payload).order_by(OutboxItem.id))]


def test_up_to_three_options_go_as_reply_buttons(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    response = _ask(
        owner_web,
        cid,
        body="¿Cuándo te lo enviamos?",
        option=["Hoy", "Mañana", "", "", ""],
        description=["", "", "", "", ""],
        style="buttons",
        footer="Tienda La Esquina",
        key="q-1",
    )
    assert response.status_code == 200, response.text
    assert 'data-status="queued"' in response.text
    assert "Hoy" in response.text and "Mañana" in response.text
    (payload,) = _payloads(db)
    assert payload["type"] == "interactive"
    assert payload["interactive"] == {
        "type": "button",
        "body": {"text": "¿Cuándo te lo enviamos?"},
        "footer": {"text": "Tienda La Esquina"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "opt-1", "title": "Hoy"}},
                {"type": "reply", "reply": {"id": "opt-2", "title": "Mañana"}},
            ]
        },
    }


def test_up_to_ten_options_go_as_a_list(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _conversation(db, shop)
    titles = [f"Sucursal {n}" for n in range(1, 11)]
    response = _ask(
        owner_web,
        cid,
        body="¿Dónde lo recoges?",
        option=titles,
        description=["Centro"] + [""] * 9,
        style="list",
        list_button="Ver sucursales",
        section_title="Bogotá",
        header="Recogida",
    )
    assert response.status_code == 200, response.text
    (payload,) = _payloads(db)
    wire = payload["interactive"]
    assert wire["type"] == "list" and wire["header"] == {"type": "text", "text": "Recogida"}
    assert wire["action"]["button"] == "Ver sucursales"
    (section,) = wire["action"]["sections"]
    assert section["title"] == "Bogotá" and len(section["rows"]) == 10
    assert section["rows"][0] == {"id": "opt-1", "title": "Sucursal 1", "description": "Centro"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"option": ["A", "B", "C", "D"]}, "Reply buttons hold at most 3 options"),
        ({"option": ["Una opción muy larguísima", "B"]}, "Option 1 is too long: 25 characters"),
        ({"option": ["Sí", "sí"]}, "Two options have the same text"),
        ({"option": []}, "Give at least one option"),
        ({"body": ""}, "Write the question first"),
        ({"body": "x" * 1025}, "The question is too long: 1025 characters, at most 1024"),
        ({"header": "h" * 61}, "The header is too long: 61 characters, at most 60"),
        ({"footer": "f" * 61}, "The footer is too long"),
        ({"style": "list", "list_button": ""}, "Name the button that opens the list"),
        ({"style": "list", "list_button": "b" * 21}, "The list button is too long"),
        ({"style": "list", "option": [f"o{n}" for n in range(11)]}, "at most 10 options"),
        (
            {"style": "list", "option": ["r" * 25]},
            "Option 1 is too long: 25 characters, at most 24",
        ),
        (
            {"style": "list", "option": ["A"], "description": ["d" * 73]},
            "The description of option 1 is too long",
        ),
        ({"style": "list", "section_title": "s" * 25}, "The section title is too long"),
    ],
)
def test_a_question_breaking_metas_limits_is_refused(
    owner_web: WebClient, shop: Shop, db: Database, fields: dict[str, Any], expected: str
) -> None:
    cid = _conversation(db, shop)
    form: dict[str, Any] = {
        "body": "¿Qué prefieres?",
        "option": ["A", "B"],
        "style": "buttons",
        "list_button": "Opciones",
        **fields,
    }
    response = _ask(owner_web, cid, **form)
    assert response.status_code == 422
    assert expected in response.text
    assert _queued(db) == 0


def test_a_question_into_a_closed_window_is_refused(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop, window_open=False)
    response = _ask(owner_web, cid, body="¿Sigues ahí?", option=["Sí", "No"], style="buttons")
    assert response.status_code == 422 and "24-hour window is closed" in response.text
    assert _queued(db) == 0


def test_the_same_press_of_send_question_queues_once(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _conversation(db, shop)
    for _ in range(2):
        response = _ask(owner_web, cid, body="¿Sí?", option=["Sí", "No"], key="same-q")
        assert response.status_code == 200
    assert _queued(db) == 1
    with db.read(unscoped="test") as s:
        assert (
            s.scalar(select(func.count()).select_from(Message).where(Message.type == "interactive"))
            == 1
        )
