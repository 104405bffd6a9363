"""The pacing half of bench/outbound.py: sending rate against the sandbox, measured on the
sandbox's clock, and agent-reply latency during a broadcast. Run through
`bench/outbound.py pace`."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, insert, select

from puente.accounts.service import do_create_workspace
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import Contact, ContactTag, Tag
from puente.db.models import Base
from puente.db.session import Database
from puente.outbound.broadcasts.service import do_create_broadcast
from puente.outbound.models import MessageTemplate, OutboxItem, OutboxState
from puente.outbound.outbox.service import do_queue_message
from puente.outbound.outbox.worker import OutboxWorker
from puente.runtime import Runtime

TOKEN = "pace-token"
WABA = "102290129340398"  # the sandbox's demo WABA: hello_world is approved there
# The sandbox app wrapped with a counter of 130429 answers (any 400 on /messages here:
# every other rule passes for these requests), served at /_pace/refused.
SERVER = """
import json, uvicorn
from puente.sandbox import SandboxConfig, create_sandbox_app
app = create_sandbox_app(SandboxConfig(access_token="{token}", batch_size=100,
                                       status_delays=(0.0, 0.0, 0.0), freeze_gc=True))
refused = [0]
async def counted(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/_pace/refused":
        body = json.dumps({{"refused": refused[0]}}).encode()
        await send({{"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]}})
        await send({{"type": "http.response.body", "body": body}})
        return
    async def watch(message):
        if (message["type"] == "http.response.start" and message["status"] == 400
                and scope["path"].endswith("/messages")):
            refused[0] += 1
        await send(message)
    await app(scope, receive, watch)
uvicorn.run(counted, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 (loopback only)
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as res:  # noqa: S310 (loopback only)
        return json.loads(res.read())


def _setup(runtime: Runtime, number_id: str, rate: int, n: int, prefix: str) -> tuple[int, int]:
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        ws = do_create_workspace(session, name=f"Pace {rate}", slug=f"pace-{time.time_ns()}")
        channel = Channel(
            workspace_id=ws.id,
            name=f"{rate} mps",
            phone_number_id=number_id,
            waba_id=WABA,
            display_phone_number=number_id,
            throughput_mps=rate,
            access_token_encrypted=runtime.secrets.encrypt(TOKEN),
            settings={},
        )
        session.add(channel)
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id=WABA,
                name="hello_world",
                language="en_US",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hello World"}],
            )
        )
        tag = Tag(workspace_id=ws.id, name="clientes")
        session.add(tag)
        session.flush()
        rows = [
            {
                "workspace_id": ws.id,
                "wa_id": f"{prefix}{i:07d}",
                "phone_e164": f"+{prefix}{i:07d}",
                "name": f"Cliente {i}",
                "sources": ["import"],
                "custom_fields": {},
            }
            for i in range(n)
        ]
        ids = session.scalars(insert(Contact).returning(Contact.id), rows).all()
        session.execute(
            insert(ContactTag),
            [{"workspace_id": ws.id, "contact_id": c, "tag_id": tag.id} for c in ids],
        )
        return int(ws.id), int(channel.id)


def _broadcast(runtime: Runtime, workspace_id: int) -> int:
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        broadcast = do_create_broadcast(
            session,
            workspace_id=workspace_id,
            name="pace",
            template_name="hello_world",
            language="en_US",
            variables={},
            audience={"kind": "tags", "tags": ["clientes"]},
        )
        return int(broadcast.id)


def _left(runtime: Runtime, broadcast_id: int) -> int:
    with runtime.db.read(unscoped="benchmark") as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxItem.broadcast_id == broadcast_id,
                    OutboxItem.state.in_([OutboxState.QUEUED.value, OutboxState.SENDING.value]),
                )
            )
            or 0
        )


def _rate_run(base: str, runtime: Runtime, rate: int, seconds: float, index: int) -> None:
    number = _call(
        base,
        "POST",
        "/_sandbox/api/numbers",
        {"display_phone_number": f"1555900{index:04d}", "waba_id": WABA, "mps": rate,
         "coexistence": False},
    )  # fmt: skip
    n = int(rate * seconds)
    workspace_id, _channel = _setup(runtime, number["id"], rate, n, f"49{index}")
    refused_before = _call(base, "GET", "/_pace/refused")["refused"]
    started = time.time()
    broadcast_id = _broadcast(runtime, workspace_id)
    queued_in = time.time() - started
    load = os.getloadavg()[0]
    cpu_before = time.process_time()
    worker = OutboxWorker(runtime)
    worker.start()
    try:
        while _left(runtime, broadcast_id) > 0:
            time.sleep(0.5)
    finally:
        worker.stop()
    cpu = time.process_time() - cpu_before
    sent = _call(base, "GET", f"/_sandbox/api/sent?number_id={number['id']}&limit={n + 10}")
    stamps = sorted(float(m["timestamp"]) for m in sent)
    refused = _call(base, "GET", "/_pace/refused")["refused"] - refused_before
    steady = [t for t in stamps if t >= stamps[0] + 1.0]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    worst = _worst_second(stamps)
    print(
        f"{rate:>5} msg/s: {len(stamps)} sent in {stamps[-1] - stamps[0]:.1f} s"
        f" (queued in {queued_in:.1f} s); steady rate {achieved:.1f} msg/s"
        f" ({(achieved - rate) / rate * 100:+.1f} % of the limit);"
        f" most in any 1 s window {worst}; 130429 answers {refused};"
        f" worker CPU {cpu / max(1, len(stamps)) * 1e6:.0f} µs per send;"
        f" load average {load:.1f} at the start",
        flush=True,
    )


def _worst_second(stamps: list[float]) -> int:
    worst, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= 1.0:
            lo += 1
        worst = max(worst, hi - lo + 1)
    return worst


def _reply_latency(base: str, runtime: Runtime, replies: int, index: int) -> None:
    rate = 80
    number = _call(
        base,
        "POST",
        "/_sandbox/api/numbers",
        {"display_phone_number": f"1555900{index:04d}", "waba_id": WABA, "mps": rate,
         "coexistence": False},
    )  # fmt: skip
    n = rate * (replies * 2 + 10)  # keeps the broadcast running through every reply
    workspace_id, channel_id = _setup(runtime, number["id"], rate, n, f"48{index}")
    broadcast_id = _broadcast(runtime, workspace_id)
    worker = OutboxWorker(runtime)
    worker.start()
    latencies: list[float] = []
    try:
        time.sleep(3)  # the broadcast is in full flow
        for i in range(replies):
            to = f"47{index}{i:07d}"
            queued = time.time()
            with runtime.db.unit_of_work(unscoped="benchmark") as session:
                do_queue_message(
                    session,
                    workspace_id=workspace_id,
                    message_type="template",
                    content={"name": "hello_world", "language": {"code": "en_US"}},
                    to="+" + to,
                    channel_id=channel_id,
                )
            accepted = None
            while accepted is None and time.time() - queued < 30:
                found = _call(base, "GET", f"/_sandbox/api/sent?to={to}&limit=1")
                accepted = float(found[0]["timestamp"]) if found else None
                time.sleep(0.02)
            if accepted is not None:
                latencies.append(accepted - queued)
            time.sleep(1)
        still = _left(runtime, broadcast_id)
    finally:
        worker.stop()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(
        f"agent replies during a {rate} msg/s broadcast ({still} broadcast sends still queued"
        f" at the end): {len(latencies)}/{replies} accepted; queue->accepted p50"
        f" {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms,"
        f" max {latencies[-1] * 1000:.0f} ms",
        flush=True,
    )


def pace(args: argparse.Namespace) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(token=TOKEN, port=port)])
    try:
        for _ in range(600):
            try:
                _call(base, "GET", "/_pace/refused")
                break
            except OSError:
                time.sleep(0.1)
        tmp = Path(tempfile.mkdtemp())
        settings = Settings(
            data_dir=tmp,
            database_url=f"sqlite:///{tmp / 'pace.sqlite3'}",
            graph_base_url=base,
            secret_key=SecretStr(Fernet.generate_key().decode()),
            run_workers=False,
            worker_poll_seconds=0.05,
        )
        db = Database(settings.sqlalchemy_url())
        Base.metadata.create_all(db.engine)
        runtime = Runtime.from_settings(settings, db)
        for index, rate in enumerate(int(r) for r in args.rates.split(",")):
            _rate_run(base, runtime, rate, args.seconds, index)
        if args.replies:
            _reply_latency(base, runtime, args.replies, 9)
    finally:
        server.terminate()
        server.wait(10)
