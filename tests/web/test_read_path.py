"""GET requests read through read-only sessions: they answer while a long write holds the
lock (a history import), a write slipped into one fails loudly instead of vanishing, GET
routes marked `@writes` still write, and last-used times are recorded after the response."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc, select, update
from sqlalchemy.orm import Session

from puente.accounts.models import ApiToken, WebSession, Workspace
from puente.app import create_app
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database, on_commit
from puente.request_session import own_transactions, writes
from puente.web.deps import DbDep
from tests.factories import PASSWORD, make_token, make_user, make_workspace
from tests.webclient import WebClient


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def owner(db: Database) -> str:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="owner", email="owner@example.com")
        return make_token(session, ws, None)


@contextmanager
def write_lock_held(db: Database) -> Iterator[None]:
    """What the history import does for seconds at a time: a write transaction left open."""
    with db.unit_of_work(unscoped="test") as session:
        session.execute(update(Workspace).values(name="Acme (importing)"))
        session.flush()
        yield


def _add_workspace(session: Session) -> dict[str, str]:
    session.add(Workspace(name="Written on a GET", slug="written-on-a-get"))
    session.flush()
    return {"ok": "yes"}


def _written(db: Database) -> bool:
    with db.read(unscoped="test") as session:
        found = session.scalar(select(Workspace.id).where(Workspace.slug == "written-on-a-get"))
    return found is not None


def test_the_api_answers_a_get_while_a_writer_holds_the_lock(
    app: FastAPI, db: Database, owner: str
) -> None:
    auth = {"Authorization": f"Bearer {owner}"}
    with TestClient(app, base_url="http://testserver/api/v1") as client:
        assert client.get("/workspace", headers=auth).status_code == 200
        with write_lock_held(db):
            listed = client.get("/conversations", headers=auth)
            workspace = client.get("/workspace", headers=auth)
    assert listed.status_code == 200
    # The reader sees the last committed state, not the open transaction's.
    assert workspace.json()["name"] == "Acme"


def test_web_pages_answer_while_a_writer_holds_the_lock(app: FastAPI, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="owner", email="owner@example.com")
    with TestClient(app) as client:
        web = WebClient(client)
        assert web.login("owner@example.com", PASSWORD).status_code in (200, 303)
        with write_lock_held(db):
            inbox = web.get("/inbox")
            profile = web.get("/settings/profile")
    assert inbox.status_code == 200
    assert profile.status_code == 200


def test_a_get_route_that_writes_without_saying_so_fails_loudly(app: FastAPI, db: Database) -> None:
    def sneaky(session: DbDep) -> dict[str, str]:
        return _add_workspace(session)

    app.add_api_route("/test/sneaky", sneaky, methods=["GET"])
    with TestClient(app) as client, pytest.raises(exc.DBAPIError) as refused:
        client.get("/test/sneaky")
    assert re.search("read-?only", str(refused.value), re.IGNORECASE)
    assert not _written(db)


def test_after_commit_work_queued_on_the_read_path_fails_loudly(app: FastAPI, db: Database) -> None:
    def notifies(session: DbDep) -> dict[str, str]:
        on_commit(session, lambda: None)
        return {"ok": "yes"}

    app.add_api_route("/test/notifies", notifies, methods=["GET"])
    with TestClient(app) as client, pytest.raises(RuntimeError, match="read-only session"):
        client.get("/test/notifies")


def test_a_get_route_marked_writes_gets_a_unit_of_work(app: FastAPI, db: Database) -> None:
    @writes
    def declared(session: DbDep) -> dict[str, str]:
        return _add_workspace(session)

    app.add_api_route("/test/declared", declared, methods=["GET"])
    with TestClient(app) as client:
        assert client.get("/test/declared").json() == {"ok": "yes"}
    assert _written(db)


def test_a_route_marked_own_transactions_only_reads_and_its_steps_commit(
    app: FastAPI, db: Database
) -> None:
    # What the onboarding does: the request reads, then a domain service commits step by
    # step around Meta's answers. On SQLite a request holding the write lock would make
    # those steps wait for it until they failed.
    @own_transactions
    def stepwise(session: DbDep) -> dict[str, str]:
        session.scalar(select(Workspace.id).limit(1))
        with db.unit_of_work(unscoped="test") as step:
            return _add_workspace(step)

    @own_transactions
    def careless(session: DbDep) -> dict[str, str]:
        return _add_workspace(session)

    app.add_api_route("/test/stepwise", stepwise, methods=["POST"])
    app.add_api_route("/test/careless", careless, methods=["POST"])
    with TestClient(app) as client:
        assert client.post("/test/stepwise").json() == {"ok": "yes"}
        assert _written(db)
        with pytest.raises(exc.DBAPIError) as refused:
            client.post("/test/careless")
    assert re.search("read-?only", str(refused.value), re.IGNORECASE)


def test_an_api_token_records_its_last_use_after_a_get(
    app: FastAPI, db: Database, owner: str
) -> None:
    auth = {"Authorization": f"Bearer {owner}"}
    before = utcnow()
    with TestClient(app, base_url="http://testserver/api/v1") as client:
        assert client.get("/conversations", headers=auth).status_code == 200
    with db.read(unscoped="test") as session:
        used = session.scalar(select(ApiToken.last_used_at))
    assert used is not None and used >= before


def test_a_web_session_records_its_last_visit_after_a_page(app: FastAPI, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        make_user(session, ws, role="owner", email="owner@example.com")
    with TestClient(app) as client:
        web = WebClient(client)
        web.login("owner@example.com", PASSWORD)
        long_ago = utcnow() - dt.timedelta(hours=1)
        with db.unit_of_work(unscoped="test") as session:
            session.execute(update(WebSession).values(last_seen_at=long_ago))
        assert web.get("/inbox").status_code == 200
    with db.read(unscoped="test") as session:
        seen = session.scalar(select(WebSession.last_seen_at))
    assert seen is not None and seen > long_ago + dt.timedelta(minutes=59)
