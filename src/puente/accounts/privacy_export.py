"""Export of everything Puente holds about one contact, as a zip (JSON and media files)."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, require
from puente.accounts.permissions import Perm
from puente.accounts.privacy import media_path
from puente.contacts.models import (
    ConsentEvent,
    Contact,
    ContactConsent,
    ContactIdentity,
    ContactTag,
    Tag,
)
from puente.contacts.schemas import ContactOut
from puente.contacts.service import access_contact
from puente.conversations.models import Conversation, Media, Message, Note
from puente.conversations.schemas import ConversationOut, MessageOut


@dataclass
class ExportCounts:
    conversations: int = 0
    messages: int = 0
    media_files: int = 0
    notes: int = 0
    consent_events: int = 0


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _contact_json(session: Session, contact: Contact) -> dict[str, Any]:
    tags = session.scalars(
        select(Tag.name)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact.id)
        .order_by(Tag.name)
    ).all()
    identities = session.scalars(
        select(ContactIdentity)
        .where(ContactIdentity.contact_id == contact.id)
        .order_by(ContactIdentity.id)
    ).all()
    body = ContactOut.of(contact, list(tags)).model_dump(mode="json")
    body["legal_hold"] = contact.legal_hold
    body["identities"] = [
        {
            "channel_id": i.channel_id,
            "wa_id": i.wa_id,
            "bsuid": i.bsuid,
            "parent_bsuid": i.parent_bsuid,
            "username": i.username,
            "in_business_app": i.in_business_app,
        }
        for i in identities
    ]
    return body


def _consent_json(session: Session, contact_id: int) -> dict[str, Any]:
    current = session.scalars(
        select(ContactConsent).where(ContactConsent.contact_id == contact_id)
    ).all()
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.contact_id == contact_id)
        .order_by(ConsentEvent.at, ConsentEvent.id)
    ).all()
    return {
        "current": [
            {"scope": c.scope, "state": c.state, "since": _iso(c.since), "source": c.source}
            for c in current
        ],
        "events": [
            {
                "kind": e.kind,
                "scope": e.scope,
                "source": e.source,
                "by": e.by_label,
                "note": e.note,
                "message_id": e.message_id,
                "at": _iso(e.at),
            }
            for e in events
        ],
    }


def do_export_contact(
    session: Session,
    actor: Actor | str,
    workspace_id: int,
    contact_id: int,
    media_dir: Path,
    out: IO[bytes],
) -> ExportCounts:
    """Write a zip of everything about one contact to `out`: contact.json,
    conversations.json, messages.json (the API's message shape), consent.json, notes.json
    when there are notes, media.json and the stored media files under media/. Audited."""
    if isinstance(actor, Actor):
        require(actor, Perm.EXPORT)
    contact = access_contact(session, workspace_id, contact_id)
    counts = ExportCounts()
    conversations = session.scalars(
        select(Conversation).where(Conversation.contact_id == contact.id).order_by(Conversation.id)
    ).all()
    conversation_ids = [c.id for c in conversations]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("contact.json", _dump(_contact_json(session, contact)))
        zf.writestr(
            "conversations.json",
            _dump([ConversationOut.of(c).model_dump(mode="json") for c in conversations]),
        )
        counts.conversations = len(conversations)
        messages = [
            MessageOut.of(m).model_dump(mode="json")
            for m in session.scalars(
                select(Message)
                .where(Message.contact_id == contact.id)
                .order_by(Message.timestamp, Message.id)
                .execution_options(yield_per=500)
            )
        ]
        counts.messages = len(messages)
        zf.writestr("messages.json", _dump(messages))
        consent = _consent_json(session, contact.id)
        counts.consent_events = len(consent["events"])
        zf.writestr("consent.json", _dump(consent))
        notes = (
            session.scalars(
                select(Note)
                .where(Note.conversation_id.in_(conversation_ids))
                .order_by(Note.created_at, Note.id)
            ).all()
            if conversation_ids
            else []
        )
        if notes:
            zf.writestr(
                "notes.json",
                _dump(
                    [
                        {
                            "conversation_id": n.conversation_id,
                            "author_id": n.author_id,
                            "body": n.body,
                            "created_at": _iso(n.created_at),
                        }
                        for n in notes
                    ]
                ),
            )
            counts.notes = len(notes)
        counts.media_files = _export_media(session, zf, contact.id, media_dir)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=Action.CONTACT_EXPORTED,
        target=f"contact {contact.id}",
        details=asdict(counts),
    )
    return counts


def _export_media(session: Session, zf: zipfile.ZipFile, contact_id: int, media_dir: Path) -> int:
    rows = session.scalars(
        select(Media)
        .join(Message, Media.message_id == Message.id)
        .where(Message.contact_id == contact_id)
        .order_by(Media.id)
    ).all()
    listing = []
    written: set[str] = set()
    for m in rows:
        name = None
        if m.sha256 and m.state == "stored" and media_path(media_dir, m.sha256).is_file():
            name = f"media/{m.sha256}"
            if name not in written:
                zf.write(media_path(media_dir, m.sha256), name)
                written.add(name)
        listing.append(
            {
                "message_id": m.message_id,
                "mime_type": m.mime_type,
                "filename": m.filename,
                "sha256": m.sha256,
                "file_size": m.file_size,
                "state": m.state,
                "file": name,
            }
        )
    zf.writestr("media.json", _dump(listing))
    return len(written)
