"""Fault test: the worker process is SIGKILLed again and again during a broadcast, and
every recipient still gets exactly one message.

Everything runs as real processes talking real HTTP: the Meta sandbox (`puente sandbox`),
Puente's web process(es) (`puente serve --no-workers`, receiving the sandbox's webhooks)
and worker process(es) (`puente worker`). A worker is killed every 1-2 s and started
again until the broadcast has gone out; then the sandbox's status webhooks are let in.

A kill can leave items `sending`. Those Meta accepted are reconciled by their status
webhook (`biz_opaque_callback_data`); those that never left are shown as `unknown`
(docs/sending.md, "Crash safety") and the test then plays the person who checks the
phone (the sandbox's sent log) and resends them through the API. So "exactly one" holds
with nothing sent twice automatically.

PUENTE_FAULT_RECIPIENTS sets the size. The default is 1,000, not 10,000: every restart
costs seconds of start-up (about 3 s of CPU: imports and the app), so on a shared 2-core
machine 1,000 is what fits CI (2026-11-21, load 5: SQLite 121 s, 13 kills, 31 resent by
hand; PostgreSQL 83 s, 9 kills, 30 resent). The issue's full size,
PUENTE_FAULT_RECIPIENTS=10000 PUENTE_FAULT_MPS=200 (the time limits grow with the size),
load 4-9: SQLite 703 s, 95 kills, 449 resent; PostgreSQL 518 s, 53 kills, 406 resent;
each recipient exactly once. (PostgreSQL first failed there: its two workers' status
batches deadlocked, see tests/ingest/test_concurrent_statuses.py.) At 100 msg/s, 10,000
on SQLite had sent 7,731 after the 15 minutes the loop then had (122 kills).
The number sends at PUENTE_FAULT_MPS (100 msg/s by default), so that the broadcast lasts
through several kills. Figures in BENCHMARKS.md ("Outbound").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select, update

from puente.channels.models import Channel, ChannelMode
from puente.contacts.models import Contact, ContactTag, Tag
from puente.conversations.models import Message
from puente.db.base import utcnow
from puente.db.session import Database
from puente.ingest.models import EventState, WebhookEvent
from puente.outbound.models import (
    BroadcastRecipient,
    MessageTemplate,
    OutboxItem,
    OutboxState,
    RecipientState,
)
from puente.sandbox.seed import DEMO_NUMBER, DEMO_WABA
from tests.conftest import PG_URL, TEST_DB
from tests.factories import make_token, make_workspace

# 600 by default since the suite passed 15 minutes (at 100 msg/s still 6 s of sending and
# several kills); the 1,000 and 10,000 of the figures above with PUENTE_FAULT_RECIPIENTS.
RECIPIENTS = int(os.environ.get("PUENTE_FAULT_RECIPIENTS", "600"))
# The harness's budget, not a claim about Puente: the default size fits 400 s; a bigger
# one gets time in proportion (each restart costs seconds here).
KILL_LOOP_SECONDS = max(900, RECIPIENTS * 0.3)
# Kills stop after this many at the default size: on a busy machine the sending lasts
# longer, each kill and restart (a second of CPU for a worker's start) made it last longer
# still. Eight is well above the three the test requires; PUENTE_FAULT_MAX_KILLS changes
# it, and the bigger sizes have no limit.
MAX_KILLS = int(os.environ.get("PUENTE_FAULT_MAX_KILLS", "8" if RECIPIENTS <= 600 else "1000000"))
TIMEOUT = 400 if RECIPIENTS <= 1000 else int(KILL_LOOP_SECONDS) + 600

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]

# The number's throughput. The lane sends 1,000 a second now, which would finish the
# broadcast between two kills; at 100 msg/s it takes 10 s or more, several kills.
MPS = int(os.environ.get("PUENTE_FAULT_MPS", "100"))
APP_SECRET = "fault-app-secret"
VERIFY_TOKEN = "fault-verify-token"
SANDBOX_TOKEN = "sandbox-token"
PUENTE_BIN = str(Path(sys.executable).parent / "puente")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """Every child process, each in its own process group so a kill takes its children."""

    log_dir: Path
    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    log_offsets: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.log_offsets[name] = log.tell()
        self.running[name] = subprocess.Popen(
            [PUENTE_BIN, *args],
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.restarts[name] += 1

    def kill(self, name: str) -> None:
        proc = self.running.pop(name)
        with_group(proc, signal.SIGKILL)
        proc.wait(timeout=30)

    def wait_running(self, name: str) -> None:
        """Until `puente worker` says its workers run (start-up takes seconds here)."""

        def said_running() -> bool:
            with (self.log_dir / f"{name}.log").open("rb") as log:
                log.seek(self.log_offsets[name])
                return b"running" in log.read()

        wait_for(said_running, timeout=120, what=f"{name} to start")

    def alive(self, name: str) -> bool:
        proc = self.running.get(name)
        return proc is not None and proc.poll() is None

    def stop_all(self) -> None:
        for proc in self.running.values():
            with_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        self.running.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def with_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, sig)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Deployment:
    db: Database
    procs: Processes
    sandbox: str
    webs: list[str]
    auth: dict[str, str]
    workspace_id: int
    channel_id: int


def _database_url(tmp: Path) -> str | None:
    """SQLite lives in the data dir; PostgreSQL gets its own database next to the suite's."""
    if TEST_DB != "postgres":
        return None
    url = sa.engine.make_url(PG_URL)
    name = f"{url.database}_kill"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("PUENTE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _seed(db: Database, count: int) -> tuple[int, int, str]:
    """A workspace, the sandbox's demo number at 1,000 msg/s, the approved hello_world
    template and `count` contacts tagged "kill" (Core bulk inserts)."""
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Faults")
        fernet = Fernet(os.environ["_PUENTE_FAULT_KEY"].encode())
        channel = Channel(
            workspace_id=ws.id,
            name="Kill test",
            phone_number_id=DEMO_NUMBER,
            waba_id=DEMO_WABA,
            display_phone_number="15550783881",
            mode=ChannelMode.CLOUD_API.value,
            throughput_mps=MPS,
            access_token_encrypted=fernet.encrypt(SANDBOX_TOKEN.encode()).decode(),
            settings={},
        )
        session.add(channel)
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id=DEMO_WABA,
                name="hello_world",
                language="en_US",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hello World"}],
                meta_id="hello_world",
            )
        )
        tag = Tag(workspace_id=ws.id, name="kill")
        session.add(tag)
        session.flush()
        session.execute(
            insert(Contact),
            [
                {
                    "workspace_id": ws.id,
                    "wa_id": f"573{i:09d}",
                    "phone_e164": f"+573{i:09d}",
                    "name": f"Cliente {i}",
                    "sources": ["import"],
                    "custom_fields": {},
                }
                for i in range(count)
            ],
        )
        ids = session.scalars(select(Contact.id).where(Contact.workspace_id == ws.id)).all()
        session.execute(
            insert(ContactTag),
            [{"workspace_id": ws.id, "contact_id": c, "tag_id": tag.id} for c in ids],
        )
        token = make_token(session, ws)
        return ws.id, channel.id, token


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[[int, int], Deployment]]:
    procs: list[Processes] = []
    dbs: list[Database] = []

    def start(webs: int, workers: int) -> Deployment:
        key = Fernet.generate_key().decode()
        os.environ["_PUENTE_FAULT_KEY"] = key
        sandbox_port = _free_port()
        web_ports = [_free_port() for _ in range(webs)]
        env = dict(
            os.environ,
            PUENTE_DATA_DIR=str(tmp_path / "data"),
            PUENTE_SECRET_KEY=key,
            PUENTE_META_APP_SECRET=APP_SECRET,
            PUENTE_META_VERIFY_TOKEN=VERIFY_TOKEN,
            PUENTE_GRAPH_BASE_URL=f"http://127.0.0.1:{sandbox_port}",
            PUENTE_WORKER_POLL_SECONDS="0.2",
            PUENTE_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.pop("PUENTE_DATABASE_URL", None)
        url = _database_url(tmp_path)
        if url:
            env["PUENTE_DATABASE_URL"] = url
        (tmp_path / "data").mkdir()
        p = Processes(tmp_path, env)
        procs.append(p)
        subprocess.run([PUENTE_BIN, "migrate"], env=env, check=True, capture_output=True)
        db = Database(url or f"sqlite:///{tmp_path / 'data' / 'puente.sqlite3'}")
        db.use_audit_keys([b"fault-test-audit-key"])
        dbs.append(db)
        workspace_id, channel_id, token = _seed(db, RECIPIENTS)
        # The first web process receives the webhooks; statuses come 200 to a POST.
        p.start(
            "sandbox",
            [
                "sandbox",
                "--port",
                str(sandbox_port),
                "--callback-url",
                f"http://127.0.0.1:{web_ports[0]}/webhooks/whatsapp",
                "--app-secret",
                APP_SECRET,
                "--verify-token",
                VERIFY_TOKEN,
                "--access-token",
                SANDBOX_TOKEN,
                "--batch-size",
                "200",
            ],
        )
        for i, port in enumerate(web_ports):
            p.start(f"web{i}", ["serve", "--no-workers", "--port", str(port)])
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        wait_for(lambda: _answers(f"{sandbox}/_sandbox/api/state"), timeout=60, what="sandbox")
        for port in web_ports:
            health = f"http://127.0.0.1:{port}/healthz"
            wait_for(partial(_answers, health), timeout=60, what="web")
        patched = httpx.patch(f"{sandbox}/_sandbox/api/numbers/{DEMO_NUMBER}", json={"mps": MPS})
        assert patched.status_code == 200, patched.text
        for i in range(workers):
            p.start(f"worker{i}", ["worker"])
        return Deployment(
            db,
            p,
            sandbox,
            [f"http://127.0.0.1:{port}" for port in web_ports],
            {"Authorization": f"Bearer {token}"},
            workspace_id,
            channel_id,
        )

    try:
        yield start
    finally:
        for p in procs:
            p.stop_all()
        for db in dbs:
            db.dispose()
        os.environ.pop("_PUENTE_FAULT_KEY", None)


def _count(db: Database, query: Any) -> int:
    with db.read(unscoped="test") as session:
        return int(session.scalar(query) or 0)


def _outbox(db: Database, state: OutboxState) -> int:
    return _count(
        db, select(func.count()).select_from(OutboxItem).where(OutboxItem.state == state.value)
    )


def _unhanded(db: Database) -> int:
    """Items claimed by a lane but not handed to HTTP (a killed lane's go back by
    themselves once the next worker takes the lane)."""
    return _count(
        db,
        select(func.count()).where(
            OutboxItem.state == OutboxState.SENDING.value, OutboxItem.handed_at.is_(None)
        ),
    )


def _pending_recipients(db: Database) -> int:
    return _count(
        db,
        select(func.count())
        .select_from(BroadcastRecipient)
        .where(BroadcastRecipient.state == RecipientState.PENDING.value),
    )


def _new_events(db: Database) -> int:
    return _count(
        db,
        select(func.count())
        .select_from(WebhookEvent)
        .where(WebhookEvent.state == EventState.NEW.value),
    )


def _sent_counts(sandbox: str) -> Counter[str]:
    sent = httpx.get(
        f"{sandbox}/_sandbox/api/sent",
        params={"number_id": DEMO_NUMBER, "limit": RECIPIENTS * 3},
        timeout=60,
    ).json()
    return Counter(m["customer"].lstrip("+") for m in sent)


def _run_broadcast_killing(d: Deployment, victims: list[str], seed: int) -> dict[str, Any]:
    """Create the broadcast on the last web process, kill a worker every 1-2 s (taking
    `victims` in turn) until everything has gone out, then let the statuses in and
    resend what never left."""
    api = d.webs[-1] + "/api/v1"
    created = httpx.post(
        f"{api}/broadcasts",
        json={
            "name": "Kill test",
            "template": {"name": "hello_world", "language": "en_US"},
            "audience": {"kind": "tags", "tags": ["kill"]},
        },
        headers=d.auth,
        timeout=300,
    )
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    assert created.json()["total"] == RECIPIENTS
    rng = random.Random(seed)
    kills = 0
    deadline = time.monotonic() + KILL_LOOP_SECONDS

    def busy() -> bool:
        return bool(
            _pending_recipients(d.db) or _outbox(d.db, OutboxState.QUEUED) or _unhanded(d.db)
        )

    while busy() and kills < MAX_KILLS:
        assert time.monotonic() < deadline, "the broadcast did not finish"
        # Killed 1-2 s after it runs: it has claimed and sent by then, on this machine
        # it needs a few seconds to start, so counting from the restart would kill it
        # before its lanes ever ran.
        victim = victims[kills % len(victims)]
        d.procs.wait_running(victim)
        time.sleep(rng.uniform(1.0, 2.0))
        d.procs.kill(victim)
        kills += 1
        d.procs.start(victim, ["worker"])
    # Past MAX_KILLS the workers finish in peace (what the kills left is what is checked).
    wait_for(
        lambda: not busy(),
        timeout=max(0.0, deadline - time.monotonic()),
        what="the broadcast to finish",
    )
    # Let the statuses in: the sandbox drains its webhooks, a worker processes them.
    drained = httpx.post(f"{d.sandbox}/_sandbox/api/webhooks/drain", params={"timeout": 60})
    assert drained.json()["drained"], drained.text
    wait_for(lambda: _new_events(d.db) == 0, timeout=180, what="status webhooks processed")
    # Claims a killed worker never handed to HTTP went back to the queue by themselves
    # (the loop above waited for that). What is still SENDING was handed over but never
    # reached Meta (a reached one would have been reconciled by its status webhook): the
    # person checks the phone and resends it.
    counts = _sent_counts(d.sandbox)
    with d.db.unit_of_work(unscoped="test") as session:
        orphans = session.execute(
            select(OutboxItem.id, OutboxItem.payload, Message.wamid, OutboxItem.handed_at)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(OutboxItem.state == OutboxState.SENDING.value)
        ).all()
        assert all(o.handed_at is not None for o in orphans), "a claim was left stranded"
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_([o.id for o in orphans]))
            .values(handed_at=utcnow() - dt.timedelta(minutes=10))
        )
    for item_id, payload, wamid, _handed in orphans:
        wa_id = str(payload["to"]).lstrip("+")
        assert wamid is None and counts[wa_id] == 0, f"item {item_id} reached Meta"
        listed = httpx.post(f"{api}/outbox/{item_id}/resend", headers=d.auth, timeout=30)
        assert listed.status_code == 200, listed.text
    wait_for(
        lambda: _outbox(d.db, OutboxState.QUEUED) + _outbox(d.db, OutboxState.SENDING) == 0,
        timeout=120,
        what="resent items to go",
    )
    progress = httpx.get(f"{d.webs[0]}/api/v1/broadcasts/{broadcast_id}", headers=d.auth)
    assert progress.status_code == 200, progress.text
    return {"kills": kills, "resent": len(orphans), "progress": progress.json()}


def _assert_each_exactly_once(d: Deployment) -> None:
    counts = _sent_counts(d.sandbox)
    expected = {f"573{i:09d}" for i in range(RECIPIENTS)}
    assert set(counts) == expected, f"{len(expected - set(counts))} recipients got nothing"
    twice = {wa: n for wa, n in counts.items() if n != 1}
    assert not twice, f"sent more than once: {list(twice.items())[:10]}"
    with d.db.read(unscoped="test") as session:
        rows = session.execute(
            select(OutboxItem.state, Message.wamid)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(OutboxItem.channel_id == d.channel_id)
        ).all()
    assert len(rows) == RECIPIENTS
    assert Counter(state for state, _ in rows) == {OutboxState.SENT.value: RECIPIENTS}
    assert all(wamid for _, wamid in rows)


def test_worker_killed_repeatedly_on_sqlite_sends_each_recipient_once(
    deploy: Callable[[int, int], Deployment],
) -> None:
    if TEST_DB == "postgres":
        pytest.skip("the SQLite variant runs on the SQLite leg")
    d = deploy(1, 1)
    try:
        outcome = _run_broadcast_killing(d, ["worker0"], seed=1)
    except AssertionError:
        print(d.procs.tail("worker0"), d.procs.tail("web0"), sep="\n")
        raise
    assert outcome["kills"] >= 3, outcome
    _assert_each_exactly_once(d)
    print("kills", outcome["kills"], "resent by hand", outcome["resent"])


def test_two_webs_two_workers_on_postgres_one_killed_sends_each_recipient_once(
    deploy: Callable[[int, int], Deployment],
) -> None:
    if TEST_DB != "postgres":
        pytest.skip("the multi-process variant runs on the PostgreSQL leg")
    d = deploy(2, 2)
    try:
        # In turn: the lane's owner (one advisory lock) is hit at least every other kill,
        # and the lane moves between the processes.
        outcome = _run_broadcast_killing(d, ["worker0", "worker1"], seed=2)
    except AssertionError:
        print(d.procs.tail("worker0"), d.procs.tail("worker1"), d.procs.tail("web0"), sep="\n")
        raise
    assert outcome["kills"] >= 3, outcome
    _assert_each_exactly_once(d)
    print("kills", outcome["kills"], "resent by hand", outcome["resent"])
