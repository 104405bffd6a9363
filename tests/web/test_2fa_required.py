"""A workspace that requires two-factor sign-in: members it applies to who have not
enrolled can reach nothing but the enrolment pages (and sign-out) until they enrol."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from puente.accounts.gate import load_member_actor
from puente.accounts.models import ApiToken, User
from puente.accounts.service import do_update_security_settings
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient, previous_code

ENROL = "/settings/profile?enrol=1"


@pytest.fixture
def client(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db, run_workers=False))


def workspace(db: Database) -> tuple[int, str, str]:
    """A workspace with an owner and an agent; returns (id, owner email, agent email)."""
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        owner = make_user(session, ws, role="owner", email="owner@example.com")
        agent = make_user(session, ws, role="agent", email="agent@example.com")
        return ws.id, owner.email, agent.email


def require_2fa(db: Database, ws_id: int, policy: str) -> None:
    with db.unit_of_work(unscoped="test") as session:
        owner = session.scalar(select(User).where(User.email == "owner@example.com"))
        assert owner is not None
        actor = load_member_actor(session, owner, ws_id)
        assert actor is not None
        do_update_security_settings(session, actor, require_2fa=policy, retention=None)


def enrol(web: WebClient) -> None:
    page = web.post("/settings/profile/2fa/start")
    assert page.status_code == 200
    secret = page.text.split('data-testid="totp-secret">')[1].split("<")[0]
    done = web.post("/settings/profile/2fa/confirm", {"code": previous_code(secret)})
    assert 'data-testid="recovery-codes"' in done.text


def redirected_to_enrol(response: object) -> bool:
    import httpx

    assert isinstance(response, httpx.Response)
    return response.status_code == 303 and response.headers["location"] == ENROL


def test_admins_without_2fa_can_only_enrol(client: TestClient, db: Database) -> None:
    ws_id, owner, agent = workspace(db)
    require_2fa(db, ws_id, "admins")
    web = WebClient(client)

    landed = web.login(owner, PASSWORD)
    assert landed.url.path == "/settings/profile"
    assert 'data-testid="mfa-required"' in landed.text

    for path in ("/", "/settings/users", "/settings/security", "/settings/tokens", "/settings"):
        assert redirected_to_enrol(web.get(path, follow_redirects=False)), path
    # Changing anything is refused too (here: creating an API token).
    made = web.post("/settings/tokens", {"name": "sneaky"}, follow_redirects=False)
    assert redirected_to_enrol(made)
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
    # htmx requests are sent to the enrolment page by the HX-Redirect header.
    partial = web.htmx("GET", "/settings/users")
    assert partial.status_code == 403
    assert partial.headers["hx-redirect"] == ENROL
    # The profile page itself (where enrolment happens) stays open.
    assert web.get("/settings/profile").status_code == 200

    enrol(web)
    assert web.get("/settings/users").status_code == 200

    # The agent is not concerned by an admins-only requirement.
    other = WebClient(client)
    other.login(agent, PASSWORD)
    assert other.get("/settings/profile?x=1", follow_redirects=False).status_code == 200
    assert not redirected_to_enrol(other.get("/", follow_redirects=False))


def test_requiring_everyone_blocks_a_session_already_signed_in(
    client: TestClient, db: Database
) -> None:
    ws_id, _owner, agent = workspace(db)
    web = WebClient(client)
    web.login(agent, PASSWORD)
    assert not redirected_to_enrol(web.get("/", follow_redirects=False))

    require_2fa(db, ws_id, "everyone")

    assert redirected_to_enrol(web.get("/", follow_redirects=False))
    assert redirected_to_enrol(web.post("/settings/profile", {"name": "X"}, follow_redirects=False))
    # Signing out still works.
    out = web.logout()
    assert out.status_code == 303
    assert (
        web.get("/settings/profile", follow_redirects=False)
        .headers["location"]
        .startswith("/login")
    )

    web.login(agent, PASSWORD)
    enrol(web)
    assert not redirected_to_enrol(web.get("/", follow_redirects=False))
