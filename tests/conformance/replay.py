"""Replaying stored webhook payloads (tests/conformance/payloads) through the processors."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.session import Database
from puente.ingest.processors import ChangeRef, apply_change
from puente.runtime import Runtime
from tests.factories import make_channel, make_workspace

PAYLOADS = Path(__file__).parent / "payloads"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
BUSINESS_NUMBER = "15550783881"
CUSTOMER = "16505551234"

_event_ids = itertools.count(1)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def all_payload_names() -> list[str]:
    return sorted(p.stem for p in PAYLOADS.glob("*.json"))


def changes_of(payload: dict[str, Any]) -> list[ChangeRef]:
    event_id = next(_event_ids)
    return [
        ChangeRef(
            event_id=event_id,
            waba_id=entry["id"],
            entry_time=entry.get("time"),
            field=change["field"],
            value=copy.deepcopy(change["value"]),
        )
        for entry in payload["entry"]
        for change in entry["changes"]
    ]


def replay(runtime: Runtime, *payloads: dict[str, Any] | str) -> None:
    """Apply each payload in its own unit of work, as the ingest worker would."""
    for payload in payloads:
        body = load(payload) if isinstance(payload, str) else payload
        with runtime.db.unit_of_work(unscoped="test") as session:
            for change in changes_of(body):
                apply_change(session, runtime, change)


def coexistence_channel(session: Session, workspace: Workspace) -> Channel:
    return make_channel(
        session,
        workspace,
        phone_number_id=PHONE_NUMBER_ID,
        display_phone_number=BUSINESS_NUMBER,
        waba_id=WABA_ID,
        mode=ChannelMode.COEXISTENCE,
    )


def setup_runtime(settings: Settings, db: Database, **channel_settings: Any) -> Runtime:
    """A runtime whose database holds one workspace with the coexistence channel."""
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as session:
        channel = coexistence_channel(session, make_workspace(session))
        channel.settings = dict(channel_settings)
    return runtime


def message(db: Database, wamid: str) -> Message:
    with db.read(unscoped="test") as session:
        row = session.scalar(select(Message).where(Message.wamid == wamid))
        assert row is not None, f"no message {wamid}"
        session.expunge(row)
        return row


def messages(db: Database) -> list[Message]:
    with db.read(unscoped="test") as session:
        rows = list(session.scalars(select(Message).order_by(Message.timestamp, Message.id)))
        session.expunge_all()
        return rows


def conversation_of(db: Database, wa_id: str = CUSTOMER) -> Conversation:
    with db.read(unscoped="test") as session:
        row = session.scalar(
            select(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.wa_id == wa_id)
        )
        assert row is not None, f"no conversation with {wa_id}"
        session.expunge(row)
        return row


def contact_of(db: Database, wa_id: str = CUSTOMER) -> Contact:
    with db.read(unscoped="test") as session:
        row = session.scalar(select(Contact).where(Contact.wa_id == wa_id))
        assert row is not None, f"no contact {wa_id}"
        session.expunge(row)
        return row


def channel(db: Database) -> Channel:
    with db.read(unscoped="test") as session:
        row = session.scalar(select(Channel).where(Channel.phone_number_id == PHONE_NUMBER_ID))
        assert row is not None
        session.expunge(row)
        return row
