"""Workflows over the API: create, publish (refused with every problem named), switch on,
export and import, start a run by API call (idempotent), scopes and workspace isolation."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from puente.accounts.models import Workspace
from puente.automation.workflows.models import WorkflowRun
from puente.db.session import Database
from tests.api.conftest import Tenant, make_tenant
from tests.factories import make_channel, make_contact, make_conversation, make_token

GREETING: dict[str, Any] = {
    "version": 1,
    "trigger": {"type": "api"},
    "steps": [
        {"id": "hello", "type": "send_message", "text": "Hola {contact.name|}", "next": "tag"},
        {"id": "tag", "type": "add_tag", "tag": "api"},
    ],
}


def _create(
    client: TestClient, tenant: Tenant, definition: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    body = {"name": "Greeting", "definition": definition or GREETING, **more}
    response = client.post("/workflows", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _switched_on(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    workflow = _create(client, tenant)
    assert client.post(f"/workflows/{workflow['id']}/publish", headers=tenant.auth).is_success
    enabled = client.post(f"/workflows/{workflow['id']}/enable", headers=tenant.auth)
    assert enabled.status_code == 200, enabled.text
    return workflow


def test_a_workflow_is_created_as_a_draft_and_listed(client: TestClient, tenant: Tenant) -> None:
    created = _create(client, tenant, description="Says hello")
    assert created["name"] == "Greeting" and created["description"] == "Says hello"
    assert (created["enabled"], created["published_version"], created["draft_changed"]) == (
        False,
        None,
        True,
    )
    assert created["definition"] == GREETING
    assert created["published_definition"] is None
    listed = client.get("/workflows", headers=tenant.auth).json()["items"]
    assert [(w["id"], w["name"]) for w in listed] == [(created["id"], "Greeting")]
    assert client.get(f"/workflows/{created['id']}", headers=tenant.auth).json() == created


def test_publish_is_refused_with_every_problem_named(client: TestClient, tenant: Tenant) -> None:
    broken = {
        "trigger": {"type": "message_received", "match": "keyword"},
        "steps": [
            {"id": "assign", "type": "assign", "next": "nowhere"},
            {"id": "hello", "type": "send_message"},
        ],
    }
    workflow = _create(client, tenant, broken)
    refused = client.post(f"/workflows/{workflow['id']}/publish", headers=tenant.auth)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "workflow_invalid"
    assert error["message"].startswith("The workflow cannot be published: ")
    assert {(d["field"], d["message"]) for d in error["details"]} == {
        ("trigger.keywords", "Give at least one keyword or phrase."),
        ("steps.assign", "It goes to “nowhere”, which is not a step."),
        ("steps.assign.agent_id", "Choose an agent or a team."),
        ("steps.hello.text", "Write the text to send."),
    }
    after = client.get(f"/workflows/{workflow['id']}", headers=tenant.auth).json()
    assert after["published_version"] is None


def test_publish_then_enable_and_disable(client: TestClient, tenant: Tenant) -> None:
    workflow = _create(client, tenant)
    off_unpublished = client.post(f"/workflows/{workflow['id']}/enable", headers=tenant.auth)
    assert off_unpublished.status_code == 409
    assert off_unpublished.json()["error"]["code"] == "not_published"

    published = client.post(f"/workflows/{workflow['id']}/publish", headers=tenant.auth)
    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["published_version"], body["trigger_type"], body["draft_changed"]) == (
        1,
        "api",
        False,
    )
    assert body["published_definition"] == GREETING

    on = client.post(f"/workflows/{workflow['id']}/enable", headers=tenant.auth)
    assert on.json()["enabled"] is True
    changed = {**GREETING, "steps": [{"id": "hello", "type": "send_message", "text": "Hi"}]}
    edited = client.put(
        f"/workflows/{workflow['id']}",
        json={"name": "Greeting 2", "definition": changed},
        headers=tenant.auth,
    ).json()
    # The draft changed; the published version stays until it is published again.
    assert (edited["name"], edited["draft_changed"], edited["published_version"]) == (
        "Greeting 2",
        True,
        1,
    )
    assert edited["published_definition"] == GREETING
    again = client.post(f"/workflows/{workflow['id']}/publish", headers=tenant.auth).json()
    assert again["published_version"] == 2 and again["published_definition"] == changed
    off = client.post(f"/workflows/{workflow['id']}/disable", headers=tenant.auth)
    assert off.json()["enabled"] is False


def test_an_invalid_definition_is_refused_naming_the_field(
    client: TestClient, tenant: Tenant
) -> None:
    bad_step = {**GREETING, "steps": [{"id": "x", "type": "send_message", "colour": "red"}]}
    refused = client.post(
        "/workflows", json={"name": "Bad", "definition": bad_step}, headers=tenant.auth
    )
    assert refused.status_code == 422
    fields = [d["field"] for d in refused.json()["error"]["details"]]
    assert fields == ["definition.steps.0.colour"]
    no_name = client.post(
        "/workflows", json={"name": " ", "definition": GREETING}, headers=tenant.auth
    )
    assert no_name.status_code == 422
    assert no_name.json()["error"]["details"] == [{"field": "name", "message": "required"}]


def test_export_and_import_make_the_same_workflow_elsewhere(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    workflow = _create(client, tenant, description="Says hello")
    exported = client.get(f"/workflows/{workflow['id']}/export", headers=tenant.auth)
    assert exported.status_code == 200
    document = exported.json()
    assert document == {
        "format": "puente.workflow",
        "version": 1,
        "name": "Greeting",
        "description": "Says hello",
        "definition": GREETING,
    }
    unpublished = client.get(
        f"/workflows/{workflow['id']}/export", params={"published": "true"}, headers=tenant.auth
    )
    assert unpublished.status_code == 409

    other = make_tenant(db, "Other shop")
    imported = client.post("/workflows/import", json=document, headers=other.auth)
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert copy["id"] != workflow["id"]
    assert (copy["name"], copy["description"], copy["definition"]) == (
        "Greeting",
        "Says hello",
        GREETING,
    )
    assert copy["enabled"] is False and copy["published_version"] is None
    round_trip = client.get(f"/workflows/{copy['id']}/export", headers=other.auth).json()
    assert round_trip == document


def test_an_import_with_an_unknown_field_is_refused_naming_it(
    client: TestClient, tenant: Tenant
) -> None:
    document = {
        "format": "puente.workflow",
        "version": 1,
        "name": "Greeting",
        "description": "",
        "definition": GREETING,
    }
    top = client.post("/workflows/import", json={**document, "owner": "x"}, headers=tenant.auth)
    assert top.status_code == 422
    assert top.json()["error"]["message"] == "Unknown field in the workflow file: owner."
    assert top.json()["error"]["details"] == [{"field": "owner", "message": "unknown field"}]

    inner = {**GREETING, "steps": [{**GREETING["steps"][1], "colour": "red"}]}
    nested = client.post(
        "/workflows/import", json={**document, "definition": inner}, headers=tenant.auth
    )
    assert nested.status_code == 422
    assert "steps.0.colour: unknown field" in nested.json()["error"]["message"]
    assert client.get("/workflows", headers=tenant.auth).json()["items"] == []


def test_an_import_of_another_version_is_refused(client: TestClient, tenant: Tenant) -> None:
    document = {
        "format": "puente.workflow",
        "version": 2,
        "name": "Greeting",
        "description": "",
        "definition": GREETING,
    }
    refused = client.post("/workflows/import", json=document, headers=tenant.auth)
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        "This workflow file is version 2; this Puente reads version 1."
    )
    inner = {**document, "version": 1, "definition": {**GREETING, "version": 3}}
    refused_inner = client.post("/workflows/import", json=inner, headers=tenant.auth)
    assert refused_inner.status_code == 422
    assert "format version 3" in refused_inner.json()["error"]["message"]
    not_a_file = client.post("/workflows/import", json=["x"], headers=tenant.auth)
    assert not_a_file.status_code == 422


def test_delete_removes_the_workflow(client: TestClient, tenant: Tenant) -> None:
    workflow = _create(client, tenant)
    assert client.delete(f"/workflows/{workflow['id']}", headers=tenant.auth).status_code == 204
    assert client.get(f"/workflows/{workflow['id']}", headers=tenant.auth).status_code == 404


def test_a_token_without_automation_write_reads_but_cannot_change(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    workflow = _create(client, tenant)
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, tenant.workspace.id)
        assert workspace is not None
        reader = {"Authorization": f"Bearer {make_token(session, workspace, ['automation:read'])}"}
        other = {"Authorization": f"Bearer {make_token(session, workspace, ['contacts:read'])}"}
    assert client.get("/workflows", headers=reader).status_code == 200
    assert client.get(f"/workflows/{workflow['id']}/export", headers=reader).status_code == 200
    for method, path, body in [
        ("POST", "/workflows", {"name": "x", "definition": GREETING}),
        ("PUT", f"/workflows/{workflow['id']}", {"name": "x", "definition": GREETING}),
        ("POST", f"/workflows/{workflow['id']}/publish", None),
        ("POST", f"/workflows/{workflow['id']}/enable", None),
        ("POST", f"/workflows/{workflow['id']}/runs", {"contact_id": 1}),
        ("DELETE", f"/workflows/{workflow['id']}", None),
    ]:
        refused = client.request(method, path, json=body, headers=reader)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["error"]["code"] == "missing_scope"
    assert client.get("/workflows", headers=other).status_code == 403


def test_another_workspaces_workflow_and_run_are_not_found(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    workflow = _create(client, tenant)
    stranger = make_tenant(db, "Elsewhere")
    wid = workflow["id"]
    for method, path in [
        ("GET", f"/workflows/{wid}"),
        ("PUT", f"/workflows/{wid}"),
        ("DELETE", f"/workflows/{wid}"),
        ("POST", f"/workflows/{wid}/publish"),
        ("POST", f"/workflows/{wid}/enable"),
        ("GET", f"/workflows/{wid}/export"),
        ("GET", f"/workflows/{wid}/runs"),
        ("POST", f"/workflows/{wid}/runs"),
    ]:
        body: dict[str, Any] | None = None
        if method == "PUT":
            body = {"name": "x", "definition": GREETING}
        elif path.endswith("/runs") and method == "POST":
            body = {"contact_id": 1}
        response = client.request(method, path, json=body, headers=stranger.auth)
        assert response.status_code == 404, (method, path, response.text)
    assert client.get("/workflows", headers=stranger.auth).json()["items"] == []
    assert client.get(f"/workflows/{wid}", headers=tenant.auth).status_code == 200


def test_an_api_call_starts_a_ready_run_once_per_idempotency_key(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, tenant.workspace.id)
        assert workspace is not None
        channel = make_channel(session, workspace)
        contact = make_contact(session, workspace, name="Lucía")
        conversation = make_conversation(session, channel, contact)
        contact_id, conversation_id = contact.id, conversation.id
    workflow = _switched_on(client, tenant)
    path = f"/workflows/{workflow['id']}/runs"
    body = {"contact_id": contact_id, "variables": {"order": "A-17", "total": 250}}

    started = client.post(path, json={**body, "idempotency_key": "order-A-17"}, headers=tenant.auth)
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["status"], run["trigger"], run["step_id"], run["test"]) == (
        "ready",
        "api",
        "hello",
        False,
    )
    assert (run["contact_id"], run["conversation_id"]) == (contact_id, conversation_id)
    assert run["variables"]["vars"] == {"order": "A-17", "total": 250}

    again = client.post(path, json={**body, "idempotency_key": "order-A-17"}, headers=tenant.auth)
    assert again.status_code == 200
    assert again.json()["id"] == run["id"]
    other_key = client.post(path, json={**body, "idempotency_key": "B-2"}, headers=tenant.auth)
    assert other_key.status_code == 201 and other_key.json()["id"] != run["id"]
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(WorkflowRun.id, WorkflowRun.status).order_by(WorkflowRun.id)
        ).all()
    assert [tuple(r) for r in rows] == [(run["id"], "ready"), (other_key.json()["id"], "ready")]

    listed = client.get(path, headers=tenant.auth).json()["items"]
    assert [r["id"] for r in listed] == [other_key.json()["id"], run["id"]]
    assert client.get(path, params={"status": "failed"}, headers=tenant.auth).json() == {
        "items": []
    }
    detail = client.get(f"/workflow-runs/{run['id']}", headers=tenant.auth).json()
    assert detail["id"] == run["id"] and detail["steps"] == []
    summary = client.get(f"/workflows/{workflow['id']}", headers=tenant.auth).json()
    assert summary["active_runs"] == 2


def test_a_run_by_phone_finds_or_makes_the_contact(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, tenant.workspace.id)
        assert workspace is not None
        channel_id = make_channel(session, workspace).id
        known = make_contact(session, workspace, wa_id="5215512345678").id
    workflow = _switched_on(client, tenant)
    path = f"/workflows/{workflow['id']}/runs"

    by_known_phone = client.post(path, json={"phone": "+5215512345678"}, headers=tenant.auth)
    assert by_known_phone.status_code == 201, by_known_phone.text
    assert by_known_phone.json()["contact_id"] == known

    unknown = {"phone": "+5215587654321"}
    needs_channel = client.post(path, json=unknown, headers=tenant.auth)
    assert needs_channel.status_code == 422
    assert needs_channel.json()["error"]["details"][0]["field"] == "channel_id"
    made = client.post(path, json={**unknown, "channel_id": channel_id}, headers=tenant.auth)
    assert made.status_code == 201, made.text
    assert made.json()["contact_id"] not in (None, known)
    assert made.json()["conversation_id"] is not None

    both = client.post(
        path, json={"phone": "+5215587654321", "contact_id": known}, headers=tenant.auth
    )
    assert both.status_code == 422
    bad = client.post(path, json={"phone": "12"}, headers=tenant.auth)
    assert bad.json()["error"]["details"][0]["field"] == "phone"
    missing = client.post(path, json={"contact_id": 999999}, headers=tenant.auth)
    assert missing.status_code == 404


def test_only_a_switched_on_api_or_manual_workflow_starts_by_api(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, tenant.workspace.id)
        assert workspace is not None
        make_channel(session, workspace)
        contact_id = make_contact(session, workspace).id
    draft = _create(client, tenant)
    off = client.post(
        f"/workflows/{draft['id']}/runs", json={"contact_id": contact_id}, headers=tenant.auth
    )
    assert off.status_code == 409 and off.json()["error"]["code"] == "workflow_off"

    on_close = _create(
        client, tenant, {**GREETING, "trigger": {"type": "conversation_closed"}}, name="On close"
    )
    client.post(f"/workflows/{on_close['id']}/publish", headers=tenant.auth)
    client.post(f"/workflows/{on_close['id']}/enable", headers=tenant.auth)
    wrong = client.post(
        f"/workflows/{on_close['id']}/runs", json={"contact_id": contact_id}, headers=tenant.auth
    )
    assert wrong.status_code == 409
    assert wrong.json()["error"]["code"] == "wrong_trigger"
    assert "conversation_closed" in wrong.json()["error"]["message"]
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(WorkflowRun)) == 0


def test_only_a_failed_run_is_retried(client: TestClient, tenant: Tenant, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, tenant.workspace.id)
        assert workspace is not None
        make_channel(session, workspace)
        contact_id = make_contact(session, workspace).id
    workflow = _switched_on(client, tenant)
    run = client.post(
        f"/workflows/{workflow['id']}/runs", json={"contact_id": contact_id}, headers=tenant.auth
    ).json()
    not_failed = client.post(f"/workflow-runs/{run['id']}/retry", headers=tenant.auth)
    assert not_failed.status_code == 409
    assert not_failed.json()["error"]["code"] == "not_failed"

    with db.unit_of_work(unscoped="test") as session:
        row = session.get(WorkflowRun, run["id"])
        assert row is not None
        row.status, row.error, row.step_id = "failed", "The template was paused.", "tag"
    failed = client.get(
        f"/workflows/{workflow['id']}/runs", params={"status": "failed"}, headers=tenant.auth
    ).json()["items"]
    assert [(r["id"], r["error"]) for r in failed] == [(run["id"], "The template was paused.")]
    retried = client.post(f"/workflow-runs/{run['id']}/retry", headers=tenant.auth)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["step_id"], retried.json()["error"]) == (
        "ready",
        "tag",
        None,
    )
    stranger = make_tenant(db, "Elsewhere")
    assert client.get(f"/workflow-runs/{run['id']}", headers=stranger.auth).status_code == 404
    assert (
        client.post(f"/workflow-runs/{run['id']}/retry", headers=stranger.auth).status_code == 404
    )


def test_every_route_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/workflows"]) == {"get", "post"}
    assert set(paths["/workflows/{workflow_id}"]) == {"get", "put", "delete"}
    for path in ("publish", "enable", "disable", "export", "runs"):
        assert f"/workflows/{{workflow_id}}/{path}" in paths
    assert set(paths["/workflows/{workflow_id}/runs"]) == {"get", "post"}
    assert "/workflows/import" in paths
    assert "/workflow-runs/{run_id}" in paths and "/workflow-runs/{run_id}/retry" in paths
