"""Walks every route of the application and proves it passes through the authorization
gate: web routes with each role (allowed or 403 by the permission matrix), anonymous
visitors (sent to sign in), requests without a CSRF token (403), and API routes without
a token (401). Routes added later by any part are covered automatically."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from puente.accounts.models import Role
from puente.accounts.permissions import ROLE_PERMISSIONS
from puente.api.deps import get_caller
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.web.deps import PUBLIC, gate_of
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient

# Paths that are not web pages: each has its own guard, checked elsewhere.
EXEMPT_PREFIXES = (
    "/api/v1",
    "/webhooks/",
    "/static",
    "/healthz",
    "/readyz",
    "/metrics",
    "/sandbox",
)
API_OPEN = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
MISSING_ID = "999999"


@dataclass(frozen=True)
class WebRoute:
    path: str
    method: str
    gate: str | None

    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", MISSING_ID, self.path)


def _gates(dependant: Any) -> Iterator[str]:
    for dep in getattr(dependant, "dependencies", []) or []:
        gate = gate_of(getattr(dep, "call", None))
        if gate is not None:
            yield gate
        yield from _gates(dep)


def _depends_on(dependant: Any, target: object) -> bool:
    for dep in getattr(dependant, "dependencies", []) or []:
        if getattr(dep, "call", None) is target or _depends_on(dep, target):
            return True
    return False


def web_routes(app: FastAPI) -> list[WebRoute]:
    found = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or ""
        if not path or path.startswith(EXEMPT_PREFIXES) or path == "/static":
            continue
        dependant = getattr(ctx, "dependant", None)
        gates = sorted(set(_gates(dependant))) if dependant is not None else []
        for method in sorted(ctx.methods or {"GET"}):
            if method == "HEAD":
                continue
            found.append(WebRoute(path, method, gates[0] if gates else None))
    return found


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


def test_every_web_route_declares_the_gate(app: FastAPI) -> None:
    routes = web_routes(app)
    assert any(r.path == "/settings/users" for r in routes)
    ungated = [f"{r.method} {r.path}" for r in routes if r.gate is None]
    assert ungated == [], f"web routes that skip the gate: {ungated}"


def test_every_api_route_requires_a_token(app: FastAPI, db: Database) -> None:
    api = next(r for r in app.routes if getattr(r, "path", "") == "/api/v1")
    sub: FastAPI = api.app  # type: ignore[attr-defined]
    with TestClient(app) as client:
        checked = 0
        for ctx in iter_route_contexts(sub.routes):
            path = ctx.path or ""
            if path in API_OPEN or getattr(ctx, "dependant", None) is None:
                continue
            assert _depends_on(ctx.dependant, get_caller), f"{path} does not check the token"
            url = "/api/v1" + re.sub(r"\{[^}]+\}", MISSING_ID, path)
            for method in sorted((ctx.methods or set()) - {"HEAD"}):
                response = client.request(method, url)
                assert response.status_code == 401, f"{method} {url}: {response.status_code}"
                checked += 1
        assert checked > 0


def test_anonymous_visitors_are_sent_to_sign_in(app: FastAPI, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Walk")
        make_user(session, ws, role="owner")
    with TestClient(app) as client:
        web = WebClient(client)
        web.refresh_csrf("/login")
        for route in web_routes(app):
            if route.gate == PUBLIC:
                continue
            if route.method == "GET":
                response = web.get(route.url(), follow_redirects=False)
                assert response.status_code == 303, route
                assert response.headers["location"].startswith("/login"), route
            else:
                response = web.post(route.url(), {}, follow_redirects=False)
                assert response.status_code in (303, 401), route


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_gets_exactly_what_the_matrix_allows(
    app: FastAPI, db: Database, role: str
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Walk")
        if role != "owner":
            make_user(session, ws, role="owner")
        user = make_user(session, ws, role=role)
        email = user.email
    allowed = {p.value for p in ROLE_PERMISSIONS[Role(role)]} | {PUBLIC}
    with TestClient(app) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        for route in web_routes(app):
            if route.gate == PUBLIC and route.method != "GET":
                continue  # sign-in forms; covered by their own tests
            if route.method == "GET":
                response = web.get(route.url(), follow_redirects=False)
            else:
                response = web.post(route.url(), {}, follow_redirects=False)
            where = f"{role}: {route.method} {route.path} -> {response.status_code}"
            assert response.status_code < 500, where
            if route.gate in allowed:
                assert response.status_code not in (401, 403), where
            else:
                assert response.status_code == 403, where
                assert "not allow" in response.text, where


def test_state_changing_web_routes_refuse_a_missing_csrf_token(app: FastAPI, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Walk")
        owner = make_user(session, ws, role="owner")
        email = owner.email
    with TestClient(app) as client:
        web = WebClient(client)
        web.login(email, PASSWORD)
        for route in web_routes(app):
            if route.method not in STATE_CHANGING:
                continue
            response = web.post(route.url(), {}, csrf=False, follow_redirects=False)
            assert response.status_code == 403, route
            assert "expired" in response.text, route
            response = web.post(
                route.url(), {"csrf_token": "forged"}, csrf=False, follow_redirects=False
            )
            assert response.status_code == 403, route
