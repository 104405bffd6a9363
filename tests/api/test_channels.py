"""Channels over the API: connecting a number by hand, limits, duplicates, secrecy."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.channels.models import Channel
from puente.config import Settings
from puente.db.session import Database
from puente.secrets import secret_box
from tests.api.conftest import Tenant, make_tenant

NEW = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "+1 (555) 078-3881",
    "name": "Ventas",
    "mode": "coexistence",
    "access_token": "EAAG-secret-system-user-token",
}


def test_create_channel_stores_digits_and_encrypted_token(
    client: TestClient,
    tenant: Tenant,
    db: Database,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        created = client.post("/channels", json=NEW, headers=tenant.auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["display_phone_number"] == "15550783881"
    assert body["mode"] == "coexistence"
    assert body["throughput_mps"] == 20
    assert body["name"] == "Ventas"
    assert "access_token" not in created.text and NEW["access_token"] not in created.text
    assert NEW["access_token"] not in caplog.text

    with db.read(unscoped="test") as session:
        row = session.scalar(select(Channel).where(Channel.id == body["id"]))
        assert row is not None and row.access_token_encrypted
        assert NEW["access_token"] not in row.access_token_encrypted
        assert secret_box(settings).decrypt(row.access_token_encrypted) == NEW["access_token"]

    listed = client.get("/channels", headers=tenant.auth).json()
    assert [c["phone_number_id"] for c in listed] == [NEW["phone_number_id"]]
    one = client.get(f"/channels/{body['id']}", headers=tenant.auth)
    assert one.json() == body


def test_cloud_api_mode_defaults_to_80_per_second(client: TestClient, tenant: Tenant) -> None:
    body = {**NEW, "mode": "cloud_api"}
    del body["name"]
    created = client.post("/channels", json=body, headers=tenant.auth).json()
    assert created["throughput_mps"] == 80
    assert created["name"] == "+15550783881"


def test_duplicate_phone_number_id_is_a_conflict(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    first = client.post("/channels", json=NEW, headers=tenant.auth)
    again = client.post("/channels", json=NEW, headers=tenant.auth)
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"existing_id": first.json()["id"]}
    assert "already connected" in again.json()["error"]["message"]

    # Another workspace learns the number is taken, not where.
    other = make_tenant(db, "Other")
    theirs = client.post("/channels", json=NEW, headers=other.auth)
    assert theirs.status_code == 409
    assert "details" not in theirs.json()["error"]


def test_workspace_channel_limit(client: TestClient, tenant: Tenant, settings: Settings) -> None:
    settings.max_channels_per_workspace = 2
    for n in range(2):
        body = {**NEW, "phone_number_id": f"20000000000000{n}"}
        assert client.post("/channels", json=body, headers=tenant.auth).status_code == 201
    over = client.post(
        "/channels", json={**NEW, "phone_number_id": "300000000000000"}, headers=tenant.auth
    )
    assert over.status_code == 409
    assert over.json()["error"]["code"] == "channel_limit"
    assert "limit of 2 channels" in over.json()["error"]["message"]


def test_bad_channel_input_names_the_fields(client: TestClient, tenant: Tenant) -> None:
    bad_mode = client.post("/channels", json={**NEW, "mode": "sms"}, headers=tenant.auth)
    assert bad_mode.status_code == 422
    assert [d["field"] for d in bad_mode.json()["error"]["details"]] == ["mode"]

    bad_id = client.post("/channels", json={**NEW, "phone_number_id": "abc"}, headers=tenant.auth)
    assert bad_id.status_code == 422
    assert bad_id.json()["error"]["details"][0]["field"] == "phone_number_id"

    missing = client.post("/channels", json={"waba_id": "1"}, headers=tenant.auth)
    fields = {d["field"] for d in missing.json()["error"]["details"]}
    assert {"phone_number_id", "display_phone_number", "access_token"} <= fields


def test_channels_need_their_scopes(client: TestClient, db: Database) -> None:
    reader = make_tenant(db, "Readers", ["channels:read"])
    denied = client.post("/channels", json=NEW, headers=reader.auth)
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "this token lacks the 'channels:write' scope"
    assert client.get("/channels", headers=reader.auth).status_code == 200


def test_another_workspaces_channel_is_not_found(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    mine = client.post("/channels", json=NEW, headers=tenant.auth).json()
    other = make_tenant(db, "Other")
    assert client.get(f"/channels/{mine['id']}", headers=other.auth).status_code == 404
    assert client.get("/channels", headers=other.auth).json() == []


@pytest.mark.parametrize(
    "token",
    [
        "EAAG…",
        "EAAGabcdefgh\r\nX-Evil: 1",
        "EAAG token with spaces",
        "EAAGñandú-token",
        "EAAG\x00abcdef",
    ],
)
def test_a_token_that_is_not_metas_shape_is_refused_before_it_is_stored(
    client: TestClient, tenant: Tenant, db: Database, token: str
) -> None:
    res = client.post("/channels", json={**NEW, "access_token": token}, headers=tenant.auth)
    assert res.status_code == 422, res.text
    details = res.json()["error"]["details"]
    assert details[0]["field"] == "access_token"
    assert "not a Meta access token" in details[0]["message"]
    with db.read(unscoped="test") as session:
        assert session.scalars(select(Channel)).all() == []
