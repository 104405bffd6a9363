"""Merging and splitting contacts through the API: nothing is lost, inbound messages from
the absorbed number find the kept contact, a split restores every row exactly, and what
cannot be attributed any more stops it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from puente.accounts import audit
from puente.accounts.models import AuditEntry
from puente.app import create_app
from puente.config import Settings
from puente.contacts.consent import do_record_consent
from puente.contacts.merge_rows import contact_columns
from puente.contacts.models import Contact, ContactIdentity, ContactMerge
from puente.contacts.service import do_add_tags
from puente.conversations.models import ConversationEvent, Message, Note
from puente.db.base import Base
from puente.db.session import Database
from puente.ingest.worker import run_until_idle
from puente.outbound.models import Broadcast, BroadcastRecipient
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_token,
    make_workspace,
)
from tests.ingest.helpers import (
    PHONE_NUMBER_ID,
    dumps,
    envelope,
    messages_change,
    signed,
    text_message,
)

API = "/api/v1"
ANA_WA, BETO_WA = "16505550001", "16505551234"  # Beto's is the helpers' default sender
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class World:
    client: TestClient
    auth: dict[str, str]
    ana: int  # kept
    beto: int  # absorbed
    ana_conversation: int
    beto_conversation: int
    workspace_id: int


@pytest.fixture
def w(settings: Settings, db: Database) -> Iterator[World]:
    """Ana talks on a second number, Beto on the helpers' number; both are tagged "vip",
    both have marketing consent, notes and events, and Beto was in a broadcast."""
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        main = make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID)
        second = make_channel(session, ws, display_phone_number="15550002222")
        ana = make_contact(session, ws, wa_id=ANA_WA, name="Ana")
        beto = make_contact(session, ws, wa_id=BETO_WA, profile_name="Beto P.")
        ana.custom_fields = {"plan": "gold"}
        beto.custom_fields = {"plan": "silver", "email": "beto@example.com"}
        conversations = {}
        for contact, channel in ((ana, second), (beto, main)):
            session.add(
                ContactIdentity(
                    workspace_id=ws.id,
                    channel_id=channel.id,
                    contact_id=contact.id,
                    wa_id=contact.wa_id,
                    bsuid=f"US.{contact.wa_id}",
                )
            )
            conversation = make_conversation(session, channel, contact, last_activity_at=T0)
            conversations[contact.id] = conversation.id
            for n in range(3):
                make_message(session, conversation, timestamp=T0 + dt.timedelta(minutes=n))
            session.add(Note(workspace_id=ws.id, conversation_id=conversation.id, body="ojo"))
            session.add(
                ConversationEvent(
                    workspace_id=ws.id, conversation_id=conversation.id, kind="closed"
                )
            )
            do_add_tags(session, contact, ["vip", f"only-{contact.id}"])
            do_record_consent(
                session,
                contact=contact,
                kind="opt_in",
                source="agent",
                at=T0 - dt.timedelta(days=1),
            )
        do_record_consent(session, contact=beto, kind="opt_out", source="keyword", at=T0)
        broadcast = Broadcast(
            workspace_id=ws.id,
            channel_id=main.id,
            name="Promo",
            template_name="promo",
            template_language="es",
            template_category="MARKETING",
            state="done",
        )
        session.add(broadcast)
        session.flush()
        session.add(
            BroadcastRecipient(
                workspace_id=ws.id,
                broadcast_id=broadcast.id,
                contact_id=beto.id,
                phone="+" + BETO_WA,
                state="sent",
            )
        )
        token = make_token(session, ws)
        ids = (ana.id, beto.id, conversations[ana.id], conversations[beto.id], ws.id)
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        yield World(client, {"Authorization": f"Bearer {token}"}, *ids)


def _table_rows(db: Database) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table that names a contact, and of the contacts table, as plain
    tuples: equal sets mean the same rows with the same values."""
    tables = {"contacts"} | {c.table.name for c in contact_columns()}
    tables |= {"conversation_notes", "conversation_events", "consent_events"}
    tables.discard("contact_merges")
    result: dict[str, set[tuple[Any, ...]]] = {}
    with db.read(unscoped="test") as session:
        for name in sorted(tables):
            table = Base.metadata.tables[name]
            # updated_at says when a row last changed, which a merge and a split do.
            columns = [c for c in table.columns if c.name != "updated_at"]
            rows = session.execute(select(*columns)).all()
            result[name] = {tuple(str(v) for v in row) for row in rows}
    return result


def _merge(w: World, **fields: str) -> dict[str, Any]:
    response = w.client.post(
        f"{API}/contacts/{w.ana}/merge",
        json={"other_contact_id": w.beto, "fields": fields},
        headers=w.auth,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _split(w: World, merge_id: int) -> Any:
    return w.client.post(f"{API}/contacts/{w.ana}/merges/{merge_id}/split", headers=w.auth)


def _count(db: Database, model: Any, *where: Any) -> int:
    with db.read(unscoped="test") as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_merge_keeps_every_row_and_a_split_restores_them_exactly(w: World, db: Database) -> None:
    before = _table_rows(db)

    merged = _merge(w, name="keep", **{"custom.plan": "other"})

    after = _table_rows(db)
    # Nothing lost: the same number of rows everywhere but Beto's contact row, the tag
    # both had and Ana's older current consent (set aside in the merge record, back on a
    # split; the consent history keeps every event).
    sizes = {name: (len(before[name]), len(after[name])) for name in before}
    changed = {name: pair for name, pair in sizes.items() if pair[0] != pair[1]}
    assert changed == {"contacts": (2, 1), "contact_tags": (4, 3), "contact_consents": (2, 1)}
    for column in contact_columns():
        if column.table.name != "contact_merges":
            assert _count(db, column.table, column == w.beto) == 0, column
    assert _count(db, Message, Message.contact_id == w.ana) == 6
    contact = merged["contact"]
    assert contact["name"] == "Ana"
    assert contact["custom_fields"] == {"plan": "silver", "email": "beto@example.com"}
    assert sorted(contact["tags"]) == sorted(["vip", f"only-{w.ana}", f"only-{w.beto}"])
    assert merged["merge"]["conversations"] == [w.beto_conversation]
    # Beto's later opt-out is the merged contact's current consent.
    consent = w.client.get(f"{API}/contacts/{w.ana}/consent", headers=w.auth).json()
    assert consent["state"] == "opt_out"
    assert len(consent["events"]) == 3
    # The inbox filtered by the kept contact shows both conversations.
    listed = w.client.get(f"{API}/conversations?contact_id={w.ana}", headers=w.auth).json()
    assert {c["id"] for c in listed["items"]} == {w.ana_conversation, w.beto_conversation}
    assert w.client.get(f"{API}/contacts/{w.beto}", headers=w.auth).status_code == 404

    split = _split(w, merged["merge"]["id"])

    assert split.status_code == 200, split.text
    assert split.json()["restored"]["id"] == w.beto
    assert _table_rows(db) == before
    again = _split(w, merged["merge"]["id"])
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "This merge cannot be split: it was split already."


def test_inbound_from_the_absorbed_number_lands_on_the_kept_contact_and_stops_a_split(
    w: World, db: Database
) -> None:
    merge_id = _merge(w)["merge"]["id"]
    body = dumps(envelope(messages_change([text_message("wamid.AFTER", "¿Sigue en pie?")])))
    assert (
        w.client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
    )
    run_until_idle(w.client.app.state.runtime)  # type: ignore[attr-defined]

    with db.read(unscoped="test") as session:
        message = session.scalar(select(Message).where(Message.wamid == "wamid.AFTER"))
        assert message is not None
        assert (message.contact_id, message.conversation_id) == (w.ana, w.beto_conversation)
        assert session.scalar(select(func.count()).select_from(Contact)) == 1

    refused = _split(w, merge_id)

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "split_refused"
    assert "1 messages, notes or events were written in the conversations" in error["message"]
    assert _count(db, Contact) == 1


def test_consent_recorded_after_the_merge_stops_a_split(w: World, db: Database) -> None:
    merge_id = _merge(w)["merge"]["id"]
    recorded = w.client.post(
        f"{API}/contacts/{w.ana}/consent", json={"kind": "opt_in"}, headers=w.auth
    )
    assert recorded.status_code in (200, 201), recorded.text

    refused = _split(w, merge_id)

    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["reasons"] == [
        "This merge cannot be split: consent was recorded for the merged contact since the merge."
    ]


def test_a_merge_is_audited_with_its_actor(w: World, db: Database) -> None:
    merge_id = _merge(w)["merge"]["id"]
    assert _split(w, merge_id).status_code == 200
    with db.read(unscoped="test") as session:
        entries = session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.target, AuditEntry.details)
            .where(AuditEntry.action.in_(["contact.merged", "contact.split"]))
            .order_by(AuditEntry.seq)
        ).all()
        assert audit.verify(session).problems == []
    assert [(a, t) for a, _, t, _ in entries] == [
        ("contact.merged", f"contact {w.ana}"),
        ("contact.split", f"contact {w.ana}"),
    ]
    assert all(actor.startswith("token ") for _, actor, _, _ in entries)
    assert entries[0][3]["merged_contact_id"] == w.beto
    assert entries[0][3]["moved"]["conversations.contact_id"] == 1


def test_merging_into_itself_or_across_workspaces_is_refused(w: World, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        elsewhere = make_contact(session, make_workspace(session, "Other"), name="Zoe").id

    itself = w.client.post(
        f"{API}/contacts/{w.ana}/merge", json={"other_contact_id": w.ana}, headers=w.auth
    )
    across = w.client.post(
        f"{API}/contacts/{w.ana}/merge", json={"other_contact_id": elsewhere}, headers=w.auth
    )
    bad_field = w.client.post(
        f"{API}/contacts/{w.ana}/merge",
        json={"other_contact_id": w.beto, "fields": {"shoe_size": "other"}},
        headers=w.auth,
    )

    assert itself.status_code == 422
    assert itself.json()["error"]["message"] == "A contact cannot be merged into itself."
    assert across.status_code == 404
    assert across.json()["error"]["message"] == f"No contact {elsewhere} in this workspace."
    assert bad_field.status_code == 422
    assert "Unknown field shoe_size" in bad_field.json()["error"]["message"]
    assert _count(db, ContactMerge) == 0
    assert _count(db, Contact) == 3


def test_two_conversations_on_one_number_are_refused_with_the_number(
    w: World, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ana = session.get(Contact, w.ana)
        assert ana is not None
        main = session.scalar(
            select(ContactIdentity.channel_id).where(ContactIdentity.contact_id == w.beto)
        )
        from puente.channels.models import Channel

        channel = session.get(Channel, main)
        assert channel is not None
        make_conversation(session, channel, ana)

    refused = w.client.post(
        f"{API}/contacts/{w.ana}/merge", json={"other_contact_id": w.beto}, headers=w.auth
    )

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "same_number"
    assert "+15550001111" in refused.json()["error"]["message"]


def test_duplicates_are_suggested_by_number_parent_bsuid_and_email(w: World, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Contact, w.ana)
        assert ws is not None
        workspace = ws.workspace_id
        old_mx = Contact(
            workspace_id=workspace,
            wa_id="5215512345678",
            phone_e164="+5215512345678",
            sources=["whatsapp"],
            custom_fields={},
        )
        new_mx = Contact(
            workspace_id=workspace,
            wa_id=None,
            phone_e164="+525512345678",
            sources=["import"],
            custom_fields={"email": " Beto@Example.com"},
        )
        session.add_all([old_mx, new_mx])
        session.flush()
        identity = session.scalar(
            select(ContactIdentity).where(ContactIdentity.contact_id == w.beto)
        )
        assert identity is not None
        identity.parent_bsuid = "US.PARENT.1"
        main = identity.channel_id
        session.add(
            ContactIdentity(
                workspace_id=workspace,
                channel_id=main,
                contact_id=old_mx.id,
                parent_bsuid="US.PARENT.1",
            )
        )
        ids = (old_mx.id, new_mx.id)

    found = w.client.get(f"{API}/contacts/duplicates", headers=w.auth)

    assert found.status_code == 200, found.text
    groups = {
        (g["reason"], g["key"]): [c["id"] for c in g["contacts"]] for g in found.json()["items"]
    }
    assert groups == {
        ("same_number", "+525512345678"): [ids[0], ids[1]],
        ("same_email", "beto@example.com"): [w.beto, ids[1]],
        ("same_parent_bsuid", "US.PARENT.1"): [w.beto, ids[0]],
    }
