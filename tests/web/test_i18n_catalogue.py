"""The Spanish catalogue is complete, and no page shown in Spanish carries English text
that the catalogue translates (a string shown without gettext, or a msgid changed in a
template but not in the catalogue)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi import FastAPI
from fastapi.testclient import TestClient

from puente.accounts.auth import do_invite
from puente.accounts.models import Role, User
from puente.app import create_app
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.models import Broadcast, MessageTemplate
from tests.accounts.test_route_walk import web_routes
from tests.factories import (
    PASSWORD,
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_team,
    make_token,
    make_user,
    make_workspace,
)
from tests.webclient import WebClient

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("sqlite")

CATALOGUE = Path(__file__).resolve().parents[2] / "src/puente/locale/es/LC_MESSAGES/messages.po"
# Not pages: a stream that never ends, files, and the catalogue's own link targets.
NOT_PAGES = ("/inbox/events", ".csv", "/inbox/media/", "/reset/", "/invite/")
# Attributes a person reads (or hears): the rest are for the code.
READ_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt", "data-confirm"}


def spanish_catalogue() -> dict[str, str]:
    """msgid -> Spanish, plural forms as two entries."""
    with CATALOGUE.open("rb") as fh:
        catalog = read_po(fh, locale="es")
    found: dict[str, str] = {}
    for message in catalog:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = (
            [message.string] if isinstance(message.string, str) else list(message.string or ())
        )
        for n, msgid in enumerate(ids):
            found[msgid] = strings[min(n, len(strings) - 1)] if strings else ""
    return found


def test_every_msgid_has_a_spanish_translation() -> None:
    with CATALOGUE.open("rb") as fh:
        catalog = read_po(fh, locale="es")
    untranslated = [
        message.id
        for message in catalog
        if message.id
        and (
            message.fuzzy
            or not message.string
            or (not isinstance(message.string, str) and not all(message.string))
        )
    ]
    assert untranslated == [], f"{len(untranslated)} msgids without Spanish: {untranslated}"


class VisibleText(HTMLParser):
    """The text a person sees or hears on a page: no script or style, and of the
    attributes only those read out or shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        self.parts.extend(value for name, value in attrs if name in READ_ATTRIBUTES and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def text(self) -> str:
        return " \n ".join(" ".join(part.split()) for part in self.parts)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return parser.text()


def english_checks(catalogue: dict[str, str]) -> list[tuple[str, re.Pattern[str]]]:
    """Msgids worth looking for: long enough not to be a word Spanish uses too, and
    translated differently. Placeholders match anything short."""
    checks = []
    for msgid, spanish in catalogue.items():
        english = " ".join(msgid.split())
        if not spanish or spanish == msgid or len(english) < 8 or len(english.split()) < 2:
            continue
        if english in " ".join(spanish.split()):
            continue
        pieces = re.split(r"%\(\w+\)[sd]|%[sd]", english)
        if max(len(p.strip()) for p in pieces) < 8:
            continue
        pattern = r".{1,80}?".join(re.escape(p) for p in pieces)
        checks.append((msgid, re.compile(pattern)))
    return checks


@dataclass
class World:
    ids: dict[str, int]
    owner_email: str


def build_world(db: Database, locale: str = "es") -> World:
    """A workspace in Spanish with something on every page."""
    now = utcnow()
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Panadería Sol")
        owner = make_user(session, ws, role="owner", email="duena@sol.example", name="Ana Dueña")
        owner.locale = locale
        agent = make_user(session, ws, role="agent", email="agente@sol.example", name="Beto")
        team = make_team(session, ws, "Ventas", [agent])
        channel = make_channel(session, ws)
        contact = make_contact(session, ws, name="Lucía Pérez")
        make_contact(session, ws, name="Mario López")
        conversation = make_conversation(session, channel, contact, last_activity_at=now)
        make_message(session, conversation, timestamp=now - dt.timedelta(minutes=5))
        message = make_message(
            session,
            conversation,
            timestamp=now,
            text="Con gusto",
            direction="outbound",
            source="agent",
            status="read",
        )
        template = MessageTemplate(
            workspace_id=ws.id,
            waba_id=channel.waba_id,
            name="pedido_listo",
            language="es",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Hola {{1}}, tu pedido está listo."}],
        )
        broadcast = Broadcast(
            workspace_id=ws.id,
            channel_id=channel.id,
            name="aviso de mayo",
            template_name="pedido_listo",
            template_language="es",
            template_category="UTILITY",
        )
        session.add_all([template, broadcast])
        session.flush()
        make_token(session, ws, ["contacts:read"])
        do_invite(
            session,
            workspace_id=ws.id,
            email="nuevo@sol.example",
            role=Role.AGENT,
            invited_by=owner,
            actor="test",
            ip=None,
        )
        ids = {
            "channel_id": channel.id,
            "contact_id": contact.id,
            "conversation_id": conversation.id,
            "message_id": message.id,
            "template_id": template.id,
            "broadcast_id": broadcast.id,
            "team_id": team.id,
            "user_id": agent.id,
        }
        return World(ids, owner.email)


def page_urls(app: FastAPI, ids: dict[str, int]) -> list[str]:
    urls = []
    for route in web_routes(app):
        if route.method != "GET" or any(part in route.path for part in NOT_PAGES):
            continue
        names = re.findall(r"\{(\w+)[^}]*\}", route.path)
        if any(name not in ids for name in names):
            continue  # nothing of that kind in the world (onboardings, notes, events)
        urls.append(re.sub(r"\{(\w+)[^}]*\}", lambda m: str(ids[m.group(1)]), route.path))
    return urls


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


def english_on(
    web: WebClient, urls: list[str], checks: list[tuple[str, re.Pattern[str]]]
) -> list[str]:
    found = []
    for url in urls:
        response = web.get(url, follow_redirects=False)
        if 300 <= response.status_code < 400 or "text/html" not in response.headers["content-type"]:
            continue
        text = visible_text(response.text)
        found.extend(f"{url}: {msgid!r}" for msgid, pattern in checks if pattern.search(text))
    return found


def test_no_page_in_spanish_shows_english_from_the_catalogue(app: FastAPI, db: Database) -> None:
    world = build_world(db)
    checks = english_checks(spanish_catalogue())
    assert len(checks) > 300
    with TestClient(app) as client:
        web = WebClient(client)
        assert web.login(world.owner_email, PASSWORD).status_code == 200
        with db.read(unscoped="test") as session:
            owner = session.query(User).filter_by(email=world.owner_email).one()
            assert owner.locale == "es"
        urls = page_urls(app, world.ids)
        assert "/settings/users" in urls and f"/inbox/c/{world.ids['conversation_id']}" in urls
        found = english_on(web, urls, checks)
    with TestClient(app) as anonymous:
        visitor = WebClient(anonymous)
        visitor.http.headers["accept-language"] = "es"
        found += english_on(visitor, ["/login", "/forgot-password", "/setup"], checks)
    assert found == [], "English on Spanish pages:\n" + "\n".join(found)


def test_the_walk_would_see_english(app: FastAPI, db: Database) -> None:
    """The same walk for an owner who reads English finds the catalogue's English on the
    pages: the check above is not blind."""
    world = build_world(db, locale="en")
    with TestClient(app) as client:
        web = WebClient(client)
        assert web.login(world.owner_email, PASSWORD).status_code == 200
        found = english_on(web, page_urls(app, world.ids), english_checks(spanish_catalogue()))
    assert "/settings/users: 'Pending invitations'" in found
    assert "/settings/profile: 'Set up two-factor sign-in'" in found
    assert len({line.split(":")[0] for line in found}) > 20
