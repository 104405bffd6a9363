"""Importing contacts from a CSV file (phone, name, tags and any custom columns), with a
report for every row: created, updated (the number was already a contact), or rejected
with its reason (invalid phone, duplicate of an earlier line...). Nothing is dropped
silently. Used by the /contacts/import page and `puente contacts import`."""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.contacts.models import Contact, ContactSource, ContactTag, Tag
from puente.contacts.service import MAX_TAG_LENGTH, tags_of
from puente.db.bulk import insert_ignore
from puente.errors import InvalidInput
from puente.events import ContactsImported, publish
from puente.outbound.broadcasts.audience import (
    NAME_COLUMNS,
    PHONE_COLUMNS,
    normalize_phone,
    person_key,
)
from puente.outbound.broadcasts.audience import wa_id_variants as all_spellings

TAG_COLUMNS = ("tags", "tag", "etiquetas", "etiqueta")
MAX_ROWS = 100_000
MAX_FIELD_KEY = 100


def field_key(header: str) -> str:
    """A custom field's key from its column header, in one Unicode form (NFC): a
    broadcast's `{custom.Dirección}` typed in a browser then finds the spreadsheet's."""
    return unicodedata.normalize("NFC", header.strip())[:MAX_FIELD_KEY]


MAX_FIELD_VALUE = 500
MAX_NAME = 200
BATCH = 500
_TAG_SPLIT = re.compile(r"[;,|]")


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REJECTED = "rejected"


class Reason(enum.StrEnum):
    INVALID_PHONE = "invalid_phone"
    NO_PHONE = "no_phone"
    DUPLICATE = "duplicate"  # the same number (in any spelling) on an earlier line
    BAD_TAG = "bad_tag"
    TOO_LONG = "too_long"  # a name or a value longer than Puente keeps
    TOO_MANY_ROWS = "too_many_rows"
    EXISTS = "exists"  # updated: the number was a contact already


@dataclass
class ImportRow:
    line: int
    phone: str  # as written
    e164: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    outcome: Outcome | None = None
    reason: Reason | None = None
    duplicate_of: int | None = None  # line number
    contact_id: int | None = None

    def reject(self, reason: Reason, duplicate_of: int | None = None) -> None:
        self.outcome, self.reason, self.duplicate_of = Outcome.REJECTED, reason, duplicate_of


@dataclass
class ImportReport:
    rows: list[ImportRow] = field(default_factory=list)
    field_columns: list[str] = field(default_factory=list)

    def count(self, outcome: Outcome | str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def pending(self) -> list[ImportRow]:
        return [r for r in self.rows if r.outcome is None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.count(Outcome.CREATED),
            "updated": self.count(Outcome.UPDATED),
            "rejected": self.count(Outcome.REJECTED),
            "rows": [
                {
                    "line": r.line,
                    "phone": r.phone,
                    "outcome": r.outcome.value if r.outcome else None,
                    "reason": r.reason.value if r.reason else None,
                    "duplicate_of": r.duplicate_of,
                    "contact_id": r.contact_id,
                }
                for r in self.rows
            ],
        }


def decode_upload(data: bytes) -> str:
    """The text of an uploaded CSV: UTF-8 (with or without BOM), else Windows-1252, which
    is what Excel in Spanish saves by default."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _find(headers: Sequence[str], names: Sequence[str]) -> str | None:
    for header in headers:
        if header.strip().lower() in names:
            return header
    return None


def parse_import(text: str, default_region: str | None = None) -> ImportReport:
    """Read and check every row (line numbers count the header as line 1). Rows that
    cannot be imported are marked rejected here; the rest wait for `do_import_contacts`."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InvalidInput("the file is empty", details=[{"field": "file"}])
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    phone_col = _find(headers, PHONE_COLUMNS)
    if phone_col is None:
        raise InvalidInput(
            "the CSV needs a header row with a phone column (phone, telefono, numero or wa_id)",
            details=[
                {"field": "file", "message": f"columns found: {', '.join(headers) or 'none'}"}
            ],
        )
    name_col = _find(headers, NAME_COLUMNS)
    tags_col = _find(headers, TAG_COLUMNS)
    field_cols = [h for h in headers if h not in (phone_col, name_col, tags_col) and h.strip()]
    report = ImportReport(field_columns=[field_key(h) for h in field_cols])
    seen: dict[str, int] = {}
    for index, record in enumerate(reader):
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in record.items() if isinstance(v, str)}
        row = ImportRow(line=line, phone=values.get(phone_col, ""))
        if index >= MAX_ROWS:
            row.reject(Reason.TOO_MANY_ROWS)
            report.rows.append(row)
            break
        if not row.phone:
            if any(values.values()):
                row.reject(Reason.NO_PHONE)
                report.rows.append(row)
            continue  # a blank line is not a row
        report.rows.append(row)
        _read_row(row, values, name_col, tags_col, field_cols, default_region, seen)
    return report


def _read_row(
    row: ImportRow,
    values: dict[str, str],
    name_col: str | None,
    tags_col: str | None,
    field_cols: list[str],
    default_region: str | None,
    seen: dict[str, int],
) -> None:
    row.e164 = normalize_phone(row.phone, default_region)
    if row.e164 is None:
        row.reject(Reason.INVALID_PHONE)
        return
    key = person_key(row.e164)
    if key in seen:
        row.reject(Reason.DUPLICATE, duplicate_of=seen[key])
        return
    seen[key] = row.line
    row.name = (values.get(name_col, "") if name_col else "") or None
    tags = [t.strip() for t in _TAG_SPLIT.split(values.get(tags_col, ""))] if tags_col else []
    row.tags = list(dict.fromkeys(t for t in tags if t))
    row.fields = {field_key(h): values[h] for h in field_cols if values.get(h)}
    if any(len(t) > MAX_TAG_LENGTH or not t.isprintable() for t in row.tags):
        row.reject(Reason.BAD_TAG)
    elif (row.name and len(row.name) > MAX_NAME) or any(
        len(v) > MAX_FIELD_VALUE for v in row.fields.values()
    ):
        row.reject(Reason.TOO_LONG)


ProgressFn = Callable[[int], None]


def do_import_contacts(
    session: Session,
    workspace_id: int,
    report: ImportReport,
    *,
    on_progress: ProgressFn | None = None,
    batch: int = BATCH,
    actor: Any = None,
) -> ImportReport:
    """Create or update the contacts of the report's accepted rows, `batch` rows at a time.
    An existing contact (under any spelling of its number) gets the row's name, its
    custom fields merged in and its tags added; empty cells change nothing."""
    pending = report.pending
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        _import_batch(session, workspace_id, chunk)
        if on_progress is not None:
            on_progress(len(chunk))
    created, updated = report.count(Outcome.CREATED), report.count(Outcome.UPDATED)
    if created or updated:
        publish(
            session, ContactsImported(workspace_id=workspace_id, created=created, updated=updated)
        )
    if actor is not None:
        # One entry for the file, with counts only: the rows are personal data.
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=Action.CONTACTS_IMPORTED,
            target="contacts",
            details={"created": created, "updated": updated, "rows": len(report.rows)},
        )
    return report


def _existing(session: Session, workspace_id: int, rows: list[ImportRow]) -> dict[str, Contact]:
    """Contacts already in the workspace for these rows, by every spelling of the number."""
    spellings = {s for r in rows if r.e164 for s in all_spellings(r.e164.lstrip("+"))}
    if not spellings:
        return {}
    found = session.scalars(
        select(Contact).where(
            Contact.workspace_id == workspace_id,
            or_(
                Contact.wa_id.in_(spellings),
                Contact.phone_e164.in_([f"+{s}" for s in spellings]),
            ),
        )
    )
    by_spelling: dict[str, Contact] = {}
    for contact in sorted(found, key=lambda c: c.id, reverse=True):
        # The oldest contact wins when two spellings were stored as separate contacts.
        for value in (contact.wa_id, (contact.phone_e164 or "").lstrip("+")):
            if value:
                by_spelling[value] = contact
    return by_spelling


def find_contact_by_number(session: Session, workspace_id: int, e164: str) -> Contact | None:
    """The workspace's contact for this number under any of its spellings (Mexico's
    +521/+52, Brazil's ninth digit), the oldest if there are several."""
    found = _existing(session, workspace_id, [ImportRow(line=0, phone=e164, e164=e164)])
    spellings = all_spellings(e164.lstrip("+"))
    return next((found[s] for s in spellings if s in found), None)


def _import_batch(session: Session, workspace_id: int, rows: list[ImportRow]) -> None:
    existing = _existing(session, workspace_id, rows)
    new_contacts: list[tuple[ImportRow, Contact]] = []
    for row in rows:
        assert row.e164 is not None  # pending rows have a valid number
        contact = next(
            (existing[s] for s in all_spellings(row.e164.lstrip("+")) if s in existing), None
        )
        if contact is None:
            contact = Contact(
                workspace_id=workspace_id,
                wa_id=row.e164.lstrip("+"),
                phone_e164=row.e164,
                name=row.name,
                sources=[ContactSource.IMPORT.value],
                custom_fields=dict(row.fields),
            )
            new_contacts.append((row, contact))
            row.outcome = Outcome.CREATED
        else:
            if row.name:
                contact.name = row.name
            if row.fields:
                # Reassign so SQLAlchemy sees the JSON column change.
                contact.custom_fields = {**(contact.custom_fields or {}), **row.fields}
            row.outcome, row.reason, row.contact_id = Outcome.UPDATED, Reason.EXISTS, contact.id
    session.add_all([c for _, c in new_contacts])
    session.flush()
    for row, contact in new_contacts:
        row.contact_id = contact.id
    _tag_rows(session, workspace_id, [r for r in rows if r.tags])


def _tag_rows(session: Session, workspace_id: int, rows: list[ImportRow]) -> None:
    if not rows:
        return
    names = sorted({t for r in rows for t in r.tags})
    session.execute(
        insert_ignore(session, Tag, ["workspace_id", "name"]),
        [{"workspace_id": workspace_id, "name": n} for n in names],
    )
    found = session.execute(
        select(Tag.name, Tag.id).where(Tag.workspace_id == workspace_id, Tag.name.in_(names))
    )
    ids = {name: tag_id for name, tag_id in found.tuples()}
    contact_ids = [r.contact_id for r in rows if r.contact_id is not None]
    have = tags_of(session, contact_ids)
    links = [
        ContactTag(workspace_id=workspace_id, contact_id=r.contact_id, tag_id=ids[t])
        for r in rows
        if r.contact_id is not None
        for t in r.tags
        if t not in have.get(r.contact_id, [])
    ]
    session.add_all(links)
    session.flush()
