"""Contacts over the API: create, filters, pagination, updates, tags, scopes, isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from puente.db.session import Database
from tests.api.conftest import Tenant, make_tenant
from tests.factories import make_contact


def _create(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    response = client.post("/contacts", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def test_create_contact_normalises_the_phone(client: TestClient, tenant: Tenant) -> None:
    created = _create(
        client,
        tenant,
        phone="+52 55 1234 5678",
        name="Lucía",
        custom_fields={"plan": "gold"},
        tags=["vip"],
    )
    assert created["phone"] == "+525512345678"
    assert created["wa_id"] == "525512345678"
    assert created["name"] == "Lucía"
    assert created["sources"] == ["api"]
    assert created["tags"] == ["vip"]
    assert created["custom_fields"] == {"plan": "gold"}
    fetched = client.get(f"/contacts/{created['id']}", headers=tenant.auth).json()
    assert fetched == created


def test_invalid_phone_is_422_naming_the_field(client: TestClient, tenant: Tenant) -> None:
    bad = client.post("/contacts", json={"phone": "12"}, headers=tenant.auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"] == [
        {"field": "phone", "message": "'12' is not a valid phone number"}
    ]
    missing = client.post("/contacts", json={"name": "No number"}, headers=tenant.auth)
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "phone"


def test_duplicate_contact_is_409_with_existing_id(client: TestClient, tenant: Tenant) -> None:
    first = _create(client, tenant, phone="+525512345678")
    again = client.post("/contacts", json={"phone": "52 55 1234 5678"}, headers=tenant.auth)
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"existing_id": first["id"]}
    by_wa_id = client.post("/contacts", json={"wa_id": "525512345678"}, headers=tenant.auth)
    assert by_wa_id.status_code == 409


def test_filters_by_phone_written_any_way_and_by_name(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_contact(session, tenant.workspace, wa_id="34612345678", profile_name="Ana Pérez")
        make_contact(
            session,
            tenant.workspace,
            wa_id="34622223333",
            business_app_name="Tío Beto",
            sources=["business_app"],
        )
        make_contact(session, tenant.workspace, wa_id="14155550100", name="Carla 100%")

    def ids(**params: str) -> list[str | None]:
        response = client.get("/contacts", params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        return [c["wa_id"] for c in response.json()["items"]]

    assert ids(phone="+34 612 34 56 78") == ["34612345678"]
    assert ids(phone="34612345678") == ["34612345678"]
    assert ids(q="pérez") == ["34612345678"]
    assert ids(q="BETO") == ["34622223333"]
    assert ids(q="3333") == ["34622223333"]
    assert ids(q="100%") == ["14155550100"]
    assert ids(q="%") == ["14155550100"]
    assert ids(source="business_app") == ["34622223333"]
    assert ids() == ["14155550100", "34622223333", "34612345678"]

    contact = client.get("/contacts", params={"q": "beto"}, headers=tenant.auth).json()["items"][0]
    assert contact["sources"] == ["business_app"]
    assert contact["name"] == "Tío Beto"

    bad = client.get("/contacts", params={"phone": "abc"}, headers=tenant.auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "phone"
    bad_source = client.get("/contacts", params={"source": "fax"}, headers=tenant.auth)
    assert bad_source.status_code == 422
    assert bad_source.json()["error"]["details"][0]["field"] == "source"


def test_pages_through_every_contact_once(client: TestClient, tenant: Tenant, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        expected = [make_contact(session, tenant.workspace).id for _ in range(7)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = client.get("/contacts", params=params, headers=tenant.auth).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(expected, reverse=True)
    assert pages == 3

    tampered = client.get("/contacts", params={"cursor": "garbage!"}, headers=tenant.auth)
    assert tampered.status_code == 422
    assert tampered.json()["error"]["details"][0]["field"] == "cursor"


def test_patch_changes_name_and_merges_fields_but_not_the_phone_name(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        contact = make_contact(session, tenant.workspace, business_app_name="Beto (phone)")
    url = f"/contacts/{contact.id}"
    first = client.patch(
        url,
        json={"name": "Roberto", "custom_fields": {"city": "CDMX", "plan": "basic"}},
        headers=tenant.auth,
    )
    assert first.status_code == 200, first.text
    assert first.json()["name"] == "Roberto"
    second = client.patch(
        url, json={"custom_fields": {"plan": None, "tier": 2}}, headers=tenant.auth
    ).json()
    assert second["custom_fields"] == {"city": "CDMX", "tier": 2}
    assert second["name"] == "Roberto"
    assert second["business_app_name"] == "Beto (phone)"

    refused = client.patch(url, json={"business_app_name": "Hacked"}, headers=tenant.auth)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "business_app_name"

    cleared = client.patch(url, json={"name": None}, headers=tenant.auth).json()
    assert cleared["name"] == "Beto (phone)"  # falls back to the phone's name
    assert cleared["business_app_name"] == "Beto (phone)"


def test_tags_add_replace_remove_and_filter(client: TestClient, tenant: Tenant) -> None:
    contact = _create(client, tenant, phone="+14155550199")
    other = _create(client, tenant, phone="+14155550198", tags=["vip"])
    url = f"/contacts/{contact['id']}/tags"

    added = client.post(url, json={"tags": ["vip", "lead", "vip"]}, headers=tenant.auth)
    assert added.json()["tags"] == ["lead", "vip"]
    again = client.post(url, json={"tags": ["lead"]}, headers=tenant.auth)
    assert again.json()["tags"] == ["lead", "vip"]

    vip = client.get("/contacts", params={"tag": "vip"}, headers=tenant.auth).json()["items"]
    assert {c["id"] for c in vip} == {contact["id"], other["id"]}

    replaced = client.put(url, json={"tags": ["customer"]}, headers=tenant.auth)
    assert replaced.json()["tags"] == ["customer"]
    removed = client.delete(f"{url}/customer", headers=tenant.auth)
    assert removed.status_code == 200
    assert removed.json()["tags"] == []
    assert client.get(f"/contacts/{other['id']}", headers=tenant.auth).json()["tags"] == ["vip"]

    empty = client.post(url, json={"tags": ["  "]}, headers=tenant.auth)
    assert empty.status_code == 422
    assert empty.json()["error"]["details"][0]["field"] == "tags"
    control = client.post(url, json={"tags": ["a\tb"]}, headers=tenant.auth)
    assert control.status_code == 422
    assert "control characters" in control.json()["error"]["details"][0]["message"]
    assert client.get(f"/contacts/{contact['id']}", headers=tenant.auth).json()["tags"] == []


def test_read_only_token_cannot_write(client: TestClient, db: Database) -> None:
    reader = make_tenant(db, "Read only", ["contacts:read"])
    denied = client.post("/contacts", json={"phone": "+14155550123"}, headers=reader.auth)
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "missing_scope",
        "message": "this token lacks the 'contacts:write' scope",
    }
    assert client.get("/contacts", headers=reader.auth).status_code == 200
    nothing = make_tenant(db, "No scopes", ["channels:read"])
    assert client.get("/contacts", headers=nothing.auth).status_code == 403


def test_other_workspaces_contacts_are_invisible(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    mine = _create(client, tenant, phone="+14155550111", tags=["vip"])
    other = make_tenant(db, "Other")
    for method, url, body in [
        ("GET", f"/contacts/{mine['id']}", None),
        ("PATCH", f"/contacts/{mine['id']}", {"name": "x"}),
        ("PUT", f"/contacts/{mine['id']}/tags", {"tags": ["x"]}),
        ("POST", f"/contacts/{mine['id']}/tags", {"tags": ["x"]}),
        ("DELETE", f"/contacts/{mine['id']}/tags/vip", None),
    ]:
        response = client.request(method, url, json=body, headers=other.auth)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/contacts", headers=other.auth).json()["items"] == []
    # The same number may be a contact in both workspaces.
    assert (
        client.post("/contacts", json={"phone": "+14155550111"}, headers=other.auth).status_code
        == 201
    )
    assert client.get(f"/contacts/{mine['id']}", headers=tenant.auth).json()["tags"] == ["vip"]
