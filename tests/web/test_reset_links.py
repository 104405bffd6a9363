"""Password reset and invitation links reach nobody but their recipient: /dev/mail exists
only in development and withholds the links of owners and of people in other workspaces,
forgot-password without mail makes no link, and an admin's own reset of a member is
audited, shown once and refused for owners and for people other workspaces rely on."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from puente.accounts.audit import Action
from puente.accounts.models import AuditEntry, AuthLink, Membership, OutgoingMail, User
from puente.app import create_app
from puente.cli import app as cli_app
from puente.config import Settings
from puente.db.session import Database
from puente.demo import DemoOptions, DemoSecrets, demo_settings
from tests.accounts.test_privacy_retention import cli_env  # noqa: F401 (fixture)
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient

NEW_PASSWORD = "another-long-passphrase"
RESET_LINK = re.compile(r"https?://\S+/reset/[\w-]+")


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    """Production defaults: no SMTP, no dev mail."""
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def dev_app(settings: Settings, db: Database) -> FastAPI:
    """Development mode (what `puente demo` runs): no SMTP, /dev/mail on."""
    return create_app(settings.model_copy(update={"dev_mail": True}), db, run_workers=False)


def staff(db: Database, *, second_owner: bool = False) -> None:
    """Sol: owner, admin, agents; one of its agents is also an admin of Luna."""
    with db.unit_of_work(unscoped="test") as session:
        sol = make_workspace(session, "Sol")
        make_user(session, sol, role="owner", email="owner@sol.example")
        if second_owner:
            make_user(session, sol, role="owner", email="second@sol.example")
        make_user(session, sol, role="admin", email="admin@sol.example")
        make_user(session, sol, role="agent", email="agent@sol.example")
        double = make_user(session, sol, role="agent", email="double@sol.example")
        luna = make_workspace(session, "Luna")
        make_user(session, luna, role="owner", email="owner@luna.example")
        session.add(Membership(workspace_id=luna.id, user_id=double.id, role="admin"))


def signed_in(app: FastAPI, email: str, password: str = PASSWORD) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, password).status_code == 200
    return web


def ask_reset(app: FastAPI, email: str) -> str:
    stranger = WebClient(TestClient(app))
    stranger.refresh_csrf("/forgot-password")
    response = stranger.post("/forgot-password", {"email": email})
    assert response.status_code == 200
    return response.text


def without_csrf(html: str) -> str:
    return re.sub(r'(csrf-token" content|name="csrf_token" value)="[^"]+"', "", html)


def user_id(db: Database, email: str) -> int:
    with db.read(unscoped="test") as session:
        found = session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return found


def kept_links(db: Database, to: str) -> list[str]:
    with db.read(unscoped="test") as session:
        bodies = session.scalars(select(OutgoingMail.body).where(OutgoingMail.to == to))
        return [m.group(0) for body in bodies for m in RESET_LINK.finditer(body)]


def link_count(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return session.scalar(select(func.count()).select_from(AuthLink)) or 0


def audited(db: Database, action: str) -> list[tuple[str, str | None]]:
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.target).where(AuditEntry.action == action)
        ).all()
        return [(r.actor, r.target) for r in rows]


def sign_in_works(app: FastAPI, email: str, password: str) -> bool:
    web = WebClient(TestClient(app))
    return web.login(email, password).url.path != "/login"


def use_link(app: FastAPI, link: str, password: str) -> None:
    path = "/reset/" + link.rsplit("/reset/", 1)[1]
    web = WebClient(TestClient(app))
    assert web.get(path).status_code == 200
    assert web.post(path, {"password": password}).status_code == 200


# --- /dev/mail ----------------------------------------------------------------------------


def test_dev_mail_does_not_exist_in_production(app: FastAPI, db: Database) -> None:
    staff(db)
    owner = signed_in(app, "owner@sol.example")
    assert owner.get("/dev/mail").status_code == 404
    assert 'href="/dev/mail"' not in owner.get("/settings/users").text


def test_forgot_password_without_mail_asks_for_an_administrator_and_makes_no_link(
    app: FastAPI, db: Database
) -> None:
    staff(db)
    known = ask_reset(app, "owner@sol.example")
    unknown = ask_reset(app, "nobody@sol.example")
    assert 'data-testid="ask-admin"' in known
    # Nothing tells whether the address has an account (the pages differ by CSRF token only).
    assert without_csrf(known) == without_csrf(unknown)
    assert link_count(db) == 0
    assert kept_links(db, "owner@sol.example") == []


def test_dev_mail_never_shows_an_owners_reset_link(dev_app: FastAPI, db: Database) -> None:
    staff(db)
    ask_reset(dev_app, "owner@sol.example")
    [link] = kept_links(db, "owner@sol.example")
    page = signed_in(dev_app, "admin@sol.example").get("/dev/mail").text
    assert "owner@sol.example" in page and 'data-testid="link-withheld"' in page
    assert link not in page and "/reset/" not in page


def test_dev_mail_never_shows_the_link_of_someone_in_another_workspace(
    dev_app: FastAPI, db: Database
) -> None:
    """An agent here who is an admin in Luna: their link would open Luna to Sol's admin."""
    staff(db)
    ask_reset(dev_app, "double@sol.example")
    [link] = kept_links(db, "double@sol.example")
    page = signed_in(dev_app, "admin@sol.example").get("/dev/mail").text
    assert 'data-testid="link-withheld"' in page and link not in page
    assert "/reset/" not in page


def test_dev_mail_shows_the_link_of_a_member_of_only_this_workspace(
    dev_app: FastAPI, db: Database
) -> None:
    staff(db)
    ask_reset(dev_app, "agent@sol.example")
    [link] = kept_links(db, "agent@sol.example")
    admin = signed_in(dev_app, "admin@sol.example")
    page = admin.get("/dev/mail").text
    assert link in page and 'data-testid="link-withheld"' not in page
    assert 'href="/dev/mail"' in admin.get("/settings/users").text


def test_dev_mail_is_for_admins_only(dev_app: FastAPI, db: Database) -> None:
    staff(db)
    agent = signed_in(dev_app, "agent@sol.example")
    assert agent.get("/dev/mail", follow_redirects=False).status_code == 403


def test_the_demo_turns_dev_mail_on(settings: Settings) -> None:
    keys = DemoSecrets("app-secret", "verify", "sandbox-token", "admin-password")
    assert not settings.dev_mail
    assert demo_settings(settings, DemoOptions(), keys).dev_mail


# --- An admin resets a member's password --------------------------------------------------


def test_an_admin_resets_an_agents_password_with_a_link_shown_once(
    app: FastAPI, db: Database
) -> None:
    staff(db)
    admin = signed_in(app, "admin@sol.example")
    agent_id = user_id(db, "agent@sol.example")
    page = admin.post(f"/settings/users/{agent_id}/reset-password").text
    found = re.search(r'data-testid="reset-link">([^<]+)<', page)
    assert found, page
    assert audited(db, Action.PASSWORD_RESET_ISSUED) == [
        ("admin@sol.example", "user agent@sol.example")
    ]
    assert 'data-testid="reset-link"' not in admin.get("/settings/users").text
    use_link(app, found.group(1), NEW_PASSWORD)
    assert sign_in_works(app, "agent@sol.example", NEW_PASSWORD)


def test_an_admin_cannot_reset_an_owners_password(app: FastAPI, db: Database) -> None:
    staff(db)
    admin = signed_in(app, "admin@sol.example")
    refused = admin.post(f"/settings/users/{user_id(db, 'owner@sol.example')}/reset-password")
    assert refused.status_code == 403
    assert 'data-testid="reset-link"' not in refused.text
    assert 'data-testid="reset-password-owner@sol.example"' not in refused.text
    assert link_count(db) == 0


def test_an_owner_cannot_reset_another_owner_either(app: FastAPI, db: Database) -> None:
    staff(db, second_owner=True)
    owner = signed_in(app, "owner@sol.example")
    refused = owner.post(f"/settings/users/{user_id(db, 'second@sol.example')}/reset-password")
    assert refused.status_code == 403 and link_count(db) == 0


def test_an_admin_cannot_reset_someone_another_workspace_relies_on(
    app: FastAPI, db: Database
) -> None:
    staff(db)
    admin = signed_in(app, "admin@sol.example")
    double = admin.post(f"/settings/users/{user_id(db, 'double@sol.example')}/reset-password")
    assert double.status_code == 409 and 'data-testid="reset-link"' not in double.text
    stranger = admin.post(f"/settings/users/{user_id(db, 'owner@luna.example')}/reset-password")
    assert stranger.status_code == 404
    assert link_count(db) == 0


def test_the_operator_prints_a_reset_link_for_an_owner(
    app: FastAPI,
    db: Database,
    cli_env: None,  # noqa: F811
) -> None:
    staff(db)
    result = CliRunner().invoke(
        cli_app, ["users", "reset-password", "--workspace", "Sol", "--email", "owner@sol.example"]
    )
    assert result.exit_code == 0, result.output
    found = RESET_LINK.search(result.output)
    assert found, result.output
    assert audited(db, Action.PASSWORD_RESET_ISSUED) == [("cli", "user owner@sol.example")]
    use_link(app, found.group(0), NEW_PASSWORD)
    assert sign_in_works(app, "owner@sol.example", NEW_PASSWORD)


def test_inviting_without_mail_says_the_invitation_was_not_mailed(
    app: FastAPI, db: Database
) -> None:
    staff(db)
    admin = signed_in(app, "admin@sol.example")
    page = admin.post("/settings/users/invite", {"email": "new@sol.example", "role": "agent"})
    assert "was not mailed" in page.text and "/invite/" not in page.text
