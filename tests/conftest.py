"""Shared fixtures: a real database per test (SQLite file or PostgreSQL) and a live server.

PUENTE_TEST_DB=sqlite (default) or postgres picks the engine; `make test` runs both.
PUENTE_TEST_POSTGRES_URL points at another PostgreSQL server (default: 127.0.0.1:5432).
PUENTE_REQUIRE_POSTGRES=1 and PUENTE_REQUIRE_BROWSER=1 (set by CI) turn a missing
PostgreSQL or Chromium into a failure instead of a skip.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr

from puente.accounts import credentials
from puente.config import Settings
from puente.db.models import Base
from puente.db.session import Database
from puente.secrets import audit_keys

TEST_DB = os.environ.get("PUENTE_TEST_DB", "sqlite")
PG_URL = os.environ.get(
    "PUENTE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/puente_test"
)
# Under pytest-xdist (`make test` runs each leg in two processes) every process has a
# database of its own: tests empty the tables they wrote, which would pull rows from under
# a neighbour. The databases derived from it (a demo's, a kill test's) follow.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    _url = sa.engine.make_url(PG_URL)
    PG_URL = _url.set(database=f"{_url.database}_{XDIST_WORKER}").render_as_string(
        hide_password=False
    )
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
SECRET_KEY = Fernet.generate_key().decode()

# Passwords are hashed with argon2's cheapest profile in the test processes (the real
# argon2id code, a fraction of the cost); tests/accounts/test_password_profile.py checks
# that a process that is not a test hashes with the production profile.
credentials.use_hash_profile(argon2.profiles.CHEAPEST)


# Fixtures through which a test reaches the database; a test with none of them, in a
# module that never names an engine, uses no database.
DATABASE_FIXTURES = frozenset({"db", "settings", "pg_schema"})
_ENGINE_WORDS = ("TEST_DB", "PG_URL", "postgres", "Database(")


def _uses_no_database(item: pytest.Item, sources: dict[Path, str]) -> bool:
    if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return False
    path = Path(item.path)
    if path not in sources:
        sources[path] = path.read_text(encoding="utf-8")
    return not any(word in sources[path] for word in _ENGINE_WORDS)


# The longest files (a minute or more of one process each: kill tests, walks, generated
# requests, the demo, the wheel), given to the processes first. pytest-xdist hands out
# whole files in the order collected; one of these coming last kept a process busy for a
# minute after the others were done.
LONGEST_FIRST = (
    "tests/faults/test_workflow_kill.py",
    "tests/faults/test_worker_kill.py",
    "tests/test_demo.py",
    "tests/e2e/test_walk.py",
    "tests/api/test_schemathesis.py",
    "tests/accounts/test_route_walk.py",
    "tests/test_wheel.py",
    "tests/automation/test_workflow_runs.py",
    "tests/automation/test_kb_manage.py",
    "tests/automation/test_kb_bot.py",
    "tests/e2e/test_reports_browser.py",
    "tests/e2e/test_automation_walk.py",
    "tests/e2e/test_inbox_layout.py",
    "tests/automation/test_workflow_library_flow.py",
    "tests/channels/test_onboarding.py",
)


def _longest_first(items: list[pytest.Item], root: Path) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        name = Path(item.path).relative_to(root).as_posix()
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: the rest keep their order


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs both legs; tests that use no database run on one of them only
    (PUENTE_DATABASE_FREE_LEG names it), so the PostgreSQL leg spends its time on what
    PostgreSQL can change. Run alone, a leg runs everything."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _longest_first(items, config.rootpath)
    once_on = os.environ.get("PUENTE_DATABASE_FREE_LEG")
    if once_on is None:
        return
    sources: dict[Path, str] = {}
    # Also those marked one_leg: what they check (a page's looks, a walk through pages)
    # does not change with the database under it. They run on the database-free leg
    # unless the marker names the other (`one_leg("postgres")`), which evens out the
    # two legs' times.
    elsewhere = []
    for item in items:
        marker = item.get_closest_marker("one_leg")
        if marker is not None:
            leg = marker.args[0] if marker.args else once_on
            if leg != TEST_DB:
                elsewhere.append(item)
        elif once_on != TEST_DB and _uses_no_database(item, sources):
            elsewhere.append(item)
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        gone = {id(item) for item in elsewhere}
        items[:] = [item for item in items if id(item) not in gone]
        print(
            f"\n{len(elsewhere)} tests that use no database, or are marked one_leg, "
            "run on the other leg only"
        )


_EXIT_KEY = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_KEY] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Under `make test` (PUENTE_TEST_FAST_EXIT), leave as soon as the report is out: the
    interpreter's own finalization of a whole leg (freeing the objects of 1,400 tests'
    apps and databases) took most of a minute after the last line was printed."""
    if os.environ.get("PUENTE_TEST_FAST_EXIT") == "1" and _EXIT_KEY in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_KEY])


# The garbage collector runs far less often in the test processes: with Python's defaults
# (700, 10, 10) it ran after every few hundred allocations and scanned the apps, engines and
# pages of the tests so far again and again. tests/inbox, automation and conversations took
# 174 s of CPU with the defaults and 128 s with these (memory: 770 MB against 970 MB).
# PUENTE_TEST_GC_THRESHOLD (three numbers) tries others.
gc.set_threshold(
    *(int(x) for x in os.environ.get("PUENTE_TEST_GC_THRESHOLD", "200000,50,50").split(","))
)


def _ensure_pg_database(url: str) -> None:
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname=:n"), {"n": target.database}
        )
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    """On PostgreSQL: create the schema once per run; tests truncate what they wrote."""
    if TEST_DB != "postgres":
        yield None
        return
    try:
        _ensure_pg_database(PG_URL)
    except Exception as exc:
        if os.environ.get("PUENTE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")
    engine = sa.create_engine(PG_URL)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(_RESET_FUNCTION)
    engine.dispose()
    yield PG_URL


# Emptying the tables between tests, in one round trip. TRUNCATE of every table took most
# of a second per test (it swaps each table's files); deleting the few rows a test wrote
# and restarting only the sequences it used takes a few milliseconds. Children first, so
# no foreign key is in the way.
_RESET_FUNCTION = """
CREATE OR REPLACE FUNCTION puente_test_reset(tables text[]) RETURNS void AS $$
DECLARE
  t text;
  s record;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('DELETE FROM %%I', t);
  END LOOP;
  FOR s IN SELECT schemaname, sequencename FROM pg_sequences
           WHERE schemaname = current_schema() AND last_value IS NOT NULL LOOP
    EXECUTE format('ALTER SEQUENCE %%I.%%I RESTART', s.schemaname, s.sequencename);
  END LOOP;
END $$ LANGUAGE plpgsql
"""


def _truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        conn.execute(sa.text("SELECT puente_test_reset(:tables)"), {"tables": tables})


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Puente database built once per run; each test starts from a copy of it
    (creating 42 tables and their indexes anew took about a fifth of a second a test)."""
    path = tmp_path_factory.mktemp("template") / "puente.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def settings(tmp_path: Path, pg_schema: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=pg_schema,
        meta_app_secret=SecretStr(APP_SECRET),
        meta_verify_token=SecretStr(VERIFY_TOKEN),
        secret_key=SecretStr(SECRET_KEY),
        session_secret=SecretStr("test-session-secret"),
        run_workers=False,
        worker_poll_seconds=0.05,
    )


@pytest.fixture
def db(settings: Settings, sqlite_template: Path) -> Iterator[Database]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        target = Path(sa.engine.make_url(url).database or "")
        if not target.exists():
            shutil.copyfile(sqlite_template, target)
    database = Database(url)
    # The keys Puente's own processes on this data directory sign the audit log with.
    database.use_audit_keys(audit_keys(settings))
    if not database.is_sqlite:
        _truncate_all(database)
    yield database
    database.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            # A browser still holding a live stream open would otherwise keep the server
            # waiting for it to close: each such test's teardown took 15 s (then 1 s).
            timeout_graceful_shutdown=0.25,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def live_server_factory() -> Iterator[type[LiveServer]]:
    started: list[LiveServer] = []

    class _Factory(LiveServer):
        def start(self) -> LiveServer:
            started.append(self)
            return super().start()

    yield _Factory
    for server in reversed(started):
        server.stop()


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium through Playwright. Skips when Chromium is missing, unless
    PUENTE_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("PUENTE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium is required but missing at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield instance
        finally:
            instance.close()
