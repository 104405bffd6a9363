"""History import: a coexistence number's six months of chats, delivered by the sandbox.

The sandbox runs as its own process (`puente sandbox`) holding C chats of M messages each.
Puente (uvicorn in this process, with its background workers) onboards the number through
the real onboarding code path, asks for the contacts sync and the history, and receives the
history as signed webhooks of out-of-order chunks (1,000 messages each, as Meta packs them).
Meanwhile a probe in its own process (as an agent's browser) asks for the inbox list
(`GET /api/v1/conversations?limit=50`) every 50 ms. Measured: time from the sync request until every message is stored and the import
shows 100 %, this process's peak memory (Puente and its workers), the probe's
p95 latency, and the ratio to one plain executemany of the same Message rows.

    .venv/bin/python bench/history.py [--chats 5000] [--messages 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select

from puente.accounts.service import do_create_workspace
from puente.accounts.tokens import do_create_token
from puente.app import create_app
from puente.channels.models import ChannelSync, Onboarding, OnboardingMethod
from puente.channels.onboarding import advance_sandbox_signup, do_start_sandbox_signup
from puente.config import Settings
from puente.contacts.models import Contact, ContactIdentity
from puente.conversations.models import Conversation, Message
from puente.db.models import Base
from puente.db.session import Database
from puente.ingest.models import WebhookChange
from puente.runtime import Runtime
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE

APP_SECRET = "bench-secret"
VERIFY = "bench-verify"
TOKEN = "bench-sandbox-token"
APP_ID = "100000000000001"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(data_dir: Path, sandbox: str, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        secret_key=SecretStr(Fernet.generate_key().decode()),
        session_secret=SecretStr("bench"),
        graph_base_url=sandbox,
        meta_app_id=APP_ID,
        meta_app_secret=SecretStr(APP_SECRET),
        meta_verify_token=SecretStr(VERIFY),
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
        worker_poll_seconds=0.05,
    )


def start_sandbox(port: int, callback: str) -> subprocess.Popen[bytes]:
    puente = str(Path(sys.executable).with_name("puente"))
    proc = subprocess.Popen(
        [
            puente, "sandbox", "--port", str(port), "--callback-url", callback,
            "--app-secret", APP_SECRET, "--verify-token", VERIFY, "--access-token", TOKEN,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/api/state").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the sandbox did not start")


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PUENTE_DATA_DIR": str(settings.data_dir),
        "PUENTE_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "PUENTE_SESSION_SECRET": "bench",
        "PUENTE_GRAPH_BASE_URL": settings.graph_base_url,
        "PUENTE_WORKER_POLL_SECONDS": "0.05",
        "PUENTE_LOG_LEVEL": "WARNING",
    }
    env.pop("PUENTE_DATABASE_URL", None)
    puente = str(Path(sys.executable).with_name("puente"))
    return subprocess.Popen(
        [puente, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def runtime_of(app: object) -> Runtime:
    runtime: Runtime = app.state.runtime  # type: ignore[attr-defined]
    return runtime


def set_ingest_batch(runtime: Runtime, size: int) -> None:
    """Shrink the in-process ingest worker's batch (an experiment, not a setting)."""
    from puente.ingest.worker import IngestProcessor

    for worker in runtime.workers:
        owner = getattr(getattr(worker, "_step", None), "__self__", None)
        if isinstance(owner, IngestProcessor):
            owner.batch_size = size


def peak_of(proc: subprocess.Popen[bytes]) -> float:
    """A live process's peak resident memory in MB (Linux: VmHWM)."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def probe_loop(url: str, token: str, stop: Event, out: Connection) -> None:
    """Ask for the inbox list every 50 ms until `stop`; send back (latencies, errors).

    It runs in its own process, as an agent's browser would: in the server's process its
    own Python would compete with the server for the GIL and count against the server.
    """
    latencies: list[float] = []
    errors = 0
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        while not stop.is_set():
            start = time.perf_counter()
            res = client.get("/api/v1/conversations", params={"limit": 50})
            latencies.append(time.perf_counter() - start)
            if res.status_code != 200:
                errors += 1
            stop.wait(0.05)
    out.send((latencies, errors))


class Probe:
    """The probe process and a way to stop it and collect its figures."""

    def __init__(self, url: str, token: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=probe_loop, args=(url, token, self.stop, send))
        self.latencies: list[float] = []
        self.errors = 0

    def start(self) -> None:
        self.process.start()

    def finish(self) -> None:
        self.stop.set()
        self.latencies, self.errors = self._recv.recv()
        self.process.join(10)


def import_done(runtime: Runtime, expected: int) -> tuple[bool, int, int]:
    with runtime.db.read(unscoped="benchmark") as session:
        stored = session.scalar(
            select(func.count()).select_from(Message).where(Message.source == "history")
        )
        sync_state = session.scalar(select(ChannelSync.history_state))
        pending = session.scalar(
            select(func.count())
            .select_from(WebhookChange)
            .where(WebhookChange.state.in_(("ready", "parked")))
        )
    progress = 100 if sync_state == "complete" else 0
    done = (stored or 0) >= expected and progress == 100 and not pending
    return done, stored or 0, progress


def baseline(run_db: Database, data_dir: Path) -> float:
    """The same Message rows, in one executemany into a schema holding the same contacts,
    identities and conversations."""
    settings = Settings(data_dir=data_dir, secret_key=SecretStr(Fernet.generate_key().decode()))
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url())
    Base.metadata.create_all(db.engine)
    copy_tables = ("workspaces", "channels")
    with run_db.read(unscoped="benchmark") as src, db.unit_of_work(unscoped="benchmark") as dst:
        for name in copy_tables:
            table = Base.metadata.tables[name]
            rows = [dict(r._mapping) for r in src.execute(table.select())]
            dst.execute(table.insert(), rows)
        for model in (Contact, ContactIdentity, Conversation):
            table = model.__table__
            dst.execute(table.insert(), [dict(r._mapping) for r in src.execute(table.select())])
        messages = [
            {k: v for k, v in r._mapping.items() if k != "id"}
            for r in src.execute(Message.__table__.select())
        ]
    start = time.perf_counter()
    with db.unit_of_work(unscoped="benchmark") as session:
        session.execute(Message.__table__.insert(), messages)
    elapsed = time.perf_counter() - start
    db.dispose()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=20, help="per chat")
    parser.add_argument("--chunk", type=int, default=1000, help="messages per history webhook")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--ingest-batch",
        type=int,
        default=0,
        help="experiment: webhook events per ingest transaction (Puente's default is 50)",
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="process webhooks in a separate `puente worker` instead of the web process",
    )
    args = parser.parse_args()
    expected = args.chats * args.messages
    port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"

    with tempfile.TemporaryDirectory(prefix="puente-bench-history-") as tmp:
        settings = settings_for(Path(tmp) / "run", sandbox_url, port)
        settings.data_dir.mkdir(parents=True)
        db = Database(settings.sqlalchemy_url())
        Base.metadata.create_all(db.engine)
        sandbox = start_sandbox(sandbox_port, f"http://127.0.0.1:{port}/webhooks/whatsapp")
        app = create_app(settings, db, run_workers=not args.worker_process)
        worker = start_worker(settings) if args.worker_process else None
        if args.ingest_batch:
            set_ingest_batch(runtime_of(app), args.ingest_batch)
        runtime: Runtime = app.state.runtime
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            control = httpx.Client(base_url=sandbox_url + "/_sandbox/api", timeout=120)
            control.patch("/config", json={"history_chunk_messages": args.chunk})
            made = control.post(
                f"/numbers/{DEMO_NUMBER}/history",
                json={"chats": args.chats, "messages": args.messages, "seed": 1},
            )
            made.raise_for_status()
            with runtime.db.unit_of_work(unscoped="benchmark") as session:
                ws = do_create_workspace(session, name="Bench")
                token = do_create_token(session, workspace_id=ws.id, name="bench").secret
                row: Onboarding = do_start_sandbox_signup(
                    session,
                    settings,
                    workspace_id=ws.id,
                    method=OnboardingMethod.COEXISTENCE,
                    phone=DEMO_PHONE,
                )
                ws_id, onboarding_id, ref, code = ws.id, row.id, row.signup_ref, row.confirm_code
            control.post(f"/signups/{ref}/confirm", json={"confirm_code": code})
            probe = Probe(f"http://127.0.0.1:{port}", token)
            probe.start()
            start = time.perf_counter()
            advance_sandbox_signup(runtime, ws_id, onboarding_id)
            stored, progress = 0, 0
            while time.perf_counter() - start < args.timeout:
                done, stored, progress = import_done(runtime, expected)
                if done:
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - start
            probe.finish()
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            worker_mb = peak_of(worker) if worker else 0.0
            with runtime.db.read(unscoped="benchmark") as session:
                chats = session.scalar(select(func.count()).select_from(Conversation)) or 0
                distinct = session.scalar(select(func.count(func.distinct(Message.wamid)))) or 0
        finally:
            server.should_exit = True
            thread.join(15)
            for proc in (sandbox, worker):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
        base = baseline(db, Path(tmp) / "baseline")
        db.dispose()

    lat = sorted(probe.latencies)
    p95 = lat[int(len(lat) * 0.95) - 1] if lat else float("nan")
    print(
        f"history: {expected} messages in {args.chats} chats, chunks of {args.chunk} "
        f"out of order, SQLite, cores: {os.cpu_count()}"
    )
    print(f"  imported:         {elapsed:7.2f} s  {stored / elapsed:9.0f} msg/s  ({progress} %)")
    print(f"  baseline insert:  {base:7.2f} s  {stored / base:9.0f} msg/s (plain executemany)")
    print(f"  ratio:            {elapsed / base:7.1f}x the bare insert")
    where = "web process" if worker_mb else "Puente and its workers"
    print(f"  peak memory:      {peak_mb:7.0f} MB (this process: {where})")
    if worker_mb:
        print(f"  worker process:   {worker_mb:7.0f} MB peak")
    print(
        f"  inbox list:       p95 {p95 * 1000:.0f} ms, median "
        f"{statistics.median(lat) * 1000 if lat else 0:.0f} ms over {len(lat)} requests, "
        f"{probe.errors} errors"
    )
    print(f"  chats: {chats}  stored: {stored}  distinct wamids: {distinct}")
    ok = stored == expected == distinct and chats == args.chats
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
