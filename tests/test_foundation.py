"""The skeleton: schema, migrations, unit of work, API authentication."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.app import create_app
from puente.config import Settings
from puente.conversations import search
from puente.db.base import utcnow
from puente.db.migrate import check, upgrade
from puente.db.models import Base, Workspace
from puente.db.session import Database, on_commit
from tests.factories import make_token, make_workspace


def test_migrations_match_models(settings: Settings, db: Database) -> None:
    if db.is_postgres:
        Base.metadata.drop_all(db.engine)
    else:
        (settings.data_dir / "puente.sqlite3").unlink()
    try:
        upgrade(settings.sqlalchemy_url())
        check(settings.sqlalchemy_url())  # raises if a model change lacks a migration
    finally:
        if db.is_postgres:
            Base.metadata.drop_all(db.engine)
            Base.metadata.create_all(db.engine)
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            # The search columns and indexes went with the tables; this process must make
            # them again for the tests after this one (it remembers having made them).
            search._ready.discard(str(db.engine.url))


def test_after_commit_callbacks_run_only_on_commit(db: Database) -> None:
    fired: list[str] = []
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Committed")
        on_commit(session, lambda: fired.append("committed"))
    with pytest.raises(RuntimeError), db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Rolled back")
        on_commit(session, lambda: fired.append("rolled back"))
        raise RuntimeError("boom")
    assert fired == ["committed"]
    with db.read(unscoped="test") as session:
        names = session.scalars(select(Workspace.name)).all()
    assert names == ["Committed"]


def test_a_rolled_back_savepoint_keeps_the_transactions_callbacks(db: Database) -> None:
    fired: list[str] = []
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Kept")
        on_commit(session, lambda: fired.append("before the savepoint"))
        with pytest.raises(RuntimeError), session.begin_nested():
            make_workspace(session, "Dropped")
            raise RuntimeError("a change that fails")
        on_commit(session, lambda: fired.append("after the savepoint"))
    assert fired == ["before the savepoint", "after the savepoint"]
    with db.read(unscoped="test") as session:
        assert session.scalars(select(Workspace.name)).all() == ["Kept"]


def test_datetimes_come_back_aware_utc(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        created = ws.created_at
    with db.read(unscoped="test") as session:
        again = session.get(Workspace, ws.id)
        assert again is not None
        assert again.created_at.tzinfo is not None
        assert abs((again.created_at - created).total_seconds()) < 1
        assert again.created_at <= utcnow()


def test_api_authenticates_bearer_tokens(settings: Settings, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        token = make_token(session, ws)
    with TestClient(create_app(settings, db)) as client:
        spec = client.get("/api/v1/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["info"]["title"] == "Puente API"

        missing = client.get("/api/v1/workspace")
        assert missing.status_code == 401
        assert "Bearer" in missing.json()["error"]["message"]

        wrong = client.get("/api/v1/workspace", headers={"Authorization": "Bearer pnt_nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_token"

        ok = client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ok.json()["name"] == "Acme"
