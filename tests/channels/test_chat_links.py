"""Chat links over the API: a wa.me link with prefilled text and its reference, its QR
codes (read back module by module), editing, deleting, another workspace's links out of
reach, and the refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import segno
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.api.conftest import Tenant, make_tenant
from tests.channels.qr_images import PNG_SIGNATURE, png_modules, svg_modules
from tests.factories import make_token

NUMBER = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "+1 (555) 078-3881",
    "name": "Tienda",
    "mode": "coexistence",
    "access_token": "EAAG-test",
}


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, db, run_workers=False)
    with TestClient(app, base_url="http://testserver/api/v1") as c:
        yield c


@pytest.fixture
def tenant(db: Database) -> Tenant:
    return make_tenant(db, "Tienda")


def _channel(client: TestClient, tenant: Tenant, **overrides: str) -> int:
    res = client.post("/channels", json={**NUMBER, **overrides}, headers=tenant.auth)
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def _modules(url: str) -> list[list[bool]]:
    return [[bool(v) for v in row] for row in segno.make(url, error="m").matrix]


def test_a_link_opens_the_number_with_its_text_and_reference(
    client: TestClient, tenant: Tenant
) -> None:
    channel_id = _channel(client, tenant)
    res = client.post(
        f"/channels/{channel_id}/chat-links",
        json={"name": "Cartel de la vitrina", "text": "Hola, quiero ver el menú del día"},
        headers=tenant.auth,
    )
    assert res.status_code == 201, res.text
    link = res.json()
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{6}", link["code"])
    assert link["prefilled_text"] == f"Hola, quiero ver el menú del día (ref: {link['code']})"
    parts = urlsplit(link["url"])
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "wa.me", "/15550783881")
    assert parse_qs(parts.query) == {"text": [link["prefilled_text"]]}
    assert link["conversations"] == 0
    assert link["created_by"].startswith("token")

    assert client.get(f"/channels/{channel_id}/chat-links", headers=tenant.auth).json() == [link]
    got = client.get(f"/channels/{channel_id}/chat-links/{link['id']}", headers=tenant.auth)
    assert got.json() == link


def test_its_qr_codes_encode_the_link(client: TestClient, tenant: Tenant) -> None:
    channel_id = _channel(client, tenant)
    link = client.post(
        f"/channels/{channel_id}/chat-links",
        json={"name": "Mesa 4", "text": "¿Me traen la carta? 🍽️"},
        headers=tenant.auth,
    ).json()
    expected = _modules(link["url"])

    png = client.get(link["qr_png"].removeprefix("/api/v1"), headers=tenant.auth)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    assert png_modules(png.content, scale=10) == expected

    svg = client.get(link["qr_svg"].removeprefix("/api/v1"), headers=tenant.auth)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg_modules(svg.content) == expected  # well-formed XML, the same modules
    assert b"<title>Mesa 4</title>" in svg.content

    small = client.get(
        link["qr_png"].removeprefix("/api/v1"), params={"scale": 3}, headers=tenant.auth
    )
    assert png_modules(small.content, scale=3) == expected
    assert len(small.content) < len(png.content)


def test_editing_keeps_the_reference_and_deleting_removes_the_link(
    client: TestClient, tenant: Tenant
) -> None:
    channel_id = _channel(client, tenant)
    base = f"/channels/{channel_id}/chat-links"
    link = client.post(base, json={"name": "Volante", "text": "Hola"}, headers=tenant.auth).json()

    res = client.patch(
        f"{base}/{link['id']}", json={"text": "Hola, vengo del volante"}, headers=tenant.auth
    )
    assert res.status_code == 200, res.text
    changed = res.json()
    assert (changed["name"], changed["code"]) == ("Volante", link["code"])
    assert changed["prefilled_text"] == f"Hola, vengo del volante (ref: {link['code']})"
    renamed = client.patch(f"{base}/{link['id']}", json={"name": "Flyer"}, headers=tenant.auth)
    assert renamed.json()["text"] == "Hola, vengo del volante"

    assert client.delete(f"{base}/{link['id']}", headers=tenant.auth).status_code == 204
    assert client.get(f"{base}/{link['id']}", headers=tenant.auth).status_code == 404
    assert client.get(f"{base}/{link['id']}/qr.png", headers=tenant.auth).status_code == 404
    assert client.get(base, headers=tenant.auth).json() == []


def test_an_empty_text_opens_the_chat_with_the_reference_alone(
    client: TestClient, tenant: Tenant
) -> None:
    channel_id = _channel(client, tenant)
    res = client.post(
        f"/channels/{channel_id}/chat-links", json={"name": "Solo código"}, headers=tenant.auth
    )
    assert res.status_code == 201, res.text
    link = res.json()
    assert link["text"] == ""
    assert link["prefilled_text"] == f"(ref: {link['code']})"


def test_another_workspace_cannot_see_or_touch_the_links(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    channel_id = _channel(client, tenant)
    base = f"/channels/{channel_id}/chat-links"
    link = client.post(base, json={"name": "Web", "text": "Hola"}, headers=tenant.auth).json()
    other = make_tenant(db, "Competencia")
    theirs = _channel(
        client, other, phone_number_id="999000111", display_phone_number="573001112233"
    )

    assert client.get(base, headers=other.auth).status_code == 404
    assert client.post(base, json={"name": "x"}, headers=other.auth).status_code == 404
    for path in ("", "/qr.svg", "/qr.png"):
        assert client.get(f"{base}/{link['id']}{path}", headers=other.auth).status_code == 404
    assert (
        client.patch(f"{base}/{link['id']}", json={"name": "x"}, headers=other.auth).status_code
        == 404
    )
    assert client.delete(f"{base}/{link['id']}", headers=other.auth).status_code == 404
    # Nor through a number of their own: a link belongs to its number.
    crossed = f"/channels/{theirs}/chat-links/{link['id']}"
    assert client.get(crossed, headers=other.auth).status_code == 404
    assert client.get(f"/channels/{theirs}/chat-links", headers=other.auth).json() == []
    assert client.get(f"{base}/{link['id']}", headers=tenant.auth).json()["name"] == "Web"


def test_bad_input_is_refused_with_the_field_named(client: TestClient, tenant: Tenant) -> None:
    channel_id = _channel(client, tenant)
    base = f"/channels/{channel_id}/chat-links"

    unknown = client.post("/channels/987654/chat-links", json={"name": "x"}, headers=tenant.auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert client.get(f"{base}/987654", headers=tenant.auth).status_code == 404

    def refused(body: dict[str, object]) -> list[str]:
        res = client.post(base, json=body, headers=tenant.auth)
        assert res.status_code == 422, res.text
        return [d["field"] for d in res.json()["error"]["details"]]

    assert refused({"name": "Largo", "text": "a" * 301}) == ["text"]
    assert refused({"name": "", "text": "Hola"}) == ["name"]
    assert refused({"name": "   ", "text": "Hola"}) == ["name"]
    assert refused({"name": "n" * 121}) == ["name"]
    assert refused({"name": "Doble", "text": "Hola (ref: ABC234)"}) == ["text"]
    assert refused({"name": "Extra", "code": "AAAAAA"}) == ["code"]
    assert client.get(base, headers=tenant.auth).json() == []

    link = client.post(base, json={"name": "Bien"}, headers=tenant.auth).json()
    too_big = client.get(f"{base}/{link['id']}/qr.png?scale=41", headers=tenant.auth)
    assert too_big.status_code == 422
    long_text = client.patch(f"{base}/{link['id']}", json={"text": "b" * 301}, headers=tenant.auth)
    assert long_text.status_code == 422
    assert client.get(f"{base}/{link['id']}", headers=tenant.auth).json()["text"] == ""


def test_a_read_only_token_lists_and_downloads_but_cannot_change(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    channel_id = _channel(client, tenant)
    base = f"/channels/{channel_id}/chat-links"
    link = client.post(base, json={"name": "Web"}, headers=tenant.auth).json()
    with db.unit_of_work(unscoped="test") as session:
        reader = {
            "Authorization": f"Bearer {make_token(session, tenant.workspace, ['channels:read'])}"
        }

    assert client.get(base, headers=reader).json() == [link]
    assert client.get(f"{base}/{link['id']}/qr.svg", headers=reader).status_code == 200
    for res in (
        client.post(base, json={"name": "x"}, headers=reader),
        client.patch(f"{base}/{link['id']}", json={"name": "x"}, headers=reader),
        client.delete(f"{base}/{link['id']}", headers=reader),
    ):
        assert res.status_code == 403
        assert res.json()["error"]["code"] == "missing_scope"
