"""Every text the inbox shows has its Spanish translation, and pages follow each user's
language and time zone."""

from __future__ import annotations

import ast
from pathlib import Path

from babel.messages.extract import extract

from puente.accounts.models import User
from puente.db.session import Database
from puente.outbound.outbox import questions
from puente.web import i18n
from puente.web.inbox import render
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation, add_message
from tests.webclient import WebClient

SRC = Path(__file__).resolve().parents[2] / "src" / "puente"
# Functions whose first string argument is a msgid translated by the web layer.
# Words Spanish writes the same way.
SAME_IN_SPANISH = {"Bot", "API", "Sticker", "Audio", "Video", "Puente", "Variable %(name)s"}
MSGID_FUNCTIONS = {"user_error": 1, "collab_text": 1, "_form_error": 1, "Problem": 0}


def _template_msgids() -> set[str]:
    found: set[str] = set()
    for path in sorted((SRC / "web" / "templates" / "inbox").glob("*.html")):
        with path.open("rb") as fh:
            for _line, message, _comments, _context in extract(
                "jinja2",
                fh,
                keywords={"_": None, "gettext": None},
                options={"extensions": "jinja2.ext.i18n"},
            ):
                found.add(message if isinstance(message, str) else message[0])
    return found


def _python_msgids() -> set[str]:
    found: set[str] = set()
    for rel in (
        "conversations/collab.py",
        "conversations/snippets.py",
        "web/inbox/actions.py",
        "web/inbox/compose.py",
        "outbound/outbox/attachments.py",
        "outbound/outbox/questions.py",
    ):
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                index = MSGID_FUNCTIONS.get(name)
                if index is not None and len(node.args) > index:
                    arg = node.args[index]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
    found |= {v for k, v in vars(questions).items() if k.startswith("_LONG_")}
    found |= {t.label for t in render.TICKS.values()}
    found |= set(render.FAILURE_REASONS.values()) | set(render.SOURCE_LABELS.values())
    return found


def test_every_inbox_text_has_a_spanish_translation() -> None:
    spanish = i18n.translations("es")
    msgids = _template_msgids() | _python_msgids()
    assert len(msgids) > 200
    untranslated = sorted(m for m in msgids if spanish.gettext(m) == m and m not in SAME_IN_SPANISH)
    assert untranslated == []


def test_pages_follow_the_users_language_and_time_zone(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, window_open=False
        )
        add_message(s, c, at=NOW.replace(hour=15, minute=4), text="Hola")
        owner = s.get(User, shop.owner_id)
        assert owner is not None
        owner.locale = "es"
        owner.timezone = "America/Mexico_City"
        cid = c.id
    listing = owner_web.get("/inbox").text
    assert "Mías" in listing and "Sin asignar" in listing
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert "Ventana cerrada: solo se pueden enviar plantillas" in page
    # 15:04 UTC is 9:04 in Mexico City (UTC-6, no daylight saving time since 2022).
    assert "9:04" in page
