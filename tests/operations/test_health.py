"""GET /healthz answers without the database; GET /readyz names what stops the process
from serving: the database, its migrations, a worker that stopped going round its loop."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from puente import metrics
from puente.app import create_app
from puente.config import Settings
from puente.db.schema import head_revisions
from puente.db.session import Database
from puente.runtime import BackgroundWorker
from tests.waiting import wait_until


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        yield client


def test_healthz_answers_while_the_database_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    database = Database(f"sqlite:///{folder / 'puente.sqlite3'}")
    try:
        client = TestClient(create_app(settings, database, run_workers=False))
        # The database's folder goes away: every new connection fails from now on.
        shutil.rmtree(folder)
        database.dispose()
        alive = client.get("/healthz")
        assert alive.status_code == 200 and alive.json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == {"database": "the database cannot be reached"}
    finally:
        database.dispose()


def _previous_revision() -> str:
    from alembic.script import ScriptDirectory

    from puente.db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config(""))
    [head] = head_revisions()
    down = scripts.get_revision(head).down_revision
    assert isinstance(down, str)
    return down


def test_readyz_is_503_while_the_migrations_are_behind(client: TestClient, db: Database) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    with db.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO alembic_version VALUES (:rev)"), {"rev": _previous_revision()}
        )
    try:
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["failing"] == {
            "database": "the database schema is not current: run `puente migrate`"
        }
        [head] = head_revisions()
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :rev"), {"rev": head})
        assert client.get("/readyz").status_code == 200
    finally:
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))


def test_readyz_is_503_while_a_worker_has_not_gone_round_its_loop(client: TestClient) -> None:
    # A heartbeat ten minutes old is what a worker stuck in one step leaves behind.
    metrics.beat("puente-stuck", at=time.time() - 600)
    try:
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert stale.json()["reason"].startswith("worker puente-stuck (pid ")
        assert "ago (more than 120 s)" in stale.json()["failing"]["workers"]
        metrics.beat("puente-stuck")  # it went round again
        assert client.get("/readyz").status_code == 200
    finally:
        metrics.beat_stopped("puente-stuck")


def test_a_worker_stopped_on_purpose_is_not_expected_to_beat(client: TestClient) -> None:
    worker = BackgroundWorker("puente-short-lived", lambda: False, idle_seconds=0.01)
    worker.start()
    try:
        wait_until(lambda: _beats("puente-short-lived"), seconds=10, what="a first heartbeat")
        assert client.get("/readyz").status_code == 200
    finally:
        worker.stop()
        worker.join()
    assert _beats("puente-short-lived") == []


def _beats(worker: str) -> list[metrics.Heartbeat]:
    return [beat for beat in metrics.heartbeats() if beat.worker == worker]
