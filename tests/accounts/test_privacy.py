"""Contact export, erasure and legal hold over the REST API, and the audit they leave."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from puente.accounts.audit import verify
from puente.accounts.models import AuditEntry, Workspace
from puente.app import create_app
from puente.config import Settings
from puente.contacts.consent import do_record_consent
from puente.contacts.models import ConsentEvent, Contact, ContactIdentity
from puente.conversations.models import Conversation, Media, Message, Note
from puente.db.session import Database
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_token,
    make_workspace,
)

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Person:
    workspace_id: int
    contact_id: int
    conversation_id: int
    phone: str
    name: str
    media_sha: str


def store_media(data_dir: Path, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    path = data_dir / "media" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return sha


def add_media(session: object, message: Message, sha: str, size: int) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    session.add(
        Media(
            workspace_id=message.workspace_id,
            channel_id=message.channel_id,
            message_id=message.id,
            meta_media_id=f"mid-{message.id}",
            mime_type="image/jpeg",
            sha256=sha,
            file_size=size,
            state="stored",
        )
    )
    session.flush()


def make_person(
    db: Database,
    settings: Settings,
    workspace: Workspace | int,
    *,
    name: str,
    photo: bytes,
    ages_days: tuple[int, ...] = (1,),
) -> Person:
    sha = store_media(settings.data_dir, photo)
    ws_id = workspace if isinstance(workspace, int) else workspace.id
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        channel = make_channel(session, ws)
        contact = make_contact(session, ws, name=name, profile_name=name.split()[0])
        session.add(
            ContactIdentity(
                workspace_id=ws.id, channel_id=channel.id, contact_id=contact.id, bsuid="US.1"
            )
        )
        conversation = make_conversation(session, channel, contact)
        first = None
        for n, age in enumerate(ages_days):
            m = make_message(
                session,
                conversation,
                timestamp=NOW - dt.timedelta(days=age),
                text=f"{name} says hello {n}",
            )
            first = first or m
        assert first is not None
        add_media(session, first, sha, len(photo))
        conversation.last_message_id = first.id
        conversation.last_message_preview = first.text
        session.add(Note(workspace_id=ws.id, conversation_id=conversation.id, body=f"VIP: {name}"))
        do_record_consent(
            session, contact=contact, kind="opt_in", scope="marketing", source="agent"
        )
        return Person(ws.id, contact.id, conversation.id, contact.phone_e164 or "", name, sha)


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, db, run_workers=False)
    with TestClient(app, base_url="http://testserver/api/v1") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens(db: Database, name: str) -> tuple[Workspace, dict[str, str]]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, name)
        made = {
            "all": make_token(session, ws),
            "read": make_token(session, ws, ["contacts:read"]),
            "write": make_token(session, ws, ["contacts:write"]),
            "privacy": make_token(session, ws, ["privacy:write"]),
        }
    return ws, made


@dataclass(frozen=True)
class Logged:
    actor: str
    target: str | None
    details: dict[str, object]
    ip: str | None


def audit_rows(db: Database, workspace_id: int | None, action: str) -> list[Logged]:
    """The audit entries of one action, oldest first."""
    with db.read(unscoped="test") as session:
        where = (
            AuditEntry.workspace_id.is_(None)
            if workspace_id is None
            else AuditEntry.workspace_id == workspace_id
        )
        query = select(AuditEntry).where(where, AuditEntry.action == action)
        return [
            Logged(e.actor, e.target, dict(e.details), e.ip)
            for e in session.scalars(query.order_by(AuditEntry.seq))
        ]


def test_export_is_a_zip_of_everything_about_the_contact(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ws, tok = tokens(db, "Export")
    ana = make_person(db, settings, ws, name="Ana Pérez", photo=b"ana-photo", ages_days=(3, 2, 1))
    make_person(db, settings, ws, name="Beto Ruiz", photo=b"beto-photo")

    response = client.get(f"/contacts/{ana.contact_id}/export", headers=bearer(tok["read"]))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f"contact-{ana.contact_id}.zip" in response.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(zf.namelist())
    assert {
        "contact.json",
        "conversations.json",
        "messages.json",
        "consent.json",
        "notes.json",
        "media.json",
        f"media/{ana.media_sha}",
    } <= names
    contact = json.loads(zf.read("contact.json"))
    assert contact["id"] == ana.contact_id and contact["name"] == "Ana Pérez"
    assert contact["identities"][0]["bsuid"] == "US.1"
    messages = json.loads(zf.read("messages.json"))
    assert [m["text"] for m in messages] == [f"Ana Pérez says hello {n}" for n in range(3)]
    # The same shape as GET /conversations/{id}/messages.
    api_page = client.get(
        f"/conversations/{ana.conversation_id}/messages", headers=bearer(tok["all"])
    )
    assert api_page.status_code == 200
    assert set(messages[0]) == set(api_page.json()["items"][0])
    assert json.loads(zf.read("consent.json"))["current"][0]["state"] == "opt_in"
    assert json.loads(zf.read("notes.json"))[0]["body"] == "VIP: Ana Pérez"
    assert zf.read(f"media/{ana.media_sha}") == b"ana-photo"
    # Nothing about the other contact.
    assert not any("Beto" in zf.read(n).decode(errors="ignore") for n in names)

    [entry] = audit_rows(db, ws.id, "contact.exported")
    assert entry.target == f"contact {ana.contact_id}"
    assert entry.details["messages"] == 3 and entry.details["media_files"] == 1
    assert entry.actor.startswith("token pnt_")


def test_export_needs_contacts_read_and_stays_in_the_workspace(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ws, tok = tokens(db, "Mine")
    other, _ = tokens(db, "Theirs")
    theirs = make_person(db, settings, other, name="Carla Díaz", photo=b"carla")

    refused = client.get(f"/contacts/{theirs.contact_id}/export", headers=bearer(tok["write"]))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"
    assert "contacts:read" in refused.json()["error"]["message"]

    hidden = client.get(f"/contacts/{theirs.contact_id}/export", headers=bearer(tok["read"]))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["message"] == f"no contact {theirs.contact_id} in this workspace"
    assert audit_rows(db, other.id, "contact.exported") == []
    assert audit_rows(db, ws.id, "contact.exported") == []


def test_erase_removes_the_contact_and_audits_without_personal_data(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ws, tok = tokens(db, "Erase")
    ana = make_person(db, settings, ws, name="Ana Pérez", photo=b"only-ana", ages_days=(2, 1))
    beto = make_person(db, settings, ws, name="Beto Ruiz", photo=b"shared-photo")
    # Ana also sent the photo Beto sent: that file must stay for Beto.
    with db.unit_of_work(unscoped="test") as session:
        message = session.scalars(
            select(Message).where(Message.contact_id == ana.contact_id).order_by(Message.id)
        ).all()[-1]
        add_media(session, message, beto.media_sha, 12)
    media_root = settings.data_dir / "media"

    erased = client.delete(f"/contacts/{ana.contact_id}", headers=bearer(tok["privacy"]))

    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "contact_id": ana.contact_id,
        "conversations": 1,
        "messages": 2,
        "media_rows": 2,
        "media_files": 1,
        "identities": 1,
        "consent_events": 1,
        "raw_events": 0,  # no webhook named her (tests/accounts/test_webhook_retention.py)
    }
    assert client.get(f"/contacts/{ana.contact_id}", headers=bearer(tok["all"])).status_code == 404
    with db.read(unscoped="test") as session:
        for model, column in (
            (Message, Message.contact_id),
            (Conversation, Conversation.contact_id),
            (ContactIdentity, ContactIdentity.contact_id),
            (ConsentEvent, ConsentEvent.contact_id),
        ):
            left = session.scalar(
                select(func.count()).select_from(model).where(column == ana.contact_id)
            )
            assert left == 0, model.__name__
        assert session.scalar(select(func.count()).select_from(Note)) == 1  # Beto's
        assert session.get(Contact, beto.contact_id) is not None
    assert not (media_root / ana.media_sha[:2] / ana.media_sha).exists()
    assert (media_root / beto.media_sha[:2] / beto.media_sha).read_bytes() == b"shared-photo"

    [entry] = audit_rows(db, ws.id, "contact.erased")
    assert entry.target == f"contact {ana.contact_id}"
    logged = json.dumps([entry.target, entry.details], ensure_ascii=False)
    for personal in ("Ana", "Pérez", ana.phone, ana.phone.lstrip("+"), "hello"):
        assert personal not in logged
    with db.read(unscoped="test") as session:
        assert verify(session).problems == []

    again = client.delete(f"/contacts/{ana.contact_id}", headers=bearer(tok["privacy"]))
    assert again.status_code == 404


def test_legal_hold_blocks_erasure_until_lifted(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ws, tok = tokens(db, "Hold")
    ana = make_person(db, settings, ws, name="Ana Pérez", photo=b"held")
    url = f"/contacts/{ana.contact_id}/legal-hold"

    no_scope = client.put(url, json={"legal_hold": True}, headers=bearer(tok["write"]))
    assert no_scope.status_code == 403
    assert "privacy:write" in no_scope.json()["error"]["message"]

    placed = client.put(url, json={"legal_hold": True}, headers=bearer(tok["privacy"]))
    assert placed.status_code == 200
    assert placed.json() == {"contact_id": ana.contact_id, "legal_hold": True}

    refused = client.delete(f"/contacts/{ana.contact_id}", headers=bearer(tok["privacy"]))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "legal_hold"
    assert "legal hold" in refused.json()["error"]["message"]
    assert client.get(f"/contacts/{ana.contact_id}", headers=bearer(tok["all"])).status_code == 200

    lifted = client.put(url, json={"legal_hold": False}, headers=bearer(tok["privacy"]))
    assert lifted.json()["legal_hold"] is False
    gone = client.delete(f"/contacts/{ana.contact_id}", headers=bearer(tok["privacy"]))
    assert gone.status_code == 200
    holds = audit_rows(db, ws.id, "contact.legal_hold")
    assert [e.details for e in holds] == [{"legal_hold": True}, {"legal_hold": False}]

    bad = client.put(url, json={"legal_hold": "maybe"}, headers=bearer(tok["privacy"]))
    assert bad.status_code == 422


def test_erase_and_hold_cannot_reach_another_workspace(
    client: TestClient, db: Database, settings: Settings
) -> None:
    _ws, tok = tokens(db, "Ours")
    other, _ = tokens(db, "Others")
    theirs = make_person(db, settings, other, name="Carla Díaz", photo=b"c")

    assert (
        client.delete(f"/contacts/{theirs.contact_id}", headers=bearer(tok["all"])).status_code
        == 404
    )
    held = client.put(
        f"/contacts/{theirs.contact_id}/legal-hold",
        json={"legal_hold": True},
        headers=bearer(tok["all"]),
    )
    assert held.status_code == 404
    with db.read(unscoped="test") as session:
        contact = session.get(Contact, theirs.contact_id)
        assert contact is not None and contact.legal_hold is False
