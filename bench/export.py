"""Exporting a large workspace (issue #18, "Speed": the inbox benchmark's million messages
in under 2 minutes and under 300 MB of memory).

Builds bench/inbox's dataset (default: 1,000,000 messages in 100,000 conversations, 50
agents; Core bulk inserts), then runs in a fresh child process each:

- baseline: every message row of the workspace streamed with a plain SELECT (the same
  server-side cursor / yield_per batches), nothing written;
- export: `do_export_workspace` of the whole workspace to a zip archive;
- import: `do_import_workspace` of that archive into a new, empty database (a SQLite file,
  or with --postgres the database named like it plus `_import`), ids remapped.

Each prints its wall time and the child's peak resident memory (VmHWM), so the
dataset's build does not count. Exit status 1 when the export misses either target (the
import has none; it is shown for the record).

    .venv/bin/python bench/export.py [--messages 1000000] [--conversations 100000]
        [--postgres URL] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet
from pydantic import SecretStr

from inbox import build
from puente.config import Settings
from puente.conversations.models import Message
from puente.db.models import Base
from puente.db.session import Database
from puente.portability.export import BATCH, do_export_workspace
from puente.portability.importer import do_import_workspace
from puente.secrets import audit_keys

TARGET_SECONDS = 120
TARGET_MB = 300


def log(text: str) -> None:
    print(text, flush=True)


def _settings(data_dir: Path, url: str | None, key: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SecretStr(key),
        session_secret=SecretStr("bench"),
        run_workers=False,
    )


def _peak_mb() -> float:
    """This process's own peak resident memory. Not ru_maxrss: Linux carries it over an
    exec from the forking parent, so every child reported the parent's 362 MB (the one that
    built the data set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import_target(data_dir: Path, url: str | None) -> Database:
    if url:
        target_url = sa.engine.make_url(url)
        name = f"{target_url.database}_import"
        admin = sa.create_engine(target_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        target = Database(target_url.set(database=name).render_as_string(hide_password=False))
    else:
        target = Database(f"sqlite:///{data_dir / 'imported.sqlite3'}")
    target.use_audit_keys([b"bench-import-audit-key"])
    Base.metadata.create_all(target.engine)
    return target


def child(mode: str, data_dir: Path, url: str | None, key: str, workspace_id: int) -> None:
    settings = _settings(data_dir, url, key)
    db = Database(settings.sqlalchemy_url())
    db.use_audit_keys(audit_keys(settings))
    start = time.perf_counter()
    rows = 0
    if mode == "baseline":
        with db.read(scope=workspace_id) as session:
            t = Message.__table__
            stmt = (
                sa.select(t)
                .where(t.c.workspace_id == workspace_id)
                .execution_options(yield_per=BATCH)
            )
            for _row in session.execute(stmt):
                rows += 1
    elif mode == "export":
        out = data_dir / "export.zip"
        result = do_export_workspace(db, workspace_id, settings.data_dir, out)
        rows = result.rows["messages"]
        print(f"  archive: {out.stat().st_size / 1e6:.1f} MB")
    else:
        target = _import_target(data_dir, url)
        imported = do_import_workspace(
            target, data_dir / "export.zip", "Imported", data_dir / "imported"
        )
        rows = imported.rows["messages"]
        target.dispose()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(), "messages": rows}))
    db.dispose()


def measure(mode: str, data_dir: Path, url: str | None, key: str, workspace_id: int) -> dict:
    args = [sys.executable, __file__, "--child", mode, "--data-dir", str(data_dir)]
    # `--key=…` in one word: a Fernet key may begin with "-", which argparse would take
    # for an option (the child then exits with a usage error).
    args += [f"--key={key}", "--workspace-id", str(workspace_id)]
    if url:
        args += ["--postgres", url]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {mode} child failed (exit {done.returncode}):\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        log(line)
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--postgres", help="a PostgreSQL URL (its tables are dropped and rebuilt)")
    parser.add_argument("--quick", action="store_true", help="a smoke size: 5,000 messages")
    parser.add_argument("--child", choices=["baseline", "export", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--workspace-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.data_dir), args.postgres, args.key, args.workspace_id)
        return 0
    if args.quick:
        args.messages, args.conversations, args.agents = 5_000, 500, 5

    key = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory(prefix="puente-bench-export-") as tmp:
        data_dir = Path(tmp)
        settings = _settings(data_dir, args.postgres, key)
        db = Database(settings.sqlalchemy_url())
        db.use_audit_keys(audit_keys(settings))
        engine = "PostgreSQL" if db.is_postgres else "SQLite"
        if db.is_postgres:
            Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        log(
            f"Building {args.messages:,} messages in {args.conversations:,} conversations on {engine}…"
        )
        t = time.perf_counter()
        world = build(db, args.conversations, args.messages, args.agents)
        log(f"  built in {time.perf_counter() - t:.0f} s")
        db.dispose()
        ws = world["workspace_id"]

        base = measure("baseline", data_dir, args.postgres, key, ws)
        log(
            f"baseline: SELECT of {base['messages']:,} messages  {base['seconds']:6.1f} s  "
            f"peak {base['peak_mb']:.0f} MB"
        )
        export = measure("export", data_dir, args.postgres, key, ws)
        log(
            f"export:   whole workspace ({export['messages']:,} messages)  "
            f"{export['seconds']:6.1f} s  peak {export['peak_mb']:.0f} MB  "
            f"({export['seconds'] / max(base['seconds'], 1e-9):.1f}× the baseline)"
        )
        imported = measure("import", data_dir, args.postgres, key, ws)
        log(
            f"import:   into an empty database ({imported['messages']:,} messages)  "
            f"{imported['seconds']:6.1f} s  peak {imported['peak_mb']:.0f} MB"
        )
        # The targets are for the full size; a --quick run only shows the figures.
        scale = args.messages / 1_000_000
        ok = (
            export["seconds"] <= TARGET_SECONDS * max(scale, 1e-9)
            and export["peak_mb"] <= TARGET_MB
        )
        if not args.quick:
            verdict = "meets" if ok else "MISSES"
            log(f"{verdict} the target: under {TARGET_SECONDS} s and {TARGET_MB} MB for a million")
        return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
