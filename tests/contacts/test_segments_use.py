"""Segments where they are used: a broadcast to a segment reaches exactly its contacts
(through the broadcast and outbox workers, against the Meta sandbox), and a workflow
branches on whether the contact is in a segment (refused at publish when the segment
does not exist)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.automation.workflows.worker import run_step
from puente.contacts.models import ContactTag, Tag
from puente.db.session import Database
from tests.api.conftest import Tenant, client, make_tenant  # noqa: F401 (a fixture)
from tests.factories import make_channel, make_contact, make_conversation
from tests.outbound.test_broadcasts import CUSTOMERS, World, world  # noqa: F401 (a fixture)
from tests.waiting import wait_until


def test_a_broadcast_to_a_segment_reaches_exactly_its_contacts(world: World) -> None:  # noqa: F811
    # Three of the four customers have an order number; the fourth is left out.
    segment = world.api.post(
        "/segments",
        json={
            "name": "Con pedido",
            "filter": {"tags_any": ["clientes"], "fields": [{"key": "pedido", "op": "set"}]},
        },
        headers=world.auth,
    )
    assert segment.status_code == 201, segment.text
    assert segment.json()["count"] == 3
    created = world.create(
        {
            "name": "Pedidos",
            "template": {"name": "pedido_confirmado", "language": "es"},
            "variables": {"body.1": "{first_name|cliente}", "body.2": "{custom.pedido}"},
            "audience": {"kind": "segment", "segment_id": segment.json()["id"]},
        }
    )
    assert created["total"] == 3
    wait_until(
        lambda: world.get(created["id"])["state"] == "completed", what="the broadcast to finish"
    )
    expected = sorted(wa_id for wa_id, name in CUSTOMERS if name)
    assert sorted(m["customer"].lstrip("+") for m in world.sent()) == expected
    assert sorted(r["phone"].lstrip("+") for r in world.recipients(created["id"])) == expected


BRANCH: dict[str, Any] = {
    "version": 1,
    "trigger": {"type": "api"},
    "steps": [
        {
            "id": "check",
            "type": "branch",
            "conditions": {"rules": [{"field": "contact.segment", "op": "eq", "value": "VIP"}]},
            "next": "inside",
            "otherwise": "outside",
        },
        {"id": "inside", "type": "add_tag", "tag": "en-segmento"},
        {"id": "outside", "type": "add_tag", "tag": "fuera"},
    ],
}


def test_a_workflow_branches_on_a_segment(
    client: TestClient,  # noqa: F811
    db: Database,
) -> None:
    tenant: Tenant = make_tenant(db, "Tienda")
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, tenant.workspace.id)
        assert ws is not None
        channel = make_channel(session, ws)
        vip, plain = make_contact(session, ws, name="Vip"), make_contact(session, ws, name="Nada")
        tag = Tag(workspace_id=ws.id, name="vip")
        session.add(tag)
        session.flush()
        session.add(ContactTag(workspace_id=ws.id, contact_id=vip.id, tag_id=tag.id))
        for contact in (vip, plain):
            make_conversation(session, channel, contact)
        ids = {"vip": vip.id, "plain": plain.id}
    auth = tenant.auth

    workflow = client.post(
        "/workflows", json={"name": "Según segmento", "definition": BRANCH}, headers=auth
    ).json()
    refused = client.post(f"/workflows/{workflow['id']}/publish", headers=auth)
    assert refused.status_code == 422
    assert any(
        d["message"] == "There is no segment “VIP”." for d in refused.json()["error"]["details"]
    ), refused.text

    client.post("/segments", json={"name": "VIP", "filter": {"tags_any": ["vip"]}}, headers=auth)
    assert client.post(f"/workflows/{workflow['id']}/publish", headers=auth).is_success
    assert client.post(f"/workflows/{workflow['id']}/enable", headers=auth).is_success
    for contact_id in ids.values():
        started = client.post(
            f"/workflows/{workflow['id']}/runs", json={"contact_id": contact_id}, headers=auth
        )
        assert started.status_code == 201, started.text
    while run_step(db):
        pass
    tags = {
        name: client.get(f"/contacts/{contact_id}", headers=auth).json()["tags"]
        for name, contact_id in ids.items()
    }
    assert tags == {"vip": ["en-segmento", "vip"], "plain": ["fuera"]}
