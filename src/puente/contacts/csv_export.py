"""Exporting the contacts directory (optionally filtered) as a CSV file that opens in a
spreadsheet and can be imported back. Every export is audited: it is personal data
leaving Puente."""

from __future__ import annotations

import csv
import io
from typing import IO, Any

from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.gate import Actor, require
from puente.accounts.permissions import Perm
from puente.contacts.directory import DirectoryFilter, consents_of, iter_directory
from puente.contacts.models import Contact
from puente.contacts.service import tags_of

EXPORTED = "contacts.exported"
COLUMNS = (
    "phone",
    "name",
    "tags",
    "wa_id",
    "profile_name",
    "business_app_name",
    "sources",
    "consent",
    "created_at",
)
# Spreadsheets run cells starting with these as formulas ("CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    # "+5215512345678" is a phone number, not a formula: keep it importable as written.
    return text[1:].replace(" ", "").isdigit() and text[0] in "+-"


def _field_keys(session: Session, workspace_id: int, f: DirectoryFilter) -> list[str]:
    keys: dict[str, None] = {}
    for chunk in iter_directory(session, workspace_id, f):
        for contact in chunk:
            keys.update(dict.fromkeys(contact.custom_fields or {}))
    return sorted(keys)


def write_contacts_csv(
    session: Session, workspace_id: int, f: DirectoryFilter, out: IO[bytes]
) -> int:
    """Write the matching contacts (oldest first) to `out` as UTF-8 CSV with a BOM (so
    spreadsheets read accents right). Returns how many contacts were written."""
    keys = _field_keys(session, workspace_id, f)
    reserved = set(COLUMNS)
    header = [*COLUMNS, *(k for k in keys if k not in reserved)]
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(header)
    count = 0
    for chunk in iter_directory(session, workspace_id, f):
        ids = [c.id for c in chunk]
        tags, consents = tags_of(session, ids), consents_of(session, ids)
        for contact in chunk:
            writer.writerow([_cell(v) for v in _row(contact, tags[contact.id], consents, header)])
        count += len(chunk)
        for contact in chunk:
            session.expunge(contact)  # keep memory flat on large directories
    text.flush()
    text.detach()
    return count


def _row(
    contact: Contact, tags: list[str], consents: dict[int, str], header: list[str]
) -> list[Any]:
    fixed = {
        "phone": contact.phone_e164,
        "name": contact.name,
        "tags": ", ".join(tags),
        "wa_id": contact.wa_id,
        "profile_name": contact.profile_name,
        "business_app_name": contact.business_app_name,
        "sources": ", ".join(contact.sources or []),
        "consent": consents.get(contact.id, ""),
        "created_at": contact.created_at.isoformat(timespec="seconds"),
    }
    fields = contact.custom_fields or {}
    return [fixed[h] if h in fixed else fields.get(h, "") for h in header]


def do_export_contacts_csv(
    session: Session,
    actor: Actor,
    workspace_id: int,
    f: DirectoryFilter,
    out: IO[bytes],
    *,
    ip: str | None = None,
) -> int:
    """`write_contacts_csv` for an actor holding data.export, audited with the count and
    which filters were used (not the search text, which may be a person's name)."""
    require(actor, Perm.EXPORT)
    count = write_contacts_csv(session, workspace_id, f, out)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=EXPORTED,
        target="contacts",
        details={
            "count": count,
            "search": bool(f.q),
            "tag": f.tag,
            "source": f.source,
            "consent": f.consent,
        },
        ip=ip,
    )
    return count
