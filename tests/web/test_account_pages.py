"""What a new member and an admin meet first on the account pages: pending invitations
(listed, withdrawn, sent again), changing one's password, the two-factor QR code, and
these pages in Spanish."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import AuditEntry, OutgoingMail, User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("sqlite")

NEW_PASSWORD = "a-brand-new-passphrase"


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    # With /dev/mail, as in the demo, where invitations are read without SMTP.
    return create_app(settings.model_copy(update={"dev_mail": True}), db, run_workers=False)


def workspace(db: Database, locale: str = "en") -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Sol")
        owner = make_user(session, ws, role="owner", email="owner@sol.example", name="Ana")
        owner.locale = locale
        make_user(session, ws, role="agent", email="agent@sol.example")


def signed_in(app: FastAPI, email: str, password: str = PASSWORD) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, password).status_code == 200
    return web


def mails_to(db: Database, to: str) -> list[str]:
    with db.read(unscoped="test") as session:
        return list(
            session.scalars(
                select(OutgoingMail.body).where(OutgoingMail.to == to).order_by(OutgoingMail.id)
            )
        )


def actions(db: Database) -> list[str]:
    with db.read(unscoped="test") as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def invitation_row(html: str, email: str) -> str:
    found = re.search(rf'<tr data-testid="invitation-{re.escape(email)}">.*?</tr>', html, re.S)
    assert found, f"no pending invitation for {email}"
    return found.group(0)


def invite_link(body: str) -> str:
    found = re.search(r"/invite/\S+", body)
    assert found
    return found.group(0)


def test_pending_invitations_are_listed_with_role_sender_and_expiry(
    app: FastAPI, db: Database
) -> None:
    workspace(db)
    owner = signed_in(app, "owner@sol.example")
    page = owner.get("/settings/users").text
    assert 'data-testid="no-invitations"' in page
    owner.post("/settings/users/invite", {"email": "new@sol.example", "role": "supervisor"})
    row = invitation_row(owner.get("/settings/users").text, "new@sol.example")
    assert "supervisor" in row and "Ana" in row
    assert "Send again" in row and "Withdraw" in row
    assert len(re.findall(r"\d{1,2}:\d{2}", row)) == 2  # sent and expires


def test_a_withdrawn_invitation_no_longer_opens(app: FastAPI, db: Database) -> None:
    workspace(db)
    owner = signed_in(app, "owner@sol.example")
    owner.post("/settings/users/invite", {"email": "new@sol.example", "role": "agent"})
    link = invite_link(mails_to(db, "new@sol.example")[0])
    row = invitation_row(owner.get("/settings/users").text, "new@sol.example")
    revoke = re.search(r'action="(/settings/invitations/\d+/revoke)"', row)
    assert revoke
    done = owner.post(revoke.group(1))
    assert "The invitation was withdrawn." in done.text
    assert 'data-testid="invitation-new@sol.example"' not in done.text
    assert "user.invitation_revoked" in actions(db)
    visitor = WebClient(TestClient(app))
    assert "this invitation is not valid" in visitor.get(link).text


def test_an_invitation_sent_again_has_a_new_link_and_the_old_one_stops(
    app: FastAPI, db: Database
) -> None:
    workspace(db)
    owner = signed_in(app, "owner@sol.example")
    owner.post("/settings/users/invite", {"email": "new@sol.example", "role": "agent"})
    old_link = invite_link(mails_to(db, "new@sol.example")[0])
    row = invitation_row(owner.get("/settings/users").text, "new@sol.example")
    resend = re.search(r'action="(/settings/invitations/\d+/resend)"', row)
    assert resend
    assert "The invitation was sent again." in owner.post(resend.group(1)).text
    mails = mails_to(db, "new@sol.example")
    assert len(mails) == 2
    new_link = invite_link(mails[1])
    assert new_link != old_link
    visitor = WebClient(TestClient(app))
    assert "this invitation is not valid" in visitor.get(old_link).text
    joined = visitor.post(new_link, {"name": "Nueva", "password": NEW_PASSWORD})
    assert joined.status_code == 200, joined.text
    assert 'data-testid="invitation-new@sol.example"' not in owner.get("/settings/users").text


def test_an_agent_cannot_withdraw_invitations(app: FastAPI, db: Database) -> None:
    workspace(db)
    owner = signed_in(app, "owner@sol.example")
    owner.post("/settings/users/invite", {"email": "new@sol.example", "role": "agent"})
    row = invitation_row(owner.get("/settings/users").text, "new@sol.example")
    revoke = re.search(r'action="(/settings/invitations/\d+/revoke)"', row)
    assert revoke
    agent = signed_in(app, "agent@sol.example")
    assert agent.post(revoke.group(1), follow_redirects=False).status_code == 403
    assert 'data-testid="invitation-new@sol.example"' in owner.get("/settings/users").text


def test_changing_ones_password_signs_out_other_sessions(app: FastAPI, db: Database) -> None:
    workspace(db)
    here = signed_in(app, "agent@sol.example")
    elsewhere = signed_in(app, "agent@sol.example")
    done = here.post(
        "/settings/profile/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert done.status_code == 200
    assert "Your password was changed." in done.text
    assert here.get("/settings/profile", follow_redirects=False).status_code == 200
    assert elsewhere.get("/settings/profile", follow_redirects=False).status_code == 303
    assert "auth.password_changed" in actions(db)
    signed_in(app, "agent@sol.example", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "again", "reason"),
    [
        ("wrong-password-here", NEW_PASSWORD, NEW_PASSWORD, "the current password is not right"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "the two new passwords are not the same"),
        (PASSWORD, "short", "short", "the password needs at least 10 characters"),
    ],
)
def test_a_refused_password_change_says_why_and_keeps_the_old_one(
    app: FastAPI, db: Database, current: str, new: str, again: str, reason: str
) -> None:
    workspace(db)
    web = signed_in(app, "agent@sol.example")
    refused = web.post(
        "/settings/profile/password",
        {"current_password": current, "new_password": new, "new_password_again": again},
    )
    assert refused.status_code == 422
    assert reason in refused.text
    with db.read(unscoped="test") as session:
        user = session.scalar(select(User).where(User.email == "agent@sol.example"))
        assert user is not None
    signed_in(app, "agent@sol.example", PASSWORD)


def test_two_factor_enrolment_shows_a_qr_code_and_the_key(app: FastAPI, db: Database) -> None:
    workspace(db)
    web = signed_in(app, "agent@sol.example")
    page = web.post("/settings/profile/2fa/start")
    figure = re.search(
        r'<figure class="totp-qr" data-testid="totp-qr">(.*?)</figure>', page.text, re.S
    )
    assert figure and figure.group(1).startswith("<svg")
    assert "<path" in figure.group(1) and "style=" not in figure.group(1)
    assert 'data-testid="totp-secret"' in page.text and "otpauth://totp/" in page.text
    # The page's own CSP allows inline SVG: no script, no style attribute to permit.
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_account_pages_in_spanish(app: FastAPI, db: Database) -> None:
    workspace(db, locale="es")
    owner = signed_in(app, "owner@sol.example")
    enrol = owner.post("/settings/profile/2fa/start").text
    assert "Escanea este código con una app de autenticación" in enrol
    assert "O escribe esta clave a mano en la app" in enrol
    owner.post("/settings/users/invite", {"email": "nuevo@sol.example", "role": "agent"})
    users = owner.get("/settings/users").text
    assert "Invitaciones pendientes" in users
    assert "Todas las conversaciones" in users and "conversations: all" not in users
    assert (
        "Ana te invitó a la bandeja de equipo de Sol en Puente."
        in mails_to(db, "nuevo@sol.example")[0]
    )
    mail = owner.get("/dev/mail").text
    assert "Correo enviado por Puente en este espacio de trabajo." in mail
    profile = owner.get("/settings/profile").text
    assert "Cambiar la contraseña" in profile and "Contraseña actual" in profile


def test_the_onboarding_start_button_does_not_say_home_in_spanish(
    settings: Settings, db: Database
) -> None:
    sandboxed = settings.model_copy(update={"graph_base_url": "http://127.0.0.1:9"})
    app = create_app(sandboxed, db, run_workers=False)
    workspace(db, locale="es")
    owner = signed_in(app, "owner@sol.example")
    page = owner.get("/channels/new?method=coexistence").text
    start = re.search(r'data-testid="start">([^<]+)<', page)
    assert start, page
    assert start.group(1) == "Comenzar la conexión"
