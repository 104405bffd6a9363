"""The contacts pages over HTTP: the directory with search, filters, counts and pages; the
contact page with in-place edits, tags, consent, conversations and activity; creating,
importing (per-row report) and exporting contacts; privacy actions; and what each role
may do. In English and in Spanish."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from babel.messages.extract import extract
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from puente.accounts.models import AuditEntry, Membership, User, Workspace
from puente.app import create_app
from puente.cli import app as cli_app
from puente.config import Settings, get_settings
from puente.contacts.consent import do_record_consent
from puente.contacts.models import ConsentEvent, Contact, ContactTag, Tag
from puente.conversations.models import ConversationEvent, Note
from puente.db.session import Database
from puente.web import i18n
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

NOW = dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC)
SAME_IN_SPANISH = {"API", "Puente"}
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "puente" / "web" / "templates"


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


class Shop:
    workspace_id: int
    lucia: int  # a contact with a conversation, synced from the Business app
    pedro: int
    other_workspace_contact: int
    conversation: int  # Lucía's


@pytest.fixture
def shop(db: Database) -> Shop:
    s = Shop()
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        s.workspace_id = ws.id
        admin = make_user(session, ws, role="admin", email="admin@example.com", name="Ana")
        make_user(session, ws, role="supervisor", email="super@example.com")
        make_user(session, ws, role="agent", email="agent@example.com", name="Beto")
        channel = make_channel(session, ws, display_phone_number="5215500000000")
        lucia = make_contact(
            session,
            ws,
            wa_id="5215512345678",
            profile_name="Lu 🌸",
            business_app_name="Lucía (tienda)",
            sources=["business_app", "whatsapp"],
        )
        lucia.custom_fields = {"ciudad": "Puebla"}
        conversation = make_conversation(
            session, channel, lucia, last_activity_at=NOW, assignee_id=admin.id
        )
        make_message(session, conversation, timestamp=NOW, text="hola")
        make_message(
            session,
            conversation,
            timestamp=NOW,
            text="te escribo desde el cel",
            direction="outbound",
            source="business_app",
            status="sent",
        )
        session.add(
            ConversationEvent(
                workspace_id=ws.id,
                conversation_id=conversation.id,
                actor_id=admin.id,
                kind="assigned",
                data={"to_name": "Ana"},
            )
        )
        session.add(
            Note(
                workspace_id=ws.id,
                conversation_id=conversation.id,
                author_id=admin.id,
                body="Cliente frecuente",
            )
        )
        pedro = make_contact(session, ws, wa_id="5491122334455", name="Pedro Gómez")
        do_record_consent(
            session, contact=pedro, kind="opt_out", source="keyword", by_label="customer"
        )
        other = make_workspace(session, "Otra")
        stranger = make_contact(session, other, wa_id="34600111222", name="Forastero")
        s.lucia, s.pedro, s.other_workspace_contact = lucia.id, pedro.id, stranger.id
        s.conversation = conversation.id
    return s


def as_(app: FastAPI, email: str) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def rows_of(html: str) -> int:
    return html.count('data-testid="contact-row"')


# -- the directory ----------------------------------------------------------------------


def test_directory_lists_contacts_with_sources_tags_and_last_activity(
    app: FastAPI, shop: Shop
) -> None:
    page = as_(app, "agent@example.com").get("/contacts")
    assert page.status_code == 200
    assert rows_of(page.text) == 2
    assert "Forastero" not in page.text  # another workspace
    assert "Lucía (tienda)" in page.text and "Pedro Gómez" in page.text
    assert "WhatsApp Business App" in page.text
    assert "+5215512345678" in page.text
    assert "2 contacts" in page.text


def test_search_by_name_or_by_the_number_written_any_way(app: FastAPI, shop: Shop) -> None:
    web = as_(app, "agent@example.com")
    by_name = web.get("/contacts", params={"q": "pedro"}).text
    assert rows_of(by_name) == 1 and "Pedro Gómez" in by_name
    assert "1 contact matches" in by_name and "2 in total" in by_name
    by_number = web.get("/contacts", params={"q": "55 1234-5678"}).text
    assert rows_of(by_number) == 1 and "Lucía (tienda)" in by_number
    nothing = web.get("/contacts", params={"q": "zzz"}).text
    assert rows_of(nothing) == 0 and "No contact matches these filters." in nothing


def test_filters_by_source_consent_and_tag(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    app_synced = web.get("/contacts", params={"source": "business_app"}).text
    assert rows_of(app_synced) == 1 and "Lucía (tienda)" in app_synced
    opted_out = web.get("/contacts", params={"consent": "opt_out"}).text
    assert rows_of(opted_out) == 1 and "Pedro Gómez" in opted_out
    never = web.get("/contacts", params={"consent": "none"}).text
    assert rows_of(never) == 1 and "Lucía (tienda)" in never
    web.post(f"/contacts/{shop.pedro}/tags", {"tag": "mayoreo"})
    tagged = web.get("/contacts", params={"tag": "mayoreo"}).text
    assert rows_of(tagged) == 1 and "Pedro Gómez" in tagged
    assert "mayoreo (1)" in tagged  # the tag filter counts its contacts
    bad = web.get("/contacts", params={"source": "fax"})
    assert bad.status_code == 200 and "That filter is not valid" in bad.text


def test_pages_of_fifty(app: FastAPI, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, shop.workspace_id)
        assert ws is not None
        for _ in range(55):
            make_contact(session, ws, name="Cliente")
    web = as_(app, "agent@example.com")
    first = web.get("/contacts", params={"q": "cliente"}).text
    assert rows_of(first) == 50 and "Page 1 of 2" in first and "55 contacts match" in first
    second = web.get("/contacts", params={"q": "cliente", "page": 2}).text
    assert rows_of(second) == 5 and "Page 2 of 2" in second


# -- the contact page -------------------------------------------------------------------


def test_contact_page_shows_names_apart_conversations_and_activity(
    app: FastAPI, shop: Shop
) -> None:
    page = as_(app, "admin@example.com").get(f"/contacts/{shop.lucia}").text
    assert 'data-testid="contact-name">Lucía (tienda)<' in page
    assert "Lu 🌸" in page  # the WhatsApp profile name, shown apart
    assert "from the owner's phone, read-only" in page
    assert "/inbox/c/" in page and "2 messages" in page and "1 from the Business app" in page
    assert "Ana assigned this to Ana" in page
    assert "Ana left a private note" in page and "Cliente frecuente" in page
    assert "Puebla" in page


def test_the_inbox_panel_and_the_contact_page_link_to_each_other(app: FastAPI, shop: Shop) -> None:
    web = as_(app, "admin@example.com")
    panel = web.get(f"/inbox/c/{shop.conversation}").text
    assert f'href="/contacts/{shop.lucia}" data-testid="contact-page-link"' in panel
    page = web.get(f"/contacts/{shop.lucia}").text
    assert f'href="/inbox/c/{shop.conversation}" data-testid="open-conversation"' in page


def test_another_workspaces_contact_is_not_found(app: FastAPI, shop: Shop) -> None:
    web = as_(app, "admin@example.com")
    assert web.get(f"/contacts/{shop.other_workspace_contact}").status_code == 404
    response = web.post(
        f"/contacts/{shop.other_workspace_contact}/fields", {"key": "x", "value": "y"}
    )
    assert response.status_code == 404
    erase = web.post(f"/contacts/{shop.other_workspace_contact}/erase", {"confirm": "yes"})
    assert erase.status_code == 404


def test_name_edited_in_place_keeps_the_phones_name_apart(
    app: FastAPI, shop: Shop, db: Database
) -> None:
    web = as_(app, "agent@example.com")
    editor = web.htmx("GET", f"/contacts/{shop.lucia}/name/edit")
    assert editor.status_code == 200 and 'data-testid="name-input"' in editor.text
    saved = web.htmx("POST", f"/contacts/{shop.lucia}/name", data={"name": "Lucía Ramírez"})
    assert saved.status_code == 200
    assert 'data-testid="contact-name">Lucía Ramírez<' in saved.text
    with db.read(unscoped="test") as session:
        contact = session.get(Contact, shop.lucia)
        assert contact is not None
        assert (contact.name, contact.business_app_name) == ("Lucía Ramírez", "Lucía (tienda)")
    # Without JavaScript the form posts and the page comes back.
    plain = web.post(f"/contacts/{shop.lucia}/name", {"name": ""}, follow_redirects=True)
    assert 'data-testid="contact-name">Lucía (tienda)<' in plain.text


def test_custom_fields_added_edited_and_removed(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    added = web.htmx("POST", f"/contacts/{shop.lucia}/fields", data={"key": "RFC", "value": "X1"})
    assert added.status_code == 200 and "X1" in added.text and "Puebla" in added.text
    editing = web.htmx("GET", f"/contacts/{shop.lucia}/fields", params={"edit": "ciudad"})
    assert 'data-testid="field-input"' in editing.text
    web.htmx("POST", f"/contacts/{shop.lucia}/fields", data={"key": "ciudad", "value": "Oaxaca"})
    removed = web.htmx("POST", f"/contacts/{shop.lucia}/fields/remove", data={"key": "RFC"})
    assert "X1" not in removed.text
    nameless = web.htmx("POST", f"/contacts/{shop.lucia}/fields", data={"key": " ", "value": "v"})
    assert "Give the field a name." in nameless.text
    with db.read(unscoped="test") as session:
        contact = session.get(Contact, shop.lucia)
        assert contact is not None and contact.custom_fields == {"ciudad": "Oaxaca"}
    # The no-JavaScript editor opens from a link on the page itself.
    page = web.get(f"/contacts/{shop.lucia}", params={"edit": "field", "field": "ciudad"})
    assert 'data-testid="field-input"' in page.text


def test_tags_added_and_removed(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    added = web.htmx("POST", f"/contacts/{shop.lucia}/tags", data={"tag": "vip, mayoreo"})
    assert added.text.count('data-testid="tag"') == 2
    too_long = web.htmx("POST", f"/contacts/{shop.lucia}/tags", data={"tag": "x" * 101})
    assert "Each tag must be 1 to 100 characters." in too_long.text
    removed = web.htmx("POST", f"/contacts/{shop.lucia}/tags/remove", data={"tag": "vip"})
    assert removed.text.count('data-testid="tag"') == 1
    with db.read(unscoped="test") as session:
        names = session.scalars(
            select(Tag.name).join(ContactTag).where(ContactTag.contact_id == shop.lucia)
        ).all()
        assert names == ["mayoreo"]


def test_an_agent_records_consent_with_their_name(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    done = web.post(
        f"/contacts/{shop.pedro}/consent",
        {"kind": "opt_in", "note": "lo pidió por teléfono"},
        follow_redirects=True,
    )
    assert "The consent was recorded." in done.text
    assert 'data-state="opt_in"' in done.text
    assert "Recorded by an agent" in done.text and "Beto" in done.text
    assert "Keyword written by the customer" in done.text  # the earlier opt-out stays
    bad = web.post(f"/contacts/{shop.pedro}/consent", {"kind": "maybe"})
    assert bad.status_code == 422 and "Choose opt-in or opt-out." in bad.text
    with db.read(unscoped="test") as session:
        events = session.scalars(
            select(ConsentEvent.kind).where(ConsentEvent.contact_id == shop.pedro)
        ).all()
        assert sorted(events) == ["opt_in", "opt_out"]


# -- a new contact ----------------------------------------------------------------------


def test_new_contact_with_phone_validation_and_duplicates(
    app: FastAPI, shop: Shop, db: Database
) -> None:
    web = as_(app, "agent@example.com")
    invalid = web.post("/contacts/new", {"phone": "12ab", "name": "X"})
    assert invalid.status_code == 422
    assert 'data-testid="phone-error"' in invalid.text and 'value="12ab"' in invalid.text
    empty = web.post("/contacts/new", {"phone": ""})
    assert empty.status_code == 422 and "A phone number is required." in empty.text
    duplicate = web.post("/contacts/new", {"phone": "+52 1 55 1234 5678"})
    assert duplicate.status_code == 409
    assert f'href="/contacts/{shop.lucia}" data-testid="existing-contact"' in duplicate.text
    created = web.post(
        "/contacts/new",
        {"phone": "+52 33 1111 2222", "name": "Rosa", "tags": "nuevo"},
        follow_redirects=True,
    )
    assert created.status_code == 200 and "The contact was created." in created.text
    assert "Added by hand" in created.text and "nuevo" in created.text
    with db.read(unscoped="test") as session:
        rosa = session.scalar(select(Contact).where(Contact.name == "Rosa"))
        assert rosa is not None and rosa.phone_e164 == "+523311112222"


# -- CSV import and export --------------------------------------------------------------

IMPORT_CSV = (
    "telefono,nombre,etiquetas,empresa\n"
    "+52 33 1234 0001,Carla,vip;feria,Acme\n"
    "no-es-numero,Malo,,\n"
    "52 33 1234 0001,Carla otra vez,,\n"
    "+52 1 55 1234 5678,Lucía Ramírez,vip,Tiendita\n"
    ",Sin teléfono,,\n"
    "\n"
    "+34 600 111 999,,,\n"
)


def test_csv_import_reports_every_row(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    response = web.post(
        "/contacts/import",
        files={"file": ("clientes.csv", IMPORT_CSV.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    page = response.text
    assert "2 created" in page and "1 updated" in page and "3 rejected" in page
    assert 'data-line="3" data-outcome="rejected" data-reason="invalid_phone"' in page
    assert "Duplicate of line 2" in page
    assert 'data-line="5" data-outcome="updated" data-reason="exists"' in page
    assert 'data-line="6" data-outcome="rejected" data-reason="no_phone"' in page
    with db.read(unscoped="test") as session:
        carla = session.scalar(select(Contact).where(Contact.name == "Carla"))
        assert carla is not None and carla.custom_fields == {"empresa": "Acme"}
        assert carla.sources == ["import"]
        lucia = session.get(Contact, shop.lucia)
        assert lucia is not None and lucia.name == "Lucía Ramírez"
        assert lucia.custom_fields == {"ciudad": "Puebla", "empresa": "Tiendita"}
        vip = session.scalars(
            select(ContactTag.contact_id).join(Tag).where(Tag.name == "vip")
        ).all()
        assert sorted(vip) == sorted([carla.id, shop.lucia])


def test_csv_import_keeps_accented_headers_in_one_unicode_form(
    app: FastAPI, shop: Shop, db: Database
) -> None:
    """A spreadsheet saved on a Mac writes "ó" as "o" plus a combining accent: the field
    is stored as "Dirección" typed on a keyboard, so `{custom.Dirección}` finds it."""
    web = as_(app, "agent@example.com")
    csv_text = (
        "telefono,nombre, Direccio\u0301n de envi\u0301o \n+57 300 111 2233,Rosa,Cra 7 # 12\n"
    )
    response = web.post(
        "/contacts/import", files={"file": ("mac.csv", csv_text.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    with db.read(unscoped="test") as session:
        rosa = session.scalar(select(Contact).where(Contact.name == "Rosa"))
        assert rosa is not None
        assert rosa.custom_fields == {"Dirección de envío": "Cra 7 # 12"}


def test_csv_import_refuses_a_file_without_a_phone_column(app: FastAPI, shop: Shop) -> None:
    web = as_(app, "agent@example.com")
    response = web.post(
        "/contacts/import", files={"file": ("x.csv", b"nombre,ciudad\nAna,Lima\n", "text/csv")}
    )
    assert response.status_code == 422
    assert "phone column" in response.text and "nombre, ciudad" in response.text


def test_export_csv_is_audited_and_imports_back(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "super@example.com")
    response = web.get("/contacts/export.csv", params={"consent": "opt_out"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["phone"], r["name"], r["consent"]) for r in rows] == [
        ("+5491122334455", "Pedro Gómez", "opt_out")
    ]
    everyone = web.get("/contacts/export.csv").content
    assert b"ciudad" in everyone  # custom fields become columns
    again = web.post("/contacts/import", files={"file": ("c.csv", everyone, "text/csv")})
    assert "0 created" in again.text and "2 updated" in again.text
    with db.read(unscoped="test") as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "contacts.exported")
        ).all()
        assert [e.details["count"] for e in entries] == [1, 2]
        assert entries[0].details["consent"] == "opt_out"


def test_cli_import_prints_the_rejected_rows(
    shop: Shop, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PUENTE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("PUENTE_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("PUENTE_DATABASE_URL", raising=False)
    assert settings.secret_key is not None
    monkeypatch.setenv("PUENTE_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    source = tmp_path / "clientes.csv"
    source.write_text(IMPORT_CSV, encoding="utf-8")
    report = tmp_path / "report.json"
    try:
        result = CliRunner().invoke(
            cli_app,
            [
                "contacts",
                "import",
                str(source),
                "--workspace",
                "Ferretería Sol",
                "--report",
                str(report),
            ],
        )
        unknown = CliRunner().invoke(
            cli_app, ["contacts", "import", str(source), "--workspace", "Nadie"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "2 created, 1 updated, 3 rejected" in result.output
    assert "line 4: 52 33 1234 0001: duplicate of line 2" in result.output
    assert '"reason": "invalid_phone"' in report.read_text()
    assert unknown.exit_code == 1 and "no workspace called 'Nadie'" in unknown.output
    with db.read(unscoped="test") as session:
        assert session.scalar(select(Contact.id).where(Contact.name == "Carla")) is not None


# -- privacy and permissions --------------------------------------------------------------


def test_admin_holds_exports_and_erases(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "admin@example.com")
    held = web.post(f"/contacts/{shop.lucia}/hold", {"hold": "on"}, follow_redirects=True)
    assert "The contact is under legal hold." in held.text and 'data-hold="on"' in held.text
    refused = web.post(f"/contacts/{shop.lucia}/erase", {"confirm": "yes"})
    assert refused.status_code == 409 and "legal hold" in refused.text
    web.post(f"/contacts/{shop.lucia}/hold", {"hold": "off"})
    export = web.post(f"/contacts/{shop.lucia}/export")
    assert export.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert "contact.json" in names and "messages.json" in names
    unconfirmed = web.post(f"/contacts/{shop.lucia}/erase", {})
    assert unconfirmed.status_code == 422 and "tick the box" in unconfirmed.text
    erased = web.post(f"/contacts/{shop.lucia}/erase", {"confirm": "yes"}, follow_redirects=True)
    assert "The contact and everything about it were erased." in erased.text
    assert rows_of(erased.text) == 1
    with db.read(unscoped="test") as session:
        assert session.get(Contact, shop.lucia) is None
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions.count("contact.legal_hold") == 2
        assert "contact.exported" in actions and "contact.erased" in actions


def test_an_agent_cannot_export_hold_or_erase(app: FastAPI, shop: Shop, db: Database) -> None:
    web = as_(app, "agent@example.com")
    page = web.get(f"/contacts/{shop.lucia}").text
    assert 'data-testid="privacy"' not in page and "Export CSV" not in web.get("/contacts").text
    assert web.get("/contacts/export.csv").status_code == 403
    assert web.post(f"/contacts/{shop.lucia}/hold", {"hold": "on"}).status_code == 403
    assert web.post(f"/contacts/{shop.lucia}/erase", {"confirm": "yes"}).status_code == 403
    assert web.post(f"/contacts/{shop.lucia}/export").status_code == 403
    with db.read(unscoped="test") as session:
        assert session.get(Contact, shop.lucia) is not None


def test_an_agent_without_contacts_manage_only_reads(
    app: FastAPI, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        agent = session.scalar(select(User).where(User.email == "agent@example.com"))
        assert agent is not None
        membership = session.scalar(select(Membership).where(Membership.user_id == agent.id))
        assert membership is not None
        membership.permissions = {"contacts.manage": False}
    web = as_(app, "agent@example.com")
    page = web.get(f"/contacts/{shop.lucia}")
    assert page.status_code == 200 and 'data-testid="edit-name"' not in page.text
    assert web.post(f"/contacts/{shop.lucia}/name", {"name": "X"}).status_code == 403
    assert web.get("/contacts/new").status_code == 403
    assert (
        web.post("/contacts/import", files={"file": ("a.csv", b"phone\n1", "text/csv")}).status_code
        == 403
    )


def test_forms_without_a_csrf_token_are_refused(app: FastAPI, shop: Shop) -> None:
    web = as_(app, "admin@example.com")
    response = web.post(f"/contacts/{shop.lucia}/name", {"name": "X"}, csrf=False)
    assert response.status_code == 403


# -- languages and time zones -------------------------------------------------------------


def test_spanish_pages_in_the_users_time_zone(app: FastAPI, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        admin = session.scalar(select(User).where(User.email == "admin@example.com"))
        assert admin is not None
        admin.locale, admin.timezone = "es", "America/Mexico_City"
    web = as_(app, "admin@example.com")
    listing = web.get("/contacts").text
    assert "Contactos" in listing and "App WhatsApp Business" in listing
    assert "9:30" in listing  # 15:30 UTC is 9:30 in Mexico City
    page = web.get(f"/contacts/{shop.pedro}").text
    assert "Consentimiento de marketing" in page and "Palabra clave escrita por el cliente" in page


def test_every_contacts_text_has_a_spanish_translation() -> None:
    singles: set[str] = set()
    plurals: set[tuple[str, str]] = set()
    for path in sorted((TEMPLATES / "contacts").glob("*.html")):
        with path.open("rb") as fh:
            for _line, message, _comments, _context in extract(
                "jinja2",
                fh,
                keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
                options={"extensions": "jinja2.ext.i18n"},
            ):
                if isinstance(message, str):
                    singles.add(message)
                else:
                    plurals.add((message[0], message[1]))
    from puente.web.routes import contacts as routes

    singles |= set(routes.DONE_MESSAGES.values()) | set(routes.FIELD_ERRORS.values())
    spanish = i18n.translations("es")
    assert len(singles) > 80 and len(plurals) > 5
    untranslated = sorted(
        m for m in singles if spanish.gettext(m) == m and m not in SAME_IN_SPANISH
    )
    untranslated += sorted(p for s, p in plurals if spanish.ngettext(s, p, 2) == p)
    assert untranslated == []
