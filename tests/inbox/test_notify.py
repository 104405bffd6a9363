"""The notification bell and presence over HTTP: the unread count, marking one read (only
one's own), the preferences in the profile, and availability changes pushed live to
colleagues' event streams."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import User
from puente.app import create_app
from puente.config import Settings
from puente.conversations.models import Notification
from puente.db.session import Database
from tests.conftest import LiveServer
from tests.factories import PASSWORD
from tests.inbox.conftest import NOW, Shop, login
from tests.inbox.helpers import add_conversation
from tests.inbox.test_realtime import _open
from tests.webclient import WebClient

SCRIPT = {"x-inbox": "1"}


def _assign_two_to_ana(owner_web: WebClient, shop: Shop, db: Database) -> list[int]:
    with db.unit_of_work(unscoped="test") as s:
        cids = [
            add_conversation(s, shop.workspace_id, shop.channel_id, name, at=NOW).id
            for name in ("Lucía", "Marta")
        ]
    for cid in cids:
        response = owner_web.post(
            f"/inbox/c/{cid}/assign",
            {"assignee_id": shop.ana_id, "expected_assignee": "none"},
            headers=SCRIPT,
        )
        assert response.status_code == 204
    return cids


def _ids(db: Database, user_id: int) -> list[int]:
    with db.read(unscoped="test") as s:
        return list(
            s.scalars(
                select(Notification.id)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )


def test_the_bell_counts_and_marks_one_read(owner_web: WebClient, shop: Shop, db: Database) -> None:
    _assign_two_to_ana(owner_web, shop, db)
    ana = login(TestClient(owner_web.http.app), shop.ana_email)  # type: ignore[attr-defined]
    assert ana.get("/inbox/notifications/count").json() == {"unread": 2}
    first, second = _ids(db, shop.ana_id)

    # Nobody else can mark Ana's notifications read.
    owner_web.post(f"/inbox/notifications/{first}/read", headers=SCRIPT)
    assert ana.get("/inbox/notifications/count").json() == {"unread": 2}

    assert ana.post(f"/inbox/notifications/{first}/read", headers=SCRIPT).status_code == 204
    assert ana.get("/inbox/notifications/count").json() == {"unread": 1}
    listing = ana.get("/inbox/notifications").text
    assert listing.count('data-testid="notification"') == 1
    assert f"/inbox/notifications/{second}/read" in listing
    # Without JavaScript the form goes back to the inbox.
    plain = ana.post(f"/inbox/notifications/{second}/read", follow_redirects=False)
    assert plain.status_code == 303
    assert ana.get("/inbox/notifications/count").json() == {"unread": 0}


def test_collapsed_messages_read_as_a_count_in_each_language(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        cid = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW).id
        s.add(
            Notification(
                workspace_id=shop.workspace_id,
                user_id=shop.owner_id,
                kind="message",
                conversation_id=cid,
                text="¿Siguen abiertos?",
                message_count=3,
            )
        )
    assert "3 new messages" in owner_web.get("/inbox/notifications").text
    owner_web.post("/me/language", {"language": "es"})
    listing = owner_web.get("/inbox/notifications").text
    assert "3 mensajes nuevos" in listing and "Marcar como leída" in listing


def test_the_profile_keeps_each_agents_notification_choices(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    ana = login(TestClient(owner_web.http.app), shop.ana_email)  # type: ignore[attr-defined]
    page = ana.get("/settings/profile").text
    assert page.count('name="on"') == 6 and page.count("checked") >= 6
    saved = ana.post("/settings/profile/notifications", {"on": ["assigned.app", "message.browser"]})
    assert saved.status_code == 200
    assert "Your notification choices were saved." in saved.text
    with db.read(unscoped="test") as s:
        user = s.get(User, shop.ana_id)
        assert user is not None
        assert user.notification_prefs["assigned.app"] is True
        assert user.notification_prefs["mention.app"] is False
    # Assignment still reaches her list; a mention no longer does.
    cids = _assign_two_to_ana(owner_web, shop, db)
    owner_web.post(f"/inbox/c/{cids[0]}/note", {"body": "@ana mira esto"}, headers=SCRIPT)
    with db.read(unscoped="test") as s:
        kinds = s.scalars(select(Notification.kind).where(Notification.user_id == shop.ana_id))
        assert sorted(kinds) == ["assigned", "assigned"]


def _availability(web: WebClient, user_id: int) -> str:
    """What the inbox's agent list says of `user_id`, as `web`'s person sees it."""
    found = re.search(
        rf'data-presence-user="{user_id}" data-presence="(\w+)" data-testid="agent"',
        web.get("/inbox").text,
    )
    assert found, "no such agent in the list"
    return found.group(1)


def test_signing_in_puts_a_person_online_until_they_choose(
    owner_web: WebClient, shop: Shop
) -> None:
    app = owner_web.http.app  # type: ignore[attr-defined]
    assert _availability(owner_web, shop.ana_id) == "offline"
    ana = login(TestClient(app), shop.ana_email)
    assert 'class="dot dot-online" aria-hidden="true"></span>Ana Pérez' in ana.get("/inbox").text
    assert _availability(owner_web, shop.ana_id) == "online"
    ana.post("/logout")
    assert _availability(owner_web, shop.ana_id) == "offline"

    # Once she chooses, signing in and out leave her choice as it is.
    for choice in ("away", "offline"):
        ana = login(TestClient(app), shop.ana_email)
        ana.post("/me/availability", {"availability": choice})
        ana.post("/logout")
        ana = login(TestClient(app), shop.ana_email)
        assert _availability(owner_web, shop.ana_id) == choice
        ana.post("/logout")


def test_opening_the_inbox_brings_a_signed_in_person_back_online(
    owner_web: WebClient, shop: Shop
) -> None:
    app = owner_web.http.app  # type: ignore[attr-defined]
    laptop = login(TestClient(app), shop.ana_email)
    phone = login(TestClient(app), shop.ana_email)
    phone.post("/logout")  # signing out of the phone says she left…
    assert _availability(owner_web, shop.ana_id) == "offline"
    laptop.get("/inbox")  # …until she uses the inbox on her laptop
    assert _availability(owner_web, shop.ana_id) == "online"


@pytest.fixture
def server(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> LiveServer:
    return live_server_factory(create_app(settings, db, run_workers=False)).start()


@pytest.fixture
def streams() -> Iterator[list[httpx.Client]]:
    clients: list[httpx.Client] = []
    yield clients
    for c in clients:
        c.close()


def test_availability_and_reads_reach_browsers_live(
    server: LiveServer,
    shop: Shop,
    db: Database,
    streams: list[httpx.Client],
) -> None:
    owner_stream, owner_cm = _open(server, shop.owner_email, streams)
    ana_stream, ana_cm = _open(server, shop.ana_email, streams)
    try:
        beto = WebClient(httpx.Client(base_url=server.url, timeout=20))
        streams.append(beto.http)
        assert beto.login(shop.beto_email, PASSWORD).status_code == 200
        assert beto.post("/me/availability", {"availability": "away"}).status_code == 303
        # Colleagues see Beto arrive (signing in puts him online), then step away.
        for stream in (owner_stream, ana_stream):
            seen: list[str] = []
            while seen[-1:] != ["away"]:
                event = stream.next_event()
                if event["kind"] == "presence.changed" and event["data"]["user_id"] == shop.beto_id:
                    seen.append(event["data"]["availability"])
            assert seen == ["online", "away"]
        with db.read(unscoped="test") as s:
            user = s.get(User, shop.beto_id)
            assert user is not None and user.availability == "away"

        # Ana reads her notifications in one tab: her other tabs' counters follow.
        with db.unit_of_work(unscoped="test") as s:
            cid = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW).id
        owner = WebClient(httpx.Client(base_url=server.url, timeout=20))
        streams.append(owner.http)
        assert owner.login(shop.owner_email, PASSWORD).status_code == 200
        owner.post(
            f"/inbox/c/{cid}/assign",
            {"assignee_id": shop.ana_id, "expected_assignee": "none"},
            headers=SCRIPT,
        )
        created = next(
            e for e in iter(ana_stream.next_event, None) if e["kind"] == "notification.created"
        )
        assert created["data"]["unread"] == 1 and created["data"]["notification_kind"] == "assigned"
        ana = WebClient(httpx.Client(base_url=server.url, timeout=20))
        streams.append(ana.http)
        assert ana.login(shop.ana_email, PASSWORD).status_code == 200
        ana.post("/inbox/notifications/read", headers=SCRIPT)
        read = next(
            e for e in iter(ana_stream.next_event, None) if e["kind"] == "notification.read"
        )
        assert read["data"]["unread"] == 0
    finally:
        owner_cm.__exit__(None, None, None)
        ana_cm.__exit__(None, None, None)
