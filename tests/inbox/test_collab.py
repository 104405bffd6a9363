"""Working together on a conversation: assignment and transfer, notes with mentions,
close with a closing note, reopen, snooze, labels, the bot switch, unread markers,
and two agents acting at once."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.conversations.models import Conversation, ConversationEvent, Notification
from puente.db.session import Database
from tests.factories import make_team
from tests.inbox.conftest import NOW, Shop, login
from tests.inbox.helpers import add_conversation
from tests.webclient import WebClient

SCRIPT = {"x-inbox": "1"}


def _new(db: Database, shop: Shop, **kw: object) -> int:
    with db.unit_of_work(unscoped="test") as s:
        return add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, **kw).id  # type: ignore[arg-type]


def _conversation(db: Database, cid: int) -> Conversation:
    with db.read(unscoped="test") as s:
        c = s.get(Conversation, cid)
        assert c is not None
        s.expunge(c)
        return c


def _notifications(db: Database, user_id: int) -> list[tuple[str, str]]:
    with db.read(unscoped="test") as s:
        return [
            (n.kind, n.text)
            for n in s.scalars(select(Notification).where(Notification.user_id == user_id))
        ]


def test_assign_transfer_and_unassign(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _new(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        ws = s.get(Workspace, shop.workspace_id)
        assert ws is not None
        team_id = make_team(s, ws, "Soporte", []).id
    owner_web.get(f"/inbox/c/{cid}")
    ok = owner_web.post(
        f"/inbox/c/{cid}/assign",
        {"assignee_id": shop.ana_id, "expected_assignee": "none"},
        headers=SCRIPT,
    )
    assert ok.status_code == 204
    assert _conversation(db, cid).assignee_id == shop.ana_id
    assert _notifications(db, shop.ana_id) == [("assigned", f"Olga Dueña → #{cid}")]
    owner_web.post(
        f"/inbox/c/{cid}/assign",
        {"assignee_id": shop.beto_id, "team_id": team_id, "expected_assignee": shop.ana_id},
        headers=SCRIPT,
    )
    moved = _conversation(db, cid)
    assert (moved.assignee_id, moved.team_id) == (shop.beto_id, team_id)
    owner_web.post(
        f"/inbox/c/{cid}/assign",
        {"assignee_id": "", "expected_assignee": shop.beto_id},
        headers=SCRIPT,
    )
    assert _conversation(db, cid).assignee_id is None
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert "Olga Dueña assigned this to Ana Pérez" in page
    assert "Olga Dueña assigned this to Beto Ruiz" in page and "(Soporte)" in page
    assert "Olga Dueña unassigned this conversation" in page


def test_two_agents_assigning_at_once_get_a_clear_answer(
    client: TestClient, shop: Shop, db: Database
) -> None:
    cid = _new(db, shop)
    ana = login(client, shop.ana_email)
    ana.get(f"/inbox/c/{cid}")
    # Both saw it unassigned; Ana takes it first.
    assert (
        ana.post(
            f"/inbox/c/{cid}/assign",
            {"assignee_id": "me", "expected_assignee": "none"},
            headers=SCRIPT,
        ).status_code
        == 204
    )
    olga = login(TestClient(client.app), shop.owner_email)
    olga.get("/inbox")
    late = olga.post(
        f"/inbox/c/{cid}/assign", {"assignee_id": "me", "expected_assignee": "none"}, headers=SCRIPT
    )
    assert late.status_code == 409
    assert "now assigned to Ana Pérez" in late.text
    assert _conversation(db, cid).assignee_id == shop.ana_id


def test_close_with_a_required_closing_note_then_reopen(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _new(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        ws = s.get(Workspace, shop.workspace_id)
        assert ws is not None
        ws.settings = {**(ws.settings or {}), "closing_note_required": True}
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert "Closing note (required)" in page
    refused = owner_web.post(
        f"/inbox/c/{cid}/close", {"note": " ", "expected_status": "open"}, headers=SCRIPT
    )
    assert refused.status_code == 422 and "closing note is required" in refused.text
    assert (
        owner_web.post(
            f"/inbox/c/{cid}/close",
            {"note": "Pedido entregado", "expected_status": "open"},
            headers=SCRIPT,
        ).status_code
        == 204
    )
    assert _conversation(db, cid).status == "resolved"
    twice = owner_web.post(
        f"/inbox/c/{cid}/close", {"note": "otra", "expected_status": "open"}, headers=SCRIPT
    )
    assert twice.status_code == 409 and "now resolved" in twice.text
    assert (
        owner_web.post(
            f"/inbox/c/{cid}/reopen", {"expected_status": "resolved"}, headers=SCRIPT
        ).status_code
        == 204
    )
    assert _conversation(db, cid).status == "open"
    timeline = owner_web.get(f"/inbox/c/{cid}").text
    assert "closed the conversation" in timeline and "Pedido entregado" in timeline
    assert "reopened the conversation" in timeline


def test_snooze_until_a_preset_or_a_time_in_the_future(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _new(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    past = owner_web.post(
        f"/inbox/c/{cid}/snooze", {"preset": "", "until": "2020-01-01T10:00"}, headers=SCRIPT
    )
    assert past.status_code == 422 and "in the future" in past.text
    assert (
        owner_web.post(f"/inbox/c/{cid}/snooze", {"preset": "1h"}, headers=SCRIPT).status_code
        == 204
    )
    snoozed = _conversation(db, cid)
    assert snoozed.status == "snoozed" and snoozed.snoozed_until is not None
    left = snoozed.snoozed_until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < left <= dt.timedelta(hours=1)
    assert "Snoozed" in owner_web.get("/inbox?status=snoozed").text

    from puente.conversations.collab import wake_snoozed

    with db.unit_of_work(unscoped="test") as s:
        assert wake_snoozed(s, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)) == 1
    assert _conversation(db, cid).status == "open"


def test_notes_mention_agents_who_get_notified(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _new(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    empty = owner_web.post(f"/inbox/c/{cid}/note", {"body": "  "}, headers=SCRIPT)
    assert empty.status_code == 422 and "Write the note first." in empty.text
    response = owner_web.post(
        f"/inbox/c/{cid}/note",
        {"body": "@ana revisa el pago, y @Beto también. @nadie no existe"},
        headers=SCRIPT,
    )
    assert response.status_code == 200 and 'data-testid="note"' in response.text
    assert [k for k, _ in _notifications(db, shop.ana_id)] == ["mention"]
    assert [k for k, _ in _notifications(db, shop.beto_id)] == ["mention"]
    assert _notifications(db, shop.owner_id) == []
    assert "Private note" in owner_web.get(f"/inbox/c/{cid}").text
    ana = login(TestClient(owner_web.http.app), shop.ana_email)  # type: ignore[attr-defined]
    listing = ana.get("/inbox/notifications").text
    assert "You were mentioned" in listing and "revisa el pago" in listing
    # Opening the conversation reads its notifications.
    ana.get(f"/inbox/c/{cid}")
    assert "Nothing new." in ana.get("/inbox/notifications").text


def test_labels_bot_and_unread(owner_web: WebClient, shop: Shop, db: Database) -> None:
    cid = _new(db, shop)
    owner_web.get(f"/inbox/c/{cid}")
    owner_web.post(f"/inbox/c/{cid}/labels", {"label": "  Pago  Pendiente "}, headers=SCRIPT)
    owner_web.post(f"/inbox/c/{cid}/labels", {"label": "vip"}, headers=SCRIPT)
    assert _conversation(db, cid).labels == ["pago pendiente", "vip"]
    owner_web.post(f"/inbox/c/{cid}/labels/remove", {"label": "vip"}, headers=SCRIPT)
    assert _conversation(db, cid).labels == ["pago pendiente"]
    assert (
        owner_web.post(f"/inbox/c/{cid}/labels", {"label": ""}, headers=SCRIPT).status_code == 422
    )

    owner_web.post(f"/inbox/c/{cid}/bot", {"paused": "1"}, headers=SCRIPT)
    assert _conversation(db, cid).bot_paused is True
    assert "Resume the bot" in owner_web.get(f"/inbox/c/{cid}/panel").text
    owner_web.post(f"/inbox/c/{cid}/bot", {"paused": "0"}, headers=SCRIPT)
    assert _conversation(db, cid).bot_paused is False

    response = owner_web.post(f"/inbox/c/{cid}/unread", {}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    assert 'data-testid="unread"' in owner_web.get("/inbox").text
    with db.read(unscoped="test") as s:
        kinds = list(s.scalars(select(ConversationEvent.kind).order_by(ConversationEvent.id)))
    assert kinds == ["label_added", "label_added", "label_removed", "bot_paused", "bot_resumed"]


def test_contact_panel_shows_profile_sources_and_edits_fields(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = _new(db, shop)
    with db.unit_of_work(unscoped="test") as s:
        c = s.get(Conversation, cid)
        assert c is not None
        from puente.contacts.models import Contact

        contact = s.get(Contact, c.contact_id)
        assert contact is not None
        contact.sources = ["whatsapp", "business_app"]
        contact.business_app_name = "Lucy (clienta)"
        add_conversation(s, shop.workspace_id, shop.channel_id, "Otra", at=NOW)
    page = owner_web.get(f"/inbox/c/{cid}").text
    panel = page[page.index('data-testid="contact-panel"') :]
    assert "WhatsApp Business App" in panel and "Lucy (clienta)" in panel
    owner_web.post(
        f"/inbox/c/{cid}/contact", {"new_key": "ciudad", "new_value": "Puebla"}, headers=SCRIPT
    )
    assert 'name="field.ciudad" value="Puebla"' in owner_web.get(f"/inbox/c/{cid}/panel").text
    owner_web.post(f"/inbox/c/{cid}/contact", {"field.ciudad": ""}, headers=SCRIPT)
    assert "field.ciudad" not in owner_web.get(f"/inbox/c/{cid}/panel").text
