"""Lost phone: an admin resets a member's two-factor sign-in from /settings/users, a member
turns it off with a recovery code, and a workspace that requires it keeps un-enrolled admins
away from API tokens."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from puente.accounts.models import ApiToken, AuditEntry, Membership, User
from puente.app import create_app
from puente.cli import app as cli_app
from puente.config import Settings
from puente.db.session import Database
from tests.accounts.test_privacy_retention import cli_env  # noqa: F401 (fixture)
from tests.factories import PASSWORD, make_user, make_workspace
from tests.web.test_2fa_required import redirected_to_enrol, require_2fa
from tests.webclient import WebClient, previous_code

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("postgres")


@pytest.fixture
def client(settings: Settings, db: Database) -> FastAPI:
    """The app; each person gets their own TestClient (their own cookies)."""
    return create_app(settings, db, run_workers=False)


def staff(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="owner", email="owner@example.com")
        make_user(session, ws, role="admin", email="admin@example.com")
        make_user(session, ws, role="agent", email="agent@example.com")
        return ws.id


def user_id(db: Database, email: str) -> int:
    with db.read(unscoped="test") as session:
        found = session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return found


def signed_in(client: FastAPI, email: str, secret: str | None = None) -> WebClient:
    web = WebClient(TestClient(client))
    landed = web.login(email, PASSWORD, totp_secret=secret)
    assert landed.status_code == 200, landed.text
    return web


def enrol(web: WebClient) -> tuple[str, list[str]]:
    """Set up two-factor sign-in; returns the secret and the recovery codes shown."""
    page = web.post("/settings/profile/2fa/start")
    secret = page.text.split('data-testid="totp-secret">')[1].split("<")[0]
    done = web.post("/settings/profile/2fa/confirm", {"code": previous_code(secret)})
    codes = re.findall(r"\b[0-9a-f]{8}-[0-9a-f]{8}\b", done.text)
    assert len(codes) == 10
    return secret, codes


def audit_of(db: Database, action: str) -> list[tuple[str, str | None]]:
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.target)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        ).all()
        return [(r.actor, r.target) for r in rows]


def test_admin_resets_a_members_two_factor_and_they_must_enrol_again(
    client: FastAPI, db: Database
) -> None:
    ws_id = staff(db)
    agent = signed_in(client, "agent@example.com")
    secret, _codes = enrol(agent)
    require_2fa(db, ws_id, "everyone")
    admin = signed_in(client, "admin@example.com")
    enrol(admin)

    page = admin.get("/settings/users")
    assert 'data-testid="reset-2fa-agent@example.com"' in page.text
    agent_id = user_id(db, "agent@example.com")
    done = admin.post(f"/settings/users/{agent_id}/reset-2fa")
    assert done.status_code == 200
    assert "Two-factor sign-in was reset" in done.text
    assert 'data-testid="reset-2fa-agent@example.com"' not in done.text
    assert audit_of(db, "auth.mfa_reset") == [("admin@example.com", "user agent@example.com")]

    # The phone's session is over, the old app's codes are worthless, and the password
    # alone leads straight to enrolment because the workspace requires two-factor.
    ended = agent.get("/inbox", follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
    again = WebClient(TestClient(client))
    landed = again.login("agent@example.com", PASSWORD)
    assert landed.url.path == "/settings/profile"
    assert 'data-testid="mfa-required"' in landed.text
    assert redirected_to_enrol(again.get("/inbox", follow_redirects=False))
    new_secret, _ = enrol(again)
    assert new_secret != secret

    # Resetting someone without two-factor is a clear refusal, not a silent success.
    with db.unit_of_work(unscoped="test") as session:
        session.execute(
            User.__table__.update().where(User.id == agent_id).values(totp_enabled=False)
        )
    refused = admin.post(f"/settings/users/{agent_id}/reset-2fa")
    assert refused.status_code == 409
    assert "does not use two-factor" in refused.text


def test_reset_is_refused_above_ones_role_for_oneself_and_to_agents(
    client: FastAPI, db: Database
) -> None:
    staff(db)
    owner = signed_in(client, "owner@example.com")
    owner_secret, _ = enrol(owner)
    admin = signed_in(client, "admin@example.com")
    admin_secret, _ = enrol(admin)
    agent = signed_in(client, "agent@example.com")
    enrol(agent)

    page = admin.get("/settings/users")
    assert 'data-testid="reset-2fa-owner@example.com"' not in page.text
    over = admin.post(f"/settings/users/{user_id(db, 'owner@example.com')}/reset-2fa")
    assert over.status_code == 403
    mine = admin.post(f"/settings/users/{user_id(db, 'admin@example.com')}/reset-2fa")
    assert mine.status_code == 409
    assert "use your profile" in mine.text
    by_agent = agent.post(f"/settings/users/{user_id(db, 'admin@example.com')}/reset-2fa")
    assert by_agent.status_code == 403
    # Without the form's CSRF token nothing happens either.
    forged = admin.post(
        f"/settings/users/{user_id(db, 'agent@example.com')}/reset-2fa", {"csrf_token": "x"}
    )
    assert forged.status_code == 403
    assert audit_of(db, "auth.mfa_reset") == []
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).where(User.totp_enabled.is_(True))) == 3

    # The owner may reset the admin.
    done = owner.post(f"/settings/users/{user_id(db, 'admin@example.com')}/reset-2fa")
    assert done.status_code == 200, done.text
    assert owner_secret and admin_secret


def test_reset_refused_for_someone_who_is_also_in_another_workspace(
    client: FastAPI, db: Database
) -> None:
    staff(db)
    agent = signed_in(client, "agent@example.com")
    enrol(agent)
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Elsewhere")
        session.add(
            Membership(
                workspace_id=other.id, user_id=user_id(db, "agent@example.com"), role="owner"
            )
        )
    admin = signed_in(client, "admin@example.com")
    refused = admin.post(f"/settings/users/{user_id(db, 'agent@example.com')}/reset-2fa")
    assert refused.status_code == 409
    assert "another workspace" in refused.text
    assert audit_of(db, "auth.mfa_reset") == []


def test_a_member_turns_two_factor_off_with_a_recovery_code(client: FastAPI, db: Database) -> None:
    staff(db)
    agent = signed_in(client, "agent@example.com")
    _secret, codes = enrol(agent)

    wrong = agent.post("/settings/profile/2fa/disable", {"code": "0000aaaa-bbbb1111"})
    assert wrong.status_code == 422
    assert "not right" in wrong.text
    off = agent.post("/settings/profile/2fa/disable", {"code": codes[3]})
    assert off.status_code == 200
    assert "Two-factor sign-in is now off." in off.text
    with db.read(unscoped="test") as session:
        user = session.scalar(select(User).where(User.email == "agent@example.com"))
        assert user is not None and not user.totp_enabled
    assert [a for a, _ in audit_of(db, "auth.mfa_disabled")] == ["agent@example.com"]

    # Signing in now takes the password alone; enrolling again gives new codes, and the
    # old ones no longer work anywhere.
    fresh = signed_in(client, "agent@example.com")
    secret, new_codes = enrol(fresh)
    assert not set(codes) & set(new_codes)
    stale = fresh.post("/settings/profile/2fa/disable", {"code": codes[4]})
    assert stale.status_code == 422
    assert signed_in(client, "agent@example.com", secret).get("/inbox").status_code == 200


def test_an_unenrolled_admin_cannot_create_api_tokens(client: FastAPI, db: Database) -> None:
    ws_id = staff(db)
    require_2fa(db, ws_id, "admins")
    admin = signed_in(client, "admin@example.com")

    made = admin.post(
        "/settings/tokens", {"name": "sneaky", "scopes": ["events:read"]}, follow_redirects=False
    )
    assert redirected_to_enrol(made)
    htmx = admin.htmx("POST", "/settings/tokens", data={"name": "sneaky"})
    assert htmx.status_code == 403 and htmx.headers["hx-redirect"] == "/settings/profile?enrol=1"
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0

    enrol(admin)
    created = admin.post("/settings/tokens", {"name": "allowed", "scopes": ["events:read"]})
    assert created.status_code == 200
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_operator_resets_someone_in_several_workspaces_from_the_cli(
    cli_env: None,  # noqa: F811
    client: FastAPI,
    db: Database,
) -> None:
    staff(db)
    agent = signed_in(client, "agent@example.com")
    enrol(agent)
    with db.unit_of_work(unscoped="test") as session:
        other = make_workspace(session, "Elsewhere")
        session.add(
            Membership(
                workspace_id=other.id, user_id=user_id(db, "agent@example.com"), role="owner"
            )
        )

    done = CliRunner().invoke(cli_app, ["users", "reset-2fa", "Agent@Example.com"])
    assert done.exit_code == 0, done.output
    assert "two-factor sign-in reset for agent@example.com" in done.output
    assert audit_of(db, "auth.mfa_reset") == [("cli", "user agent@example.com")] * 2
    assert agent.get("/inbox", follow_redirects=False).status_code == 303  # session ended
    assert signed_in(client, "agent@example.com").get("/inbox").status_code == 200

    again = CliRunner().invoke(cli_app, ["users", "reset-2fa", "agent@example.com"])
    assert again.exit_code == 1 and "does not use two-factor" in again.output
    unknown = CliRunner().invoke(cli_app, ["users", "reset-2fa", "nobody@example.com"])
    assert unknown.exit_code == 1 and "no user" in unknown.output
