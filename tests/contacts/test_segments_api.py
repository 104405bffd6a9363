"""Segments over the API: every kind of filter counted on real data (previews and saved
segments with their contacts), workspace isolation, scopes, and bad input refused naming
the part of the filter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact, ContactConsent, ContactTag, Segment, Tag
from puente.db.base import utcnow
from puente.db.session import Database
from tests.api.conftest import Tenant, make_tenant
from tests.factories import make_channel, make_contact, make_conversation, make_token


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), base_url="http://testserver/api/v1") as c:
        yield c


@dataclass
class Shop:
    tenant: Tenant
    ids: dict[str, int]  # contacts c1..c4, numbers a and b


def _tag(session: Any, ws: Workspace, contact: Contact, *names: str) -> None:
    for name in names:
        tag = session.query(Tag).filter_by(workspace_id=ws.id, name=name).one_or_none()
        if tag is None:
            tag = Tag(workspace_id=ws.id, name=name)
            session.add(tag)
            session.flush()
        session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=tag.id))


def _consent(session: Any, ws: Workspace, contact: Contact, state: str) -> None:
    session.add(
        ContactConsent(
            workspace_id=ws.id,
            contact_id=contact.id,
            scope="marketing",
            state=state,
            since=utcnow(),
            source="api",
        )
    )


def seed(db: Database, name: str) -> Shop:
    """Four contacts that each filter tells apart:
    c1 vip+mayoreo, plan gold, email and more fields, opted in, WhatsApp; open on A, yesterday
    c2 vip, plan silver, opted out, CSV import; resolved on B, 40 days ago
    c3 no tags or fields, no consent, Business app + WhatsApp; pending on A 10 days ago,
       open on B 100 days ago
    c4 mayoreo, plan gold, added by hand; no conversation"""
    tenant = make_tenant(db, name)
    now = utcnow()
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, tenant.workspace.id)
        assert ws is not None
        a, b = make_channel(session, ws), make_channel(session, ws)
        c1 = make_contact(session, ws, name="Uno", sources=["whatsapp"])
        c1.custom_fields = {
            "plan": "gold",
            "email": "uno@example.com",
            "Dirección de envío": "Centro",
            "puntos": 120,
            "activo": True,
        }
        c2 = make_contact(session, ws, name="Dos", sources=["import"])
        c2.custom_fields = {"plan": "silver"}
        c3 = make_contact(session, ws, name="Tres", sources=["business_app", "whatsapp"])
        c4 = make_contact(session, ws, name="Cuatro", sources=["manual"])
        c4.custom_fields = {"plan": "gold"}
        _tag(session, ws, c1, "vip", "mayoreo")
        _tag(session, ws, c2, "vip")
        _tag(session, ws, c4, "mayoreo")
        _consent(session, ws, c1, "opt_in")
        _consent(session, ws, c2, "opt_out")
        make_conversation(
            session, a, c1, status="open", last_activity_at=now - dt.timedelta(days=1)
        )
        make_conversation(
            session, b, c2, status="resolved", last_activity_at=now - dt.timedelta(days=40)
        )
        make_conversation(
            session, a, c3, status="pending", last_activity_at=now - dt.timedelta(days=10)
        )
        make_conversation(
            session, b, c3, status="open", last_activity_at=now - dt.timedelta(days=100)
        )
        ids = {"c1": c1.id, "c2": c2.id, "c3": c3.id, "c4": c4.id, "a": a.id, "b": b.id}
    return Shop(tenant, ids)


@pytest.fixture
def shop(db: Database) -> Shop:
    return seed(db, "Tienda")


def _day(days_ago: int) -> str:
    return (utcnow() - dt.timedelta(days=days_ago)).date().isoformat()


def preview(client: TestClient, shop: Shop, data: dict[str, Any]) -> int:
    response = client.post("/segments/preview", json={"filter": data}, headers=shop.tenant.auth)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def members(client: TestClient, shop: Shop, data: dict[str, Any], name: str) -> set[str]:
    """Save the filter as a segment and read its contacts back (by c1..c4)."""
    created = client.post(
        "/segments", json={"name": name, "filter": data}, headers=shop.tenant.auth
    )
    assert created.status_code == 201, created.text
    body = created.json()
    listed = client.get(f"/segments/{body['id']}/contacts", headers=shop.tenant.auth)
    assert listed.status_code == 200, listed.text
    names = {v: k for k, v in shop.ids.items() if k.startswith("c")}
    found = {names[c["id"]] for c in listed.json()["items"]}
    assert body["count"] == len(found)
    return found


def test_each_filter_kind_counts_the_right_contacts(client: TestClient, shop: Shop) -> None:
    a, b = shop.ids["a"], shop.ids["b"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"c1", "c2", "c3", "c4"}),
        ({"tags_any": ["vip"]}, {"c1", "c2"}),
        ({"tags_all": ["vip", "mayoreo"]}, {"c1"}),
        ({"tags_none": ["vip"]}, {"c3", "c4"}),
        ({"tags_any": ["nobody-has-it"]}, set()),
        ({"fields": [{"key": "plan", "op": "equals", "value": "gold"}]}, {"c1", "c4"}),
        ({"fields": [{"key": "email", "op": "set"}]}, {"c1"}),
        # Keys as people write them, and values that are not text in the JSON.
        ({"fields": [{"key": "Dirección de envío", "op": "equals", "value": "Centro"}]}, {"c1"}),
        ({"fields": [{"key": "puntos", "op": "equals", "value": 120}]}, {"c1"}),
        ({"fields": [{"key": "activo", "op": "equals", "value": True}]}, {"c1"}),
        ({"fields": [{"key": "plan", "op": "not_set"}]}, {"c3"}),
        ({"consent": "opt_in"}, {"c1"}),
        ({"consent": "opt_out"}, {"c2"}),
        ({"consent": "unknown"}, {"c3", "c4"}),
        ({"sources": ["import"]}, {"c2"}),
        ({"sources": ["business_app", "manual"]}, {"c3", "c4"}),
        ({"channel_ids": [a]}, {"c1", "c3"}),
        ({"channel_ids": [b]}, {"c2", "c3"}),
        ({"last_message": {"op": "within", "days": 7}}, {"c1"}),
        ({"last_message": {"op": "within", "days": 30}}, {"c1", "c3"}),
        ({"last_message": {"op": "before", "date": _day(30)}}, {"c2"}),
        ({"last_message": {"op": "after", "date": _day(15)}}, {"c1", "c3"}),
        ({"conversation_status": ["open"]}, {"c1", "c3"}),
        ({"conversation_status": ["pending", "resolved"]}, {"c2", "c3"}),
        # Status and last message look at the conversations on the numbers chosen.
        ({"channel_ids": [b], "conversation_status": ["open"]}, {"c3"}),
        ({"channel_ids": [a], "conversation_status": ["open"]}, {"c1"}),
        ({"channel_ids": [b], "last_message": {"op": "within", "days": 30}}, set()),
        # Parts combine: all must hold.
        ({"tags_any": ["mayoreo"], "consent": "unknown"}, {"c4"}),
    ]
    for n, (data, expected) in enumerate(cases):
        assert preview(client, shop, data) == len(expected), data
        assert members(client, shop, data, f"Caso {n}") == expected, data
    # The list counts them all, with the same results.
    listed = client.get("/segments", headers=shop.tenant.auth).json()
    assert len(listed) == len(cases)
    assert {s["name"]: s["count"] for s in listed} == {
        f"Caso {n}": len(expected) for n, (_data, expected) in enumerate(cases)
    }


def test_the_earlier_filter_form_still_counts(client: TestClient, shop: Shop) -> None:
    assert preview(client, shop, {"fields": {"plan": "gold"}, "opted_in": True}) == 1
    response = client.post(
        "/segments/preview", json={"filter": {"fields": {"plan": "gold"}}}, headers=shop.tenant.auth
    )
    assert response.json()["filter"] == {
        "fields": [{"key": "plan", "op": "equals", "value": "gold"}]
    }


def test_a_segment_is_listed_read_changed_and_deleted(client: TestClient, shop: Shop) -> None:
    auth = shop.tenant.auth
    created = client.post(
        "/segments", json={"name": " VIP ", "filter": {"tags_any": ["vip"]}}, headers=auth
    ).json()
    assert (created["name"], created["count"]) == ("VIP", 2)
    assert client.get("/segments", headers=auth).json() == [created]
    assert client.get(f"/segments/{created['id']}", headers=auth).json() == created
    changed = client.patch(
        f"/segments/{created['id']}",
        json={"filter": {"tags_any": ["vip"], "consent": "opt_in"}},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["count"]) == ("VIP", 1)
    renamed = client.patch(f"/segments/{created['id']}", json={"name": "VIP+"}, headers=auth)
    assert renamed.json()["name"] == "VIP+" and renamed.json()["count"] == 1
    twin = client.post("/segments", json={"name": "VIP+", "filter": {}}, headers=auth)
    assert twin.status_code == 409
    assert twin.json()["error"]["details"] == {"existing_id": created["id"]}
    assert client.delete(f"/segments/{created['id']}", headers=auth).status_code == 204
    assert client.get(f"/segments/{created['id']}", headers=auth).status_code == 404
    assert client.get("/segments", headers=auth).json() == []


def test_contacts_come_in_pages(client: TestClient, shop: Shop) -> None:
    auth = shop.tenant.auth
    segment = client.post("/segments", json={"name": "Todos", "filter": {}}, headers=auth).json()
    path = f"/segments/{segment['id']}/contacts"
    first = client.get(path, params={"limit": 3}, headers=auth).json()
    second = client.get(
        path, params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert ids == sorted(shop.ids[c] for c in ("c1", "c2", "c3", "c4"))[::-1]
    assert second["next_cursor"] is None
    vip = next(c for c in first["items"] + second["items"] if c["id"] == shop.ids["c1"])
    assert vip["tags"] == ["mayoreo", "vip"]


def test_a_segment_never_counts_another_workspaces_contacts(
    client: TestClient, shop: Shop, db: Database
) -> None:
    other = seed(db, "Otra tienda")
    mine = client.post(
        "/segments", json={"name": "VIP", "filter": {"tags_any": ["vip"]}}, headers=shop.tenant.auth
    ).json()
    theirs = client.post(
        "/segments",
        json={"name": "VIP", "filter": {"tags_any": ["vip"]}},
        headers=other.tenant.auth,
    ).json()
    assert mine["count"] == theirs["count"] == 2
    assert preview(client, shop, {}) == 4
    everyone = client.post(
        "/segments", json={"name": "Todos", "filter": {}}, headers=shop.tenant.auth
    )
    listed = client.get(f"/segments/{everyone.json()['id']}/contacts", headers=shop.tenant.auth)
    assert {c["id"] for c in listed.json()["items"]} == {
        shop.ids[c] for c in ("c1", "c2", "c3", "c4")
    }
    for method, path in [
        ("GET", f"/segments/{theirs['id']}"),
        ("GET", f"/segments/{theirs['id']}/contacts"),
        ("PATCH", f"/segments/{theirs['id']}"),
        ("DELETE", f"/segments/{theirs['id']}"),
    ]:
        response = client.request(method, path, json={"name": "x"}, headers=shop.tenant.auth)
        assert response.status_code == 404, (method, path)
    # Another workspace's number is not a number of this one.
    refused = client.post(
        "/segments/preview",
        json={"filter": {"channel_ids": [other.ids["a"]]}},
        headers=shop.tenant.auth,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == [
        {
            "field": "filter.channel_ids.0",
            "message": f"There is no number {other.ids['a']} in this workspace.",
        }
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"colour": "red"}, "filter.colour", "Unknown filter “colour”"),
        (
            {"fields": [{"key": "talla", "op": "equals", "value": "M"}]},
            "filter.fields.0.key",
            "No contact has a field “talla”.",
        ),
        (
            {"fields": [{"key": "plan", "op": "contains", "value": "g"}]},
            "filter.fields.0.op",
            "Use equals, set or not_set.",
        ),
        (
            {"fields": [{"key": "plan", "op": "equals"}]},
            "filter.fields.0.value",
            "Give the value to compare with.",
        ),
        ({"consent": "maybe"}, "filter.consent", "Use opt_in, opt_out or unknown."),
        ({"sources": ["fax"]}, "filter.sources", "“fax” is not one of"),
        ({"channel_ids": [999999]}, "filter.channel_ids.0", "There is no number 999999"),
        ({"channel_ids": ["A"]}, "filter.channel_ids", "Give a list of number ids."),
        (
            {"last_message": {"op": "before", "date": "2026-02-30"}},
            "filter.last_message.date",
            "“2026-02-30” is not a date (YYYY-MM-DD).",
        ),
        (
            {"last_message": {"op": "after", "date": "yesterday"}},
            "filter.last_message.date",
            "is not a date",
        ),
        (
            {"last_message": {"op": "within", "days": 0}},
            "filter.last_message.days",
            "Give a number of days",
        ),
        (
            {"last_message": {"op": "since"}},
            "filter.last_message.op",
            "Use within, before or after.",
        ),
        (
            {"conversation_status": ["closed"]},
            "filter.conversation_status",
            "“closed” is not one of",
        ),
        ({"tags_any": "vip"}, "filter.tags_any", "Give a list of names."),
    ],
)
def test_bad_filters_are_refused_naming_the_part(
    client: TestClient, shop: Shop, data: dict[str, Any], field: str, message: str
) -> None:
    for path in ("/segments/preview", "/segments"):
        response = client.post(
            path,
            json={"name": "Malo", "filter": data} if path == "/segments" else {"filter": data},
            headers=shop.tenant.auth,
        )
        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        assert details[0]["field"] == field
        assert message in details[0]["message"]


def test_bad_names_and_scopes(client: TestClient, shop: Shop, db: Database) -> None:
    auth = shop.tenant.auth
    assert (
        client.post("/segments", json={"name": "", "filter": {}}, headers=auth).status_code == 422
    )
    assert (
        client.post("/segments", json={"name": "   ", "filter": {}}, headers=auth).status_code
        == 422
    )
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, shop.tenant.workspace.id)
        assert ws is not None
        reader = {"Authorization": f"Bearer {make_token(session, ws, ['contacts:read'])}"}
    assert client.get("/segments", headers=reader).status_code == 200
    assert client.post("/segments/preview", json={"filter": {}}, headers=reader).status_code == 200
    refused = client.post("/segments", json={"name": "X", "filter": {}}, headers=reader)
    assert refused.status_code == 403
    with db.read(unscoped="test") as session:
        assert session.query(Segment).count() == 0
