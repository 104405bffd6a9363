"""Security scan of the REST API: schemathesis with a token that has no scopes (every
route but the token's own workspace must refuse it, never with a 5xx), and the audit of
refused tokens. The full run with a valid token is tests/api/test_schemathesis.py; the
walk of every web route with each role is tests/accounts/test_route_walk.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import update

from puente.accounts.models import ApiToken
from puente.api.deps import RefusalLimiter
from puente.api.routes import build_api
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from tests.accounts.test_privacy import audit_rows
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_token,
    make_workspace,
)

# Operations any valid token may call, whatever its scopes.
OPEN_TO_ANY_TOKEN = {("GET", "/workspace")}


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, db, run_workers=False)
    with TestClient(app, base_url="http://testserver/api/v1") as c:
        yield c


def test_a_token_without_scopes_is_refused_everywhere_without_5xx(
    settings: Settings, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Scan")
        token = make_token(session, ws, ["channels:read"])
        # No scope at all (the token forms refuse to make one, so strip it here).
        session.execute(update(ApiToken).values(scopes=[]))
        channel = make_channel(session, ws)
        make_conversation(session, channel, make_contact(session, ws))
    api = build_api(Runtime.from_settings(settings, db))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    auth = {"Authorization": f"Bearer {token}"}
    admitted: list[str] = []

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        if key in OPEN_TO_ANY_TOKEN:
            continue

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=3,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=auth, checks=[not_a_server_error])
            if response.status_code < 400:
                admitted.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        run()
    assert admitted == [], "routes that skip the scope check"


def test_scope_refusals_are_audited_after_the_rollback(client: TestClient, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Refusals")
        token = make_token(session, ws, ["channels:read"])
    headers = {"Authorization": f"Bearer {token}"}

    refused = client.get("/contacts", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "missing_scope",
        "message": "this token lacks the 'contacts:read' scope",
    }
    erase = client.delete("/contacts/1", headers=headers)
    assert erase.status_code == 403
    assert client.get("/channels", headers=headers).status_code == 200

    entries = audit_rows(db, ws.id, "access.denied")
    assert [(e.target, e.details) for e in entries] == [
        ("GET /api/v1/contacts", {"code": "missing_scope"}),
        ("DELETE /api/v1/contacts/1", {"code": "missing_scope"}),
    ]
    assert entries[0].actor == f"token {token[:10]}"


def test_wrong_tokens_are_audited_but_a_flood_is_capped(client: TestClient, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Flooded")

    missing = client.get("/contacts")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert audit_rows(db, None, "api.token_refused") == []

    for n in range(25):
        wrong = client.get("/contacts", headers={"Authorization": f"Bearer pnt_guess{n}"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_token"

    entries = audit_rows(db, None, "api.token_refused")
    assert len(entries) == RefusalLimiter().burst
    assert entries[0].actor == "anonymous"
    assert entries[0].ip == "testclient"
    assert entries[0].details == {"code": "invalid_token"}


def test_the_limiter_reports_what_it_dropped_once_the_window_passes() -> None:
    limiter = RefusalLimiter(burst=2, window=60)
    assert limiter.admit("ip:1", now=0) == 0
    assert limiter.admit("ip:1", now=1) == 0
    assert limiter.admit("ip:1", now=2) is None
    assert limiter.admit("ip:1", now=3) is None
    assert limiter.admit("ip:2", now=3) == 0  # other keys are not held back
    assert limiter.admit("ip:1", now=61) == 2
    assert limiter.admit("ip:1", now=62) == 0
