"""/settings/privacy: legal hold by phone number, export and erase of one contact, each
through the gate with CSRF and audited; in Spanish for Spanish speakers."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from puente.accounts.models import AuditEntry, User
from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact
from puente.db.session import Database
from tests.factories import (
    PASSWORD,
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_user,
    make_workspace,
)
from tests.webclient import WebClient

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("sqlite")

WA_ID = "5215512345678"
# The same Mexican mobile as people write it, without WhatsApp's old "1".
WRITTEN = "+52 55 1234 5678"


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def contact_id(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        for role in ("admin", "supervisor", "agent"):
            make_user(session, ws, role=role, email=f"{role}@example.com")
        channel = make_channel(session, ws)
        contact = make_contact(session, ws, wa_id=WA_ID, name="Lucía Pérez")
        conversation = make_conversation(session, channel, contact)
        make_message(session, conversation, timestamp=dt.datetime.now(dt.UTC), text="mi RFC")
        # A contact of another workspace with the same number stays out of reach.
        other = make_workspace(session, "Other")
        make_contact(session, other, wa_id=WA_ID, name="Someone else")
        return contact.id


def as_(app: FastAPI, email: str) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def actions(db: Database, action: str) -> list[tuple[str, str | None, object]]:
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.target, AuditEntry.details)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        ).all()
        return [(r.actor, r.target, r.details) for r in rows]


def held(db: Database) -> dict[str, bool]:
    with db.read(unscoped="test") as session:
        return {c.name or "": c.legal_hold for c in session.scalars(select(Contact))}


def test_admin_places_and_lifts_a_legal_hold_by_phone_number(
    app: FastAPI, db: Database, contact_id: int
) -> None:
    web = as_(app, "admin@example.com")
    page = web.get("/settings/privacy")
    assert page.status_code == 200
    assert "No contact is under legal hold." in page.text
    assert 'href="/settings/privacy"' in page.text

    placed = web.post("/settings/privacy/hold", {"phone": WRITTEN, "hold": "on"})
    assert placed.status_code == 200
    assert "The contact is under legal hold." in placed.text
    assert 'data-testid="held-+5215512345678"' in placed.text and "Lucía Pérez" in placed.text
    assert held(db) == {"Lucía Pérez": True, "Someone else": False}

    # Erasing is refused while the hold lasts, even when confirmed.
    refused = web.post("/settings/privacy/erase", {"phone": WA_ID, "confirm": "yes"})
    assert refused.status_code == 409
    assert "legal hold" in refused.text

    lifted = web.post("/settings/privacy/hold", {"phone": "+5215512345678", "hold": "off"})
    assert "The legal hold was lifted." in lifted.text
    assert "No contact is under legal hold." in lifted.text
    assert actions(db, "contact.legal_hold") == [
        ("admin@example.com", f"contact {contact_id}", {"legal_hold": True}),
        ("admin@example.com", f"contact {contact_id}", {"legal_hold": False}),
    ]


def test_export_downloads_the_contacts_zip_and_is_audited(
    app: FastAPI, db: Database, contact_id: int
) -> None:
    web = as_(app, "admin@example.com")
    response = web.post("/settings/privacy/export", {"phone": WRITTEN})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert json.loads(archive.read("contact.json"))["id"] == contact_id
    assert "mi RFC" in archive.read("messages.json").decode()
    [(actor, target, _details)] = actions(db, "contact.exported")
    assert (actor, target) == ("admin@example.com", f"contact {contact_id}")


def test_erase_needs_the_confirmation_then_removes_the_contact(
    app: FastAPI, db: Database, contact_id: int
) -> None:
    web = as_(app, "admin@example.com")
    page = web.get("/settings/privacy")
    assert 'class="card stack confirm"' in page.text  # the browser asks as well

    unconfirmed = web.post("/settings/privacy/erase", {"phone": WRITTEN})
    assert unconfirmed.status_code == 422
    assert "tick the box" in unconfirmed.text
    assert held(db) == {"Lucía Pérez": False, "Someone else": False}

    erased = web.post("/settings/privacy/erase", {"phone": WRITTEN, "confirm": "yes"})
    assert erased.status_code == 200
    assert "The contact was erased: 1 conversations, 1 messages." in erased.text
    assert held(db) == {"Someone else": False}  # the other workspace's contact is untouched
    [(actor, target, details)] = actions(db, "contact.erased")
    assert (actor, target) == ("admin@example.com", f"contact {contact_id}")
    assert "Lucía" not in json.dumps(details) and WA_ID not in json.dumps(details)

    again = web.post("/settings/privacy/erase", {"phone": WRITTEN, "confirm": "yes"})
    assert again.status_code == 404
    assert "no contact with this phone number" in again.text
    garbage = web.post("/settings/privacy/hold", {"phone": "call me", "hold": "on"})
    assert garbage.status_code == 422
    assert "not a phone number" in garbage.text


@pytest.mark.parametrize("role", ["supervisor", "agent"])
def test_roles_without_privacy_permission_are_refused(
    app: FastAPI, db: Database, contact_id: int, role: str
) -> None:
    web = as_(app, f"{role}@example.com")
    assert 'href="/settings/privacy"' not in web.get("/settings/profile").text
    assert web.get("/settings/privacy").status_code == 403
    for path, form in (
        ("/settings/privacy/hold", {"phone": WA_ID}),
        ("/settings/privacy/export", {"phone": WA_ID}),
        ("/settings/privacy/erase", {"phone": WA_ID, "confirm": "yes"}),
    ):
        assert web.post(path, form).status_code == 403, path
    assert held(db) == {"Lucía Pérez": False, "Someone else": False}
    assert actions(db, "contact.exported") == []
    assert len(actions(db, "access.denied")) == 4


def test_forged_forms_are_refused(app: FastAPI, db: Database, contact_id: int) -> None:
    web = as_(app, "admin@example.com")
    forged = web.post(
        "/settings/privacy/erase", {"phone": WA_ID, "confirm": "yes", "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert held(db)["Lucía Pérez"] is False  # still there


def test_the_page_speaks_spanish(app: FastAPI, db: Database, contact_id: int) -> None:
    with db.unit_of_work(unscoped="test") as session:
        session.execute(update(User).where(User.email == "admin@example.com").values(locale="es"))
    web = as_(app, "admin@example.com")
    page = web.get("/settings/privacy")
    assert "Retención legal" in page.text
    assert "Ningún contacto está en retención legal." in page.text
    placed = web.post("/settings/privacy/hold", {"phone": WRITTEN})
    assert "El contacto está en retención legal." in placed.text
