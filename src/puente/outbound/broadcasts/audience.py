"""Who a broadcast goes to: a segment (`puente.contacts.segments`), tags, a list of
contacts or an uploaded CSV.

Audiences resolve with set-based SQL. A CSV is read row by row into a report that names
every row it could not use (bad number, duplicate, missing value), so nothing is dropped
silently; its usable rows become contacts (created in bulk when new).
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from puente.contacts.models import Contact, ContactSource
from puente.contacts.phones import to_e164
from puente.contacts.segments import access_segment, filter_of, has_tag, workspace_condition
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.errors import InvalidInput

AUDIENCE_KINDS = ("segment", "tags", "contacts", "csv", "all")
PHONE_COLUMNS = ("phone", "telefono", "teléfono", "numero", "número", "number", "wa_id", "whatsapp")
NAME_COLUMNS = ("name", "nombre")
MAX_CSV_ROWS = 200_000
_MX_WHATSAPP = re.compile(r"^\+?521[0-9]{10}$")


# -- phone numbers ---------------------------------------------------------------------


def normalize_phone(raw: str, default_region: str | None = None) -> str | None:
    """E.164 for a number written any way, or None. WhatsApp still writes Mexican mobiles
    with the "1" the numbering plan dropped in 2019 (+521...), and numbering-plan
    libraries call those invalid; they are accepted as written, since that is the wa_id."""
    e164 = to_e164(raw, default_region)
    if e164 is not None:
        return e164
    compact = re.sub(r"[\s().-]", "", raw.strip())
    if _MX_WHATSAPP.match(compact):
        return "+" + compact.lstrip("+")
    return None


def person_key(e164: str) -> str:
    """One key for the forms of a number that reach the same person: Mexico's "521..."
    and "52...", Brazil's mobile with and without the ninth digit."""
    digits = e164.lstrip("+")
    if digits.startswith("521") and len(digits) == 13:
        return "52" + digits[3:]
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        return digits[:4] + "9" + digits[4:]
    return digits


def wa_id_variants(wa_id: str) -> list[str]:
    """The wa_ids a number may be stored under (see `person_key`)."""
    key = person_key(wa_id)
    variants = {wa_id.lstrip("+"), key}
    if key.startswith("52") and len(key) == 12:
        variants.add("521" + key[2:])
    if key.startswith("55") and len(key) == 13 and key[4] == "9":
        variants.add(key[:4] + key[5:])
    return sorted(variants)


# -- the CSV ---------------------------------------------------------------------------


@dataclass
class CsvRow:
    line: int
    e164: str
    name: str | None
    columns: dict[str, str]
    contact_id: int | None = None


@dataclass
class CsvResult:
    rows: list[CsvRow] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, problem: str, value: str | None = None) -> None:
        entry: dict[str, Any] = {"line": line, "problem": problem}
        if value is not None:
            entry["value"] = value
        self.problems.append(entry)


def _column(headers: Sequence[str], names: Iterable[str]) -> str | None:
    wanted = set(names)
    for header in headers:
        if header.strip().lower() in wanted:
            return header
    return None


def parse_csv(text: str, default_region: str | None = None) -> CsvResult:
    """Read an audience CSV (a header row with a phone column; any other columns become
    `{csv.<column>}` values). Line numbers count the header as line 1."""
    text = text.lstrip("\ufeff")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    phone_col = _column(headers, PHONE_COLUMNS)
    if phone_col is None:
        raise InvalidInput(
            "the CSV needs a header row with a phone column (phone, telefono, numero or wa_id)",
            details=[{"field": "csv", "message": f"columns found: {', '.join(headers) or 'none'}"}],
        )
    name_col = _column(headers, NAME_COLUMNS)
    result = CsvResult()
    seen: dict[str, int] = {}
    for index, record in enumerate(reader):
        line = reader.line_num if reader.line_num else index + 2
        if index >= MAX_CSV_ROWS:
            result.reject(line, f"the CSV has more than {MAX_CSV_ROWS} rows; split it")
            break
        raw = (record.get(phone_col) or "").strip()
        if not raw:
            if any((v or "").strip() for k, v in record.items() if k is not None):
                result.reject(line, "no phone number")
            continue  # a blank line
        e164 = normalize_phone(raw, default_region)
        if e164 is None:
            result.reject(line, "not a valid phone number", raw)
            continue
        key = person_key(e164)
        if key in seen:
            result.reject(line, f"duplicate of line {seen[key]}", raw)
            continue
        seen[key] = line
        columns = {
            unicodedata.normalize("NFC", k.strip().lower()): (v or "").strip()
            for k, v in record.items()
            if k is not None and isinstance(v, str)
        }
        name = (record.get(name_col) or "").strip() if name_col else ""
        result.rows.append(CsvRow(line=line, e164=e164, name=name or None, columns=columns))
    return result


def upsert_csv_contacts(session: Session, workspace_id: int, rows: list[CsvRow]) -> None:
    """Give every row its contact: an existing one under any form of its number, else a
    new one (source `import`), inserted in bulk."""
    if not rows:
        return
    by_variant: dict[str, CsvRow] = {}
    for row in rows:
        for variant in wa_id_variants(row.e164):
            by_variant[variant] = row
    found = _contacts_by_wa_id(session, workspace_id, list(by_variant))
    for wa_id, contact_id in found.items():
        by_variant[wa_id].contact_id = contact_id
    missing = [row for row in rows if row.contact_id is None]
    if missing:
        now = utcnow()
        session.execute(
            insert_ignore(session, Contact, ["workspace_id", "wa_id"]),
            [
                {
                    "workspace_id": workspace_id,
                    "wa_id": row.e164.lstrip("+"),
                    "phone_e164": row.e164,
                    "name": row.name,
                    "sources": [ContactSource.IMPORT.value],
                    "custom_fields": {},
                    "legal_hold": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for row in missing
            ],
        )
        created = _contacts_by_wa_id(session, workspace_id, [r.e164.lstrip("+") for r in missing])
        for row in missing:
            row.contact_id = created.get(row.e164.lstrip("+"))


def _contacts_by_wa_id(session: Session, workspace_id: int, wa_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(wa_ids), 5000):
        chunk = wa_ids[start : start + 5000]
        for contact_id, wa_id in session.execute(
            select(Contact.id, Contact.wa_id).where(
                Contact.workspace_id == workspace_id, Contact.wa_id.in_(chunk)
            )
        ).tuples():
            if wa_id is not None:
                out[wa_id] = contact_id
    return out


# -- segments, tags, lists -------------------------------------------------------------


def _audience_query(
    session: Session, workspace_id: int, audience: dict[str, Any], *columns: Any
) -> Any:
    """The audience as one SELECT of `columns` over its contacts (ordered by id), for
    every kind but an explicit list of contacts (None then)."""
    kind = audience.get("kind")
    base = select(*columns).where(Contact.workspace_id == workspace_id).order_by(Contact.id)
    if kind == "all":
        return base
    if kind == "tags":
        tags = [str(t) for t in audience.get("tags") or []]
        if not tags:
            raise InvalidInput("pick at least one tag", details=[{"field": "audience.tags"}])
        return base.where(has_tag(workspace_id, tags))
    if kind == "segment":
        segment = access_segment(session, workspace_id, int(audience.get("segment_id") or 0))
        return base.where(workspace_condition(session, workspace_id, filter_of(segment)))
    if kind == "contacts":
        return None
    raise InvalidInput(
        f"audience kind must be one of {', '.join(AUDIENCE_KINDS)}",
        details=[{"field": "audience.kind"}],
    )


def audience_contact_ids(
    session: Session, workspace_id: int, audience: dict[str, Any]
) -> tuple[list[int], list[int]]:
    """(contact ids found, ids asked for that are not contacts of this workspace)."""
    query = _audience_query(session, workspace_id, audience, Contact.id)
    if query is not None:
        return list(session.scalars(query)), []
    wanted: list[int] = []
    for raw in audience.get("contact_ids") or []:
        try:
            wanted.append(int(raw))
        except (TypeError, ValueError):
            raise InvalidInput(
                f"not a contact id: {raw!r}", details=[{"field": "audience.contact_ids"}]
            ) from None
    wanted = list(dict.fromkeys(wanted))
    found: set[int] = set()
    base = select(Contact.id).where(Contact.workspace_id == workspace_id)
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        found.update(session.scalars(base.where(Contact.id.in_(chunk))))
    return [c for c in wanted if c in found], [c for c in wanted if c not in found]


def audience_people(
    session: Session, workspace_id: int, audience: dict[str, Any]
) -> tuple[list[int], dict[int, Person], list[int]]:
    """(contact ids in order, what their template values may use, ids asked for that are
    not contacts). Segments, tags and "all" are read in one query, without id lists."""
    query = _audience_query(session, workspace_id, audience, *_PERSON_COLUMNS)
    if query is None:
        found, unknown = audience_contact_ids(session, workspace_id, audience)
        return found, load_people(session, workspace_id, found), unknown
    # Core execution on the session's connection: the ORM's handling of the statement
    # and its rows cost more than the rows themselves (100,000 of them here).
    session.flush()
    people = _people(session.connection().execute(query).all())
    return list(people), people, []


class Person(NamedTuple):
    id: int
    wa_id: str | None
    name: str
    custom: dict[str, Any]


_PERSON_COLUMNS = (
    Contact.id,
    Contact.wa_id,
    Contact.name,
    Contact.business_app_name,
    Contact.profile_name,
    # As text, decoded here: psycopg's JSONB loading took 3.5 us a row, reading the text
    # and json.loads on it 1.4 us (a 100,000-contact audience is read in one go).
    cast(Contact.custom_fields, Text),
)


def _people(rows: Iterable[Any]) -> dict[int, Person]:
    loads = json.loads
    return {
        cid: Person(cid, wa_id, name or app_name or profile or "", (custom and loads(custom)) or {})
        for cid, wa_id, name, app_name, profile, custom in rows
    }


def load_people(session: Session, workspace_id: int, contact_ids: list[int]) -> dict[int, Person]:
    """What the template variables may use, for many contacts in few queries."""
    people: dict[int, Person] = {}
    for start in range(0, len(contact_ids), 5000):
        chunk = contact_ids[start : start + 5000]
        people.update(
            _people(
                session.execute(
                    select(*_PERSON_COLUMNS).where(
                        Contact.workspace_id == workspace_id, Contact.id.in_(chunk)
                    )
                ).all()
            )
        )
    return people
