"""A two-factor code works once: the same code, sent again within the minute or so it
stays valid, is refused (RFC 6238 §5.2), also when turning two-factor off."""

from __future__ import annotations

import time

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import AuditEntry
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.secrets import secret_box
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient

SECRET = pyotp.random_base32()


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Sol")
        user = make_user(session, ws, role="owner", email="ana@sol.example")
        user.totp_secret_encrypted = secret_box(settings).encrypt(SECRET)
        user.totp_enabled = True
    return create_app(settings, db, run_workers=False)


def password_step(app: FastAPI) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login("ana@sol.example", PASSWORD).url.path == "/login/code"
    return web


def next_code() -> str:
    """The code of the step after the current one, accepted as clock drift."""
    return pyotp.TOTP(SECRET).at(time.time() + 30)


def test_the_same_code_signs_in_only_once(app: FastAPI, db: Database) -> None:
    code = pyotp.TOTP(SECRET).now()
    first = password_step(app).post("/login/code", {"code": code}, follow_redirects=True)
    assert first.status_code == 200 and first.url.path != "/login/code"

    replay = password_step(app).post("/login/code", {"code": code})
    assert replay.status_code == 401
    assert "used already" in replay.text
    with db.read(unscoped="test") as session:
        details = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "auth.mfa_failed")
        ).all()
    assert details == [{"reason": "code_reused"}]

    later = password_step(app).post("/login/code", {"code": next_code()}, follow_redirects=True)
    assert later.status_code == 200 and later.url.path != "/login/code"


def test_a_code_used_to_sign_in_cannot_turn_two_factor_off(app: FastAPI) -> None:
    code = pyotp.TOTP(SECRET).now()
    web = password_step(app)
    assert web.post("/login/code", {"code": code}, follow_redirects=True).status_code == 200
    replay = web.post("/settings/profile/2fa/disable", {"code": code})
    assert replay.status_code == 422
    assert web.post("/settings/profile/2fa/disable", {"code": next_code()}).status_code == 200


def test_the_code_that_turned_two_factor_on_cannot_sign_in(
    settings: Settings, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_user(session, make_workspace(session, "Luna"), role="owner", email="eva@luna.example")
    app = create_app(settings, db, run_workers=False)
    web = WebClient(TestClient(app))
    assert web.login("eva@luna.example", PASSWORD).status_code == 200
    started = web.post("/settings/profile/2fa/start", {})
    assert started.status_code == 200
    with db.read(unscoped="test") as session:
        from puente.accounts.models import User

        encrypted = session.scalar(
            select(User.totp_secret_encrypted).where(User.email == "eva@luna.example")
        )
    secret = secret_box(settings).decrypt(encrypted or "")
    code = pyotp.TOTP(secret).now()
    assert web.post("/settings/profile/2fa/confirm", {"code": code}).status_code == 200
    assert web.post("/logout", {}).status_code in (200, 303)
    again = WebClient(TestClient(app))
    assert again.login("eva@luna.example", PASSWORD).url.path == "/login/code"
    assert again.post("/login/code", {"code": code}).status_code == 401
