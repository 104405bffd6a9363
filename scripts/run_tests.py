"""Run the test suite on SQLite and then on PostgreSQL, and say plainly what ran.

Used by `make test` (and so by CI). Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys

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


def run(db: str, args: list[str]) -> int:
    print(f"\n=== tests on {db} ===", flush=True)
    env = dict(os.environ, PUENTE_TEST_DB=db)
    return subprocess.call([sys.executable, "-m", "pytest", *args], env=env)


def main() -> int:
    args = sys.argv[1:]
    status = run("sqlite", args)
    problem = postgres_reachable()
    if problem is None:
        status = run("postgres", args) or status
    elif os.environ.get("PUENTE_REQUIRE_POSTGRES") == "1":
        print(f"PostgreSQL is required but unreachable: {problem}", file=sys.stderr)
        return 1
    else:
        print(f"\nNOTICE: PostgreSQL unreachable ({problem}); the PostgreSQL run was skipped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
