"""The segments pages over HTTP: the list with counts reached from the contacts page, the
form's live count (the htmx fragment), saving, refusals shown beside their field, the
contacts list narrowed to a segment, deletion warning about scheduled broadcasts, and
what each role may do."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import AuditEntry
from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import ContactTag, Segment, Tag
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.models import Broadcast
from tests.factories import PASSWORD, make_channel, make_contact, make_user, make_workspace
from tests.webclient import WebClient


class Shop:
    workspace_id: int
    channel_id: int
    vip: list[int]


@pytest.fixture
def shop(db: Database) -> Shop:
    s = Shop()
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        s.workspace_id = ws.id
        make_user(session, ws, role="supervisor", email="super@example.com")
        make_user(session, ws, role="agent", email="agent@example.com")
        s.channel_id = make_channel(session, ws).id
        tag = Tag(workspace_id=ws.id, name="vip")
        session.add(tag)
        session.flush()
        s.vip = []
        for n in range(5):
            contact = make_contact(session, ws, name=f"Cliente {n}")
            contact.custom_fields = {"ciudad": "Puebla" if n < 3 else "Oaxaca"}
            if n % 2 == 0:
                session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=tag.id))
                s.vip.append(contact.id)
        other = make_workspace(session, "Otra")
        make_contact(session, other, name="Ajeno")
    return s


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db, run_workers=False)) as c:
        yield c


def signed_in(client: TestClient, email: str) -> WebClient:
    web = WebClient(client)
    assert web.login(email, PASSWORD).status_code == 200
    return web


def count_in(html: str) -> int | None:
    found = re.search(r'data-testid="segment-count" data-count="(\d+)"', html)
    return int(found.group(1)) if found else None


def _save(web: WebClient, path: str, **form: str | list[str]) -> tuple[int, str]:
    response = web.post(path, form, follow_redirects=True)
    return response.status_code, response.text


def test_the_contacts_page_leads_to_segments(client: TestClient, shop: Shop) -> None:
    web = signed_in(client, "agent@example.com")
    contacts = web.get("/contacts").text
    assert 'href="/contacts/segments" data-testid="segments-link"' in contacts
    page = web.get("/contacts/segments")
    assert page.status_code == 200
    assert 'data-testid="empty"' in page.text


def test_the_form_counts_live_as_filters_change(client: TestClient, shop: Shop) -> None:
    web = signed_in(client, "super@example.com")
    form = web.get("/contacts/segments/new").text
    assert count_in(form) == 5  # nothing chosen: every contact of the workspace
    assert 'hx-get="/contacts/segments/count"' in form
    assert count_in(web.get("/contacts/segments/count", params={"tags_any": "vip"}).text) == 3
    both = {"tags_any": "vip", "field_key": "ciudad", "field_op": "equals", "field_value": "Puebla"}
    assert count_in(web.get("/contacts/segments/count", params=both).text) == 2
    bad = web.get(
        "/contacts/segments/count", params={"lm_op": "before", "lm_date": "2026-02-30"}
    ).text
    assert count_in(bad) is None
    assert "“2026-02-30” is not a date (YYYY-MM-DD)." in bad


def test_a_supervisor_saves_edits_and_opens_a_segment(
    client: TestClient, shop: Shop, db: Database
) -> None:
    web = signed_in(client, "super@example.com")
    status, page = _save(
        web,
        "/contacts/segments/new",
        name="VIP de Puebla",
        tags_any="vip",
        field_key=["ciudad", ""],
        field_op=["equals", "equals"],
        field_value=["Puebla", ""],
        consent="unknown",
        channel_ids=[],
    )
    assert status == 200
    assert "The segment was saved." in page
    with db.read(unscoped="test") as session:
        segment = session.scalars(select(Segment)).one()
        saved = (segment.id, segment.filter)
        actions = session.scalars(select(AuditEntry.action)).all()
    assert saved[1] == {
        "tags_any": ["vip"],
        "fields": [{"key": "ciudad", "op": "equals", "value": "Puebla"}],
        "consent": "unknown",
    }
    assert "segment.saved" in actions
    row = re.search(rf'id="segment-{saved[0]}".*?</tr>', page, re.S)
    assert row and 'data-testid="segment-count-cell">2<' in row.group(0)

    listed = web.get(f"/contacts?segment={saved[0]}").text
    assert listed.count('data-testid="contact-row"') == 2
    assert 'data-testid="segment-filter"' in listed and "VIP de Puebla" in listed

    edit = web.get(f"/contacts/segments/{saved[0]}").text
    assert 'value="VIP de Puebla"' in edit and count_in(edit) == 2
    status, page = _save(
        web, f"/contacts/segments/{saved[0]}/edit", name="VIP", tags_any="vip", lm_op=""
    )
    assert status == 200
    row = re.search(rf'id="segment-{saved[0]}".*?</tr>', page, re.S)
    assert row and 'data-testid="segment-count-cell">3<' in row.group(0)


def test_refusals_are_shown_beside_their_field(client: TestClient, shop: Shop) -> None:
    web = signed_in(client, "super@example.com")
    status, page = _save(
        web,
        "/contacts/segments/new",
        name="Mal",
        field_key="talla",
        field_op="equals",
        field_value="M",
        lm_op="within",
        lm_days="30",
    )
    assert status == 422
    assert 'data-testid="error-fields"' in page and "No contact has a field “talla”." in page
    assert 'value="talla"' in page and 'name="lm_days" value="30"' in page  # what was typed
    status, page = _save(web, "/contacts/segments/new", name="Mal", lm_op="within", lm_days="0")
    assert status == 422
    assert 'data-testid="error-last_message"' in page
    _save(web, "/contacts/segments/new", name="Uno")
    status, page = _save(web, "/contacts/segments/new", name="Uno", tags_any="vip")
    assert status == 409
    assert "There is already a segment with this name." in page


def test_deleting_warns_about_scheduled_broadcasts(
    client: TestClient, shop: Shop, db: Database
) -> None:
    web = signed_in(client, "super@example.com")
    _save(web, "/contacts/segments/new", name="VIP", tags_any="vip")
    with db.unit_of_work(unscoped="test") as session:
        segment_id = session.scalars(select(Segment.id)).one()
        session.add(
            Broadcast(
                workspace_id=shop.workspace_id,
                channel_id=shop.channel_id,
                name="Promo de diciembre",
                template_name="promo",
                template_language="es",
                template_category="MARKETING",
                audience={"kind": "segment", "segment_id": segment_id},
                variables={},
                state="scheduled",
                scheduled_at=utcnow() + dt.timedelta(days=2),
            )
        )
    confirm = web.get(f"/contacts/segments/{segment_id}/delete").text
    assert 'data-testid="used-by-broadcasts"' in confirm and "Promo de diciembre" in confirm
    status, page = _save(web, f"/contacts/segments/{segment_id}/delete")
    assert status == 200 and "The segment was deleted." in page
    gone = web.get(f"/contacts?segment={segment_id}").text
    assert "That segment no longer exists; it was ignored." in gone
    assert gone.count('data-testid="contact-row"') == 5


def test_another_workspaces_segment_is_not_found(
    client: TestClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Vecina")
        make_user(session, other, role="supervisor", email="vecina@example.com")
    _save(signed_in(client, "vecina@example.com"), "/contacts/segments/new", name="Suyo")
    with db.read(unscoped="test") as session:
        theirs = session.scalars(select(Segment.id)).one()
    web = signed_in(client, "super@example.com")
    assert web.get(f"/contacts/segments/{theirs}").status_code == 404
    assert web.post(f"/contacts/segments/{theirs}/delete").status_code == 404
    listed = web.get(f"/contacts?segment={theirs}").text
    assert "That segment no longer exists; it was ignored." in listed


@pytest.mark.one_leg
def test_the_pages_in_spanish_keep_their_structure(client: TestClient, shop: Shop) -> None:
    web = signed_in(client, "super@example.com")
    web.post("/me/language", {"language": "es"})
    _save(web, "/contacts/segments/new", name="VIP", tags_any="vip", lm_op="within", lm_days="30")
    page = web.get("/contacts/segments").text
    assert '<html lang="es"' in page
    assert 'data-testid="segment-row"' in page and 'data-testid="view-contacts"' in page
    form = web.get("/contacts/segments/new").text
    for part in ("tags-any", "field-key", "consent", "lm-op", "segment-count", "save-segment"):
        assert f'data-testid="{part}"' in form
