"""Run the test suite on SQLite and on PostgreSQL, and say plainly what ran.

Used by `make test` (and so by CI). Extra arguments go to pytest. The two legs share
nothing (each test has its own SQLite file; only the PostgreSQL leg uses the server), so
they run at the same time, one on each core. Each leg in turn runs its tests in two
processes (pytest-xdist, whole files to a process): a test spends much of its time waiting
on live servers, subprocesses and the browser, and one process per core left the cores
idle a third of the time (tests/inbox, automation and conversations: 209 s in one process,
123 s in two). Each leg's output is written to a file as it runs and printed whole when the
leg ends, so the two never interleave. PUENTE_TEST_SERIAL=1 runs the legs one after the
other, printing as they go; PUENTE_TEST_PROCESSES sets the processes per leg (1: no xdist).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

PG_URL = os.environ.get(
    "PUENTE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/puente_test"
)


def postgres_reachable() -> str | None:
    url = sa.engine.make_url(PG_URL).set(database="postgres")
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def command(args: list[str]) -> list[str]:
    # The slowest tests are listed at the end of each leg: the suite must stay within CI's
    # time, and this shows where it goes.
    processes = int(os.environ.get("PUENTE_TEST_PROCESSES", "2"))
    spread = ["-n", str(processes), "--dist", "loadfile"] if processes > 1 else []
    return [sys.executable, "-m", "pytest", "--durations=25", *spread, *args]


def environment(db: str, dbs: list[str]) -> dict[str, str]:
    # Each leg's pytest leaves as soon as its report is printed (see tests/conftest.py).
    env = dict(os.environ, PUENTE_TEST_DB=db, PUENTE_TEST_FAST_EXIT="1")
    # Test modules are compiled once (pytest's assertion rewriting) and cached, instead of
    # anew in each of the four processes: collection took 13 s of CPU, 6 s from the cache.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if len(dbs) > 1:
        # Tests that use no database at all run once, on the SQLite leg: running them on
        # PostgreSQL again proves nothing more (see tests/conftest.py).
        env["PUENTE_DATABASE_FREE_LEG"] = "sqlite"
    return env


def run_serial(dbs: list[str], args: list[str]) -> int:
    status = 0
    for db in dbs:
        print(f"\n=== tests on {db} ===", flush=True)
        status = subprocess.call(command(args), env=environment(db, dbs)) or status
    return status


def run_together(dbs: list[str], args: list[str]) -> int:
    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="puente-tests-"))
    running = []
    for db in dbs:
        log = (logs / f"{db}.log").open("w")
        proc = subprocess.Popen(
            command(args), env=environment(db, dbs), stdout=log, stderr=subprocess.STDOUT
        )
        running.append((db, proc, log))
    print(f"running the {' and '.join(dbs)} legs at once; output in {logs}", flush=True)
    status = 0
    for db, proc, log in running:
        code = proc.wait()
        log.close()
        minutes = (time.monotonic() - started) / 60
        print(f"\n=== tests on {db} (exit {code}, done after {minutes:.1f} min) ===", flush=True)
        sys.stdout.write((logs / f"{db}.log").read_text(errors="replace"))
        sys.stdout.flush()
        status = code or status
    return status


def main() -> int:
    args = sys.argv[1:]
    dbs = ["sqlite"]
    problem = postgres_reachable()
    if problem is None:
        dbs.append("postgres")
    elif os.environ.get("PUENTE_REQUIRE_POSTGRES") == "1":
        print(f"PostgreSQL is required but unreachable: {problem}", file=sys.stderr)
        return 1
    if os.environ.get("PUENTE_TEST_SERIAL") == "1" or len(dbs) == 1:
        status = run_serial(dbs, args)
    else:
        status = run_together(dbs, args)
    if problem is not None:
        print(f"\nNOTICE: PostgreSQL unreachable ({problem}); the PostgreSQL run was skipped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
