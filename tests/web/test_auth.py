"""Signing in through the real forms: passwords, two-factor codes, lockout, sessions."""

from __future__ import annotations

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import AuditEntry, User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient, previous_code


@pytest.fixture
def client(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db, run_workers=False))


def _owner(db: Database) -> str:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        return make_user(session, ws, role="owner", email="ana@example.com").email


def _actions(db: Database) -> list[str]:
    with db.read(unscoped="test") as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_first_run_setup_creates_workspace_and_signs_in(client: TestClient) -> None:
    web = WebClient(client)
    assert web.get("/login").url.path == "/setup"
    page = web.post(
        "/setup",
        {"workspace": "Tienda", "name": "Ana", "email": "ana@example.com", "password": PASSWORD},
        follow_redirects=True,
    )
    assert page.status_code == 200
    assert "Tienda" in page.text
    # A second set-up is refused.
    again = web.post(
        "/setup",
        {"workspace": "Other", "name": "Eve", "email": "eve@example.com", "password": PASSWORD},
    )
    assert again.status_code == 409


def test_wrong_password_is_refused_audited_and_locks_after_five(
    client: TestClient, db: Database
) -> None:
    email = _owner(db)
    web = WebClient(client)
    for _ in range(5):
        page = web.login(email, "wrong-password-1")
        assert page.status_code == 401
        assert "wrong email or password" in page.text
    locked = web.login(email, PASSWORD)
    assert locked.status_code == 429
    assert "try again in" in locked.text
    assert _actions(db).count("auth.login_failed") == 5
    assert "auth.locked_out" in _actions(db)


def test_session_cookie_is_httponly_samesite_and_rotated(client: TestClient, db: Database) -> None:
    email = _owner(db)
    web = WebClient(client)
    web.refresh_csrf("/login")
    response = web.post("/login", {"email": email, "password": PASSWORD}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    first = client.cookies.get("puente_session")
    web.logout()
    web.login(email, PASSWORD)
    assert client.cookies.get("puente_session") not in (None, first)
    # The old session no longer works after logout.
    other = TestClient(client.app)
    other.cookies.set("puente_session", first or "")
    assert other.get("/settings/profile", follow_redirects=False).status_code == 401


def test_two_factor_enrolment_and_login(
    client: TestClient, db: Database, settings: Settings
) -> None:
    email = _owner(db)
    web = WebClient(client)
    web.login(email, PASSWORD)
    page = web.post("/settings/profile/2fa/start")
    secret = page.text.split('data-testid="totp-secret">')[1].split("<")[0]
    wrong = web.post("/settings/profile/2fa/confirm", {"code": "000000"})
    assert wrong.status_code == 422
    done = web.post("/settings/profile/2fa/confirm", {"code": previous_code(secret)})
    assert 'data-testid="recovery-codes"' in done.text
    recovery = done.text.split("<code>")[1].split("</code>")[0]
    web.logout()

    # The password alone is not enough now; a wrong code is refused and audited.
    step = web.login(email, PASSWORD)
    assert step.url.path == "/login/code"
    assert web.get("/settings/profile", follow_redirects=False).status_code == 303
    bad = web.post("/login/code", {"code": "123456"})
    assert bad.status_code == 401
    assert "auth.mfa_failed" in _actions(db)
    ok = web.post("/login/code", {"code": pyotp.TOTP(secret).now()}, follow_redirects=True)
    assert ok.status_code == 200 and "Acme" in ok.text
    web.logout()

    # A recovery code works once.
    web.login(email, PASSWORD)
    assert web.post("/login/code", {"code": recovery}, follow_redirects=True).status_code == 200
    web.logout()
    web.login(email, PASSWORD)
    assert web.post("/login/code", {"code": recovery}).status_code == 401
    with db.read(unscoped="test") as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None and user.totp_secret_encrypted
        assert secret not in user.totp_secret_encrypted  # encrypted at rest


def test_deactivated_user_loses_access_at_once(client: TestClient, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        owner = make_user(session, ws, role="owner")
        agent = make_user(session, ws, role="agent")
        owner_email, agent_email, agent_id = owner.email, agent.email, agent.id
    agent_web = WebClient(TestClient(client.app))
    agent_web.login(agent_email, PASSWORD)
    assert agent_web.get("/settings/profile").status_code == 200
    admin = WebClient(client)
    admin.login(owner_email, PASSWORD)
    assert admin.post(f"/settings/users/{agent_id}/deactivate").status_code == 200
    assert agent_web.get("/settings/profile", follow_redirects=False).status_code == 303
    assert agent_web.login(agent_email, PASSWORD).status_code == 401
    assert "user.deactivated" in _actions(db)


def test_security_headers_on_pages(client: TestClient) -> None:
    response = client.get("/login", follow_redirects=True)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "camera=()" in response.headers["permissions-policy"]


def test_language_follows_the_browser_then_the_users_choice(
    client: TestClient, db: Database
) -> None:
    email = _owner(db)
    page = client.get("/login", headers={"accept-language": "es-CO,es;q=0.9,en;q=0.5"})
    assert "Iniciar sesión" in page.text and 'lang="es"' in page.text
    web = WebClient(client)
    web.login(email, PASSWORD)
    assert "Sign out" in web.get("/settings/profile").text
    web.post("/me/language", {"language": "es"})
    assert "Cerrar sesión" in web.get("/settings/profile").text
