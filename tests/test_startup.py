"""Starting Puente the way a service manager does: from another working directory, on a
new data directory, or on a database whose schema is not current."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.migrate import upgrade
from puente.db.session import Database
from tests.conftest import free_port
from tests.waiting import wait_until

PUENTE = str(Path(sys.executable).with_name("puente"))
ROOT = Path(__file__).resolve().parent.parent
NOT_CURRENT = "puente: error: the database schema is not current: run `puente migrate`\n"


def sqlite_env(data_dir: Path) -> dict[str, str]:
    """SQLite in `data_dir`, whatever engine the suite runs on: these are first starts."""
    env = {**os.environ, "PUENTE_DATA_DIR": str(data_dir), "PUENTE_LOG_LEVEL": "WARNING"}
    for name in ("PUENTE_DATABASE_URL", "PUENTE_DEBUG", "PUENTE_NODE_MODULES"):
        env.pop(name, None)
    return env


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with nothing of Puente's in it (no var/, no node_modules/)."""
    cwd = tmp_path / "srv"
    cwd.mkdir()
    return cwd


@pytest.fixture
def served(tmp_path: Path, elsewhere: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = sqlite_env(tmp_path / "data")
    proc = subprocess.Popen(
        [PUENTE, "serve", "--port", str(port), "--no-workers"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_from_another_directory_on_a_new_database_migrates_it_and_serves_pages(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path, elsewhere: Path
) -> None:
    url, proc = served
    wait_until(lambda: _answers(url) or proc.poll() is not None, seconds=90, what="puente serve")
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    assert httpx.get(url + "/readyz").json() == {"status": "ready"}
    # The first page a person meets: no workspace yet, so the set-up form.
    page = httpx.get(url + "/login", headers={"accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 200
    assert page.url.path == "/setup"
    htmx = httpx.get(url + "/static/vendor/htmx.min.js")
    assert htmx.status_code == 200
    assert "htmx" in htmx.text
    assert (tmp_path / "data" / "puente.sqlite3").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing written where it was started


def test_worker_refuses_a_database_whose_schema_is_not_current(
    tmp_path: Path, elsewhere: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # A database some older or unfinished set-up left: tables, but not Puente's schema.
    with sqlite3.connect(data / "puente.sqlite3") as conn:
        conn.execute("CREATE TABLE workspaces (id INTEGER PRIMARY KEY)")
    for command in (["worker"], ["serve", "--port", str(free_port())]):
        done = subprocess.run(
            [PUENTE, *command],
            cwd=elsewhere,
            env=sqlite_env(data),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr == NOT_CURRENT
        assert "Traceback" not in done.stdout


def test_readyz_is_503_until_the_database_is_migrated(settings: Settings, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    try:
        client = TestClient(create_app(settings, database, run_workers=False))
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "status": "not_ready",
            "reason": "the database schema is not current: run `puente migrate`",
            "failing": {"database": "the database schema is not current: run `puente migrate`"},
        }
        assert client.get("/healthz").json() == {"status": "ok"}  # alive all the same
        upgrade(database.url)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}
    finally:
        database.dispose()


def test_readyz_is_ready_on_the_suite_database(settings: Settings, db: Database) -> None:
    client = TestClient(create_app(settings, db, run_workers=False))
    assert client.get("/readyz").json() == {"status": "ready"}


def test_make_demo_passes_its_args_to_puente_demo() -> None:
    done = subprocess.run(
        # Under `make test` this make is a sub-make, which would announce its directory.
        ["make", "--no-print-directory", "-n", "demo", "ARGS=--port 8100 --sandbox-port 8101"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines()[-1].endswith("puente demo --port 8100 --sandbox-port 8101")
