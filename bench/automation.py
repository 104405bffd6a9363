"""Workflows' speed (issue #16, "Speed"): what 50 workflows cost inbound processing, how
late 10,000 timers wake, and how fast 1,000 broadcast replies get their workflow's answer.

Each figure is printed beside a baseline measured in the same run:

`inbound`: bench/process's measurement (its own functions: stored webhook events turned
into contacts, conversations and messages by `do_process_new_events`) on a workspace
without workflows, and on the same workspace with 50 published, enabled workflows that
the bench's messages do not start (40 keyword workflows whose keywords are not in them,
5 "first message" ones whose trigger condition does not hold, 5 outside-hours ones on a
number whose business hours are open all week; the baseline's number has the same
hours). Each round is a fresh schema holding the same stored events; rounds alternate
(and swap which goes first), and the rates are medians.

`timers`: N runs waiting on a wait step (inserted in bulk, wake_at spread evenly over the
next `--timer-spread` seconds), the step after the wait a branch on the contact's tags
then the end. The workflow worker's own step (`worker.run_step`) runs in the jobs
module's Worker thread as `puente worker` runs it: again at once after a batch, else it
sleeps worker_poll_seconds. Lateness is when the step after the wait was taken (its
WorkflowRunStep.at) minus wake_at, and when its batch committed minus wake_at. Baseline:
the same for 100 timers.

`replies`: the Meta sandbox in its own process; Puente (uvicorn in this process with all
its workers, as `puente serve` runs) has a number, a broadcast of hello_world sent to
every customer through the outbox, and a published broadcast_reply workflow whose first
step sends a text. Then the customers reply through the sandbox's phones (a process of
its own, at `--reply-rate` a second): the sandbox posts the signed webhook, and Puente
stores it, processes it, notes the broadcast reply, starts the run, queues the answer
and sends it. Measured per reply: from the webhook's storage (WebhookEvent.received_at)
to the answer's outbox item being queued (its created_at, in the run's transaction) and
to the sandbox accepting the send (its own clock, GET /_sandbox/api/sent). Baseline:
single replies, one at a time.

    .venv/bin/python bench/automation.py [--quick] [--only inbound|timers|replies]
        [--postgres postgresql+psycopg://postgres@127.0.0.1/puente_bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, insert, select

import puente.automation.workflows.worker as workflow_worker
from process import _ensure_database, body_of, generate, make_channel, make_runtime, run_processing
from puente.accounts.service import do_create_workspace
from puente.app import create_app
from puente.automation.hours import DAYS, business_hours_json, parse_business_hours
from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import ACTIVE, Workflow, WorkflowRun, WorkflowRunStep
from puente.automation.workflows.service import do_create_workflow, do_publish, do_set_enabled
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import Contact, ContactTag, Tag
from puente.conversations.models import Conversation, Message
from puente.db.base import utcnow
from puente.db.models import Base
from puente.db.session import Database
from puente.ingest.models import WebhookEvent
from puente.ingest.store import do_store_webhooks
from puente.jobs import WORKFLOWS, Worker
from puente.outbound.broadcasts.service import do_create_broadcast
from puente.outbound.models import BroadcastRecipient, MessageTemplate, OutboxItem, OutboxState
from puente.runtime import Runtime

# -- figures -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f} ms"


def spread(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {ms(pct(values, 0.50))}  p95 {ms(pct(values, 0.95))}  "
        f"p99 {ms(pct(values, 0.99))}  max {ms(max(values))}  (n={len(values)})"
    )


def at(stamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, dt.UTC)


def install(db: Database, workspace_id: int, definition: dict[str, Any], name: str) -> int:
    """A workflow created, published and switched on as a supervisor would."""
    with db.unit_of_work(scope=workspace_id) as session:
        workflow = do_create_workflow(
            session, workspace_id, name=name, definition=parse_definition(definition)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
        return workflow.id


# -- 1. inbound processing with 50 workflows ------------------------------------------------

# Words customers write to shops; none is in bench/process's messages ("Mensaje N de S:
# ¿tienen la talla M en rojo?"), so no keyword workflow starts.
VOCABULARY = (
    "precio", "catálogo", "horario", "envío", "factura", "devolución", "garantía", "cita",
    "reserva", "pago", "transferencia", "ubicación", "dirección", "menú", "promoción",
    "descuento", "cupón", "pedido", "rastreo", "cancelar", "cambio", "reembolso", "queja",
    "asesor", "humano", "agente", "mayoreo", "crédito", "tarjeta", "efectivo", "domicilio",
    "sucursal", "abierto", "vacante", "empleo", "proveedor", "cotización", "apartado",
    "inventario", "membresía",
)  # fmt: skip
# Trigger conditions of the "first message" workflows: none holds for the bench's
# customers (no tags, no custom fields, names "Cliente NNNN", the number open).
FIRST_CONDITIONS = (
    {"field": "contact.tags", "op": "contains", "value": "vip"},
    {"field": "custom.segmento", "op": "eq", "value": "mayorista"},
    {"field": "contact.name", "op": "contains", "value": "S.A."},
    {"field": "business_hours", "op": "eq", "value": "closed"},
    {"field": "contact.tags", "op": "contains", "value": "reclamo"},
)
OPEN_ALL_WEEK = {
    "time_zone": "America/Mexico_City",
    "week": {day: [{"start": "00:00", "end": "24:00"}] for day in DAYS},
}


def fifty_workflows() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for i in range(40):
        word, other = VOCABULARY[i], VOCABULARY[(i + 13) % len(VOCABULARY)]
        trigger = {
            "type": "message_received",
            "match": "keyword",
            "keywords": [word, f"{other} por favor", f"info {word}"],
            "keyword_mode": "exact" if i % 4 == 3 else "contains",
        }
        found.append(
            {
                "trigger": trigger,
                "steps": [
                    {"id": "answer", "type": "send_message", "text": f"Sobre {word}: …"},
                    {"id": "tag", "type": "add_tag", "tag": word},
                ],
            }
        )
    for rule in FIRST_CONDITIONS:
        found.append(
            {
                "trigger": {
                    "type": "message_received",
                    "match": "first",
                    "conditions": {"rules": [rule]},
                },
                "steps": [{"id": "hello", "type": "send_message", "text": "¡Bienvenido!"}],
            }
        )
    for i in range(5):
        found.append(
            {
                "trigger": {"type": "outside_hours"},
                "steps": [{"id": "closed", "type": "send_message", "text": f"Cerrado ({i})."}],
            }
        )
    return found


def inbound_round(
    data_dir: Path, url: str | None, bodies: list[bytes], batch: int, with_workflows: bool
) -> tuple[float, int, int]:
    """One fresh schema: (processing seconds, distinct messages stored, runs started)."""
    runtime = make_runtime(data_dir, url)
    workspace_id, channel_id = make_channel(runtime)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        hours = business_hours_json(parse_business_hours(OPEN_ALL_WEEK))
        channel.settings = {**(channel.settings or {}), "business_hours": hours}
    if with_workflows:
        for i, definition in enumerate(fifty_workflows()):
            install(runtime.db, workspace_id, definition, f"Flujo {i}")
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        do_store_webhooks(session, bodies)
    elapsed = run_processing(runtime, batch)
    with runtime.db.read(unscoped="benchmark") as session:
        stored = session.scalar(select(func.count(func.distinct(Message.wamid)))) or 0
        runs = session.scalar(select(func.count()).select_from(WorkflowRun)) or 0
    runtime.db.dispose()
    return elapsed, stored, runs


def bench_inbound(args: argparse.Namespace, tmp: Path) -> bool:
    posts = generate(args.messages, args.contacts, args.per_post)
    rng = random.Random(11)
    resent = rng.sample(range(len(posts)), int(len(posts) * 0.05))
    bodies = [body_of(p) for p in posts] + [body_of(posts[i], retry=True) for i in resent]
    # Warm-up, not counted: the first round would pay for imports and first-use caches.
    inbound_round(tmp / "inbound-warm", args.postgres, bodies[:20], args.batch, True)
    rates: dict[bool, list[float]] = {False: [], True: []}
    ok = True
    print(
        f"inbound with 50 workflows: {args.messages} messages in {len(posts)} POSTs "
        f"(+{len(resent)} resent) from {args.contacts} contacts, batch {args.batch}, "
        f"{args.rounds} rounds each, alternating",
        flush=True,
    )
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for with_workflows in order:
            kind = "workflows" if with_workflows else "baseline"
            elapsed, stored, runs = inbound_round(
                tmp / f"inbound-{r}-{kind}", args.postgres, bodies, args.batch, with_workflows
            )
            rate = args.messages / elapsed
            rates[with_workflows].append(rate)
            print(f"  round {r + 1} {kind:9}: {rate:7.0f} msg/s  ({elapsed:.2f} s)", flush=True)
            if stored != args.messages or runs != 0:
                print(f"    !! stored {stored} of {args.messages}, runs started {runs} (want 0)")
                ok = False
    base, loaded = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"  baseline, no workflows:   {base:7.0f} msg/s (median)")
    print(f"  with 50 workflows:        {loaded:7.0f} msg/s (median)")
    print(f"  loss:                     {(1 - loaded / base) * 100:6.1f} %  (target: at most 10 %)")
    return ok


# -- 2. timers -------------------------------------------------------------------------------

TIMER_WORKFLOW: dict[str, Any] = {
    "trigger": {"type": "api"},
    "steps": [
        {"id": "pause", "type": "wait", "seconds": 10, "next": "check"},
        {
            "id": "check",
            "type": "branch",
            "conditions": {"rules": [{"field": "contact.tags", "op": "contains", "value": "vip"}]},
            "next": "done",
            "otherwise": "done",
        },
        {"id": "done", "type": "end"},
    ],
}


def timer_setup(runtime: Runtime, contacts: int) -> tuple[int, int, int, list[tuple[int, int]]]:
    """A workspace with `contacts` contacts, a conversation each, and the timer workflow:
    (workspace, workflow, its version, [(contact, conversation)])."""
    workspace_id, channel_id = make_channel(runtime)
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        session.execute(
            insert(Contact),
            [
                {"workspace_id": workspace_id, "wa_id": f"5255{i:08d}", "sources": []}
                for i in range(contacts)
            ],
        )
        ids = session.scalars(select(Contact.id).order_by(Contact.id)).all()
        session.execute(
            insert(Conversation),
            [
                {"workspace_id": workspace_id, "channel_id": channel_id, "contact_id": c}
                for c in ids
            ],
        )
        pairs = list(
            session.execute(
                select(Conversation.contact_id, Conversation.id).order_by(Conversation.id)
            ).tuples()
        )
    workflow_id = install(runtime.db, workspace_id, TIMER_WORKFLOW, "Espera")
    with runtime.db.read(scope=workspace_id) as session:
        version_id = session.scalar(
            select(Workflow.published_version_id).where(Workflow.id == workflow_id)
        )
    assert version_id is not None
    return workspace_id, workflow_id, version_id, pairs


def timer_round(
    runtime: Runtime,
    setup: tuple[int, int, int, list[tuple[int, int]]],
    n: int,
    seconds: float,
    label: str,
) -> tuple[list[float], list[float], int]:
    """N waiting runs due over the next `seconds`, the worker on them until all ended:
    (lateness when the step was taken, lateness when its batch committed, not done)."""
    workspace_id, workflow_id, version_id, pairs = setup
    lead = 2.0 + n / 4000  # the bulk insert must be over before the first run is due
    first = time.time() + lead
    wakes = [first + seconds * i / n for i in range(n)]
    rows = [
        {
            "workspace_id": workspace_id,
            "workflow_id": workflow_id,
            "version_id": version_id,
            "contact_id": pairs[i % len(pairs)][0],
            "conversation_id": pairs[i % len(pairs)][1],
            "trigger": "api",
            "trigger_key": f"{label}:{i}",
            "status": "waiting",
            "step_id": "check",  # the step after the wait
            "steps_taken": 1,
            "variables": {},
            "wake_at": at(wakes[i]),
        }
        for i in range(n)
    ]
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        for start in range(0, n, 5000):
            session.execute(insert(WorkflowRun), rows[start : start + 5000])
    if time.time() > first:
        print(f"  !! the insert ended {time.time() - first:.2f} s after the first timer was due")

    committed: dict[dt.datetime, float] = {}  # a batch's `now` -> when it committed

    def step() -> bool:
        # What the installed worker's step does (run_step(db)), with the batch's clock
        # noted: run_step stamps each run it ends with this `now`.
        now = utcnow()
        did = workflow_worker.run_step(runtime.db, now)
        committed[now] = time.time()
        return did

    idle = runtime.settings.worker_poll_seconds * workflow_worker.POLL_FACTOR
    worker = Worker("bench-workflows", WORKFLOWS, step, idle_seconds=idle)
    worker.start()
    try:
        deadline = wakes[-1] + 120
        while time.time() < deadline:
            time.sleep(0.5)
            if time.time() < wakes[-1]:
                continue
            with runtime.db.read(unscoped="benchmark") as session:
                active = session.scalar(
                    select(func.count())
                    .select_from(WorkflowRun)
                    .where(
                        WorkflowRun.trigger_key.startswith(f"{label}:"),
                        WorkflowRun.status.in_(ACTIVE),
                    )
                )
            if not active:
                break
    finally:
        worker.stop()
        worker.join()
    taken: list[float] = []
    done: list[float] = []
    with runtime.db.read(unscoped="benchmark") as session:
        found = session.execute(
            select(WorkflowRun.trigger_key, WorkflowRun.finished_at, WorkflowRunStep.at)
            .join(WorkflowRunStep, WorkflowRunStep.run_id == WorkflowRun.id)
            .where(
                WorkflowRun.trigger_key.startswith(f"{label}:"),
                WorkflowRun.status == "done",
                WorkflowRunStep.step_id == "check",
            )
        ).tuples()
        for key, finished_at, step_at in found:
            wake = wakes[int(key.split(":")[1])]
            taken.append(step_at.timestamp() - wake)
            if finished_at in committed:
                done.append(committed[finished_at] - wake)
    return taken, done, n - len(taken)


def bench_timers(args: argparse.Namespace, tmp: Path) -> bool:
    runtime = make_runtime(tmp / "timers", args.postgres)
    setup = timer_setup(runtime, args.timers)
    poll = runtime.settings.worker_poll_seconds * workflow_worker.POLL_FACTOR
    print(
        f"timers: runs waiting on a wait step, wake_at spread over {args.timer_spread:g} s, "
        f"step after the wait a branch; one worker thread, batches of "
        f"{workflow_worker.BATCH}, idle poll {poll:g} s",
        flush=True,
    )
    ok = True
    for n, label in ((args.baseline_timers, "baseline"), (args.timers, "timers")):
        taken, committed, missing = timer_round(runtime, setup, n, args.timer_spread, label)
        name = f"{n} timers" + (" (baseline)" if label == "baseline" else "")
        print(f"  {name:22} step taken - wake_at:  {spread(taken)}", flush=True)
        print(f"  {'':22} committed - wake_at:  {spread(committed)}", flush=True)
        if missing:
            print(f"    !! {missing} runs did not end")
            ok = False
    print("  target: p99 within 1 s (10,000 timers)")
    runtime.db.dispose()
    return ok


# -- 3. broadcast replies ------------------------------------------------------------------

APP_SECRET = "bench-secret"
VERIFY = "bench-verify"
TOKEN = "bench-sandbox-token"
APP_ID = "100000000000001"
WABA = "102290129340398"  # the sandbox's demo WABA: hello_world is approved there
# The sandbox batches pending webhook updates (Meta packs up to 1,000 in a POST) and
# posts on two connections; statuses come 0, 0.2 and 0.5 s after each send.
SANDBOX = """
import uvicorn
from puente.sandbox import SandboxConfig, create_sandbox_app
config = SandboxConfig(callback_url="{callback}", app_secret="{secret}", verify_token="{verify}",
                       access_token="{token}", batch_size=100, concurrency=2, freeze_gc=True)
uvicorn.run(create_sandbox_app(config), host="127.0.0.1", port={port}, log_level="warning",
            access_log=False)
"""
ANSWER_WORKFLOW: dict[str, Any] = {
    "trigger": {"type": "broadcast_reply"},
    "steps": [
        {
            "id": "answer",
            "type": "send_message",
            "text": "¡Gracias por responder, {contact.first_name|}! Te paso el catálogo.",
        }
    ],
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settle(check: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
    """Whether `check` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    if not settle(check, timeout, every):
        raise RuntimeError(f"timed out waiting for {what}")


@contextmanager
def live_puente(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[Runtime, httpx.Client]]:
    """The sandbox (own process) and Puente (uvicorn in a thread here, its workers on)."""
    port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    code = SANDBOX.format(
        callback=f"http://127.0.0.1:{port}/webhooks/whatsapp",
        secret=APP_SECRET,
        verify=VERIFY,
        token=TOKEN,
        port=sandbox_port,
    )
    sandbox = subprocess.Popen([sys.executable, "-c", code])
    settings = Settings(
        data_dir=tmp / "replies",
        database_url=args.postgres,
        secret_key=SecretStr(Fernet.generate_key().decode()),
        session_secret=SecretStr("bench"),
        graph_base_url=sandbox_url,
        meta_app_id=APP_ID,
        meta_app_secret=SecretStr(APP_SECRET),
        meta_verify_token=SecretStr(VERIFY),
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url())
    if args.postgres:
        Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    app = create_app(settings, db, run_workers=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    control = httpx.Client(base_url=sandbox_url + "/_sandbox/api", timeout=60)
    try:
        wait_for("Puente", lambda: server.started, 30)

        def sandbox_up() -> bool:
            try:
                return control.get("/state").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the sandbox", sandbox_up, 30, 0.2)
        yield app.state.runtime, control
    finally:
        control.close()
        server.should_exit = True
        thread.join(15)
        sandbox.terminate()
        sandbox.wait(10)
        db.dispose()


def customers(n: int) -> list[str]:
    return [f"5255{i:08d}" for i in range(n)]


def replies_setup(runtime: Runtime, number_id: str, mps: int, wa_ids: list[str]) -> int:
    """The workspace, its number, hello_world, the customers tagged "clientes"."""
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        ws = do_create_workspace(session, name="Bench replies")
        session.add(
            Channel(
                workspace_id=ws.id,
                name="Bench number",
                phone_number_id=number_id,
                waba_id=WABA,
                display_phone_number="15559000001",
                throughput_mps=mps,
                access_token_encrypted=runtime.secrets.encrypt(TOKEN),
                settings={},
            )
        )
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
        ids = session.scalars(
            insert(Contact).returning(Contact.id),
            [
                {
                    "workspace_id": ws.id,
                    "wa_id": wa_id,
                    "phone_e164": f"+{wa_id}",
                    "name": f"Cliente {i}",
                    "sources": ["import"],
                    "custom_fields": {},
                }
                for i, wa_id in enumerate(wa_ids)
            ],
        ).all()
        session.execute(
            insert(ContactTag),
            [{"workspace_id": ws.id, "contact_id": c, "tag_id": tag.id} for c in ids],
        )
        return int(ws.id)


def send_broadcast(runtime: Runtime, control: httpx.Client, workspace_id: int) -> None:
    """hello_world to every customer, sent through the outbox; then wait until the
    sandbox's status webhooks are stored and processed, so replies start on a quiet
    Puente, and a second more (a reply counts for the broadcast when its timestamp, in
    whole seconds, is not before the broadcast message's)."""
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        broadcast_id = do_create_broadcast(
            session,
            workspace_id=workspace_id,
            name="Catálogo",
            template_name="hello_world",
            language="en_US",
            variables={},
            audience={"kind": "tags", "tags": ["clientes"]},
        ).id

    def sent() -> bool:
        with runtime.db.read(unscoped="benchmark") as session:
            left = session.scalar(
                select(func.count()).where(
                    OutboxItem.broadcast_id == broadcast_id,
                    OutboxItem.state != OutboxState.SENT.value,
                )
            )
        return left == 0

    wait_for("the broadcast to be sent", sent, 600, 0.5)
    control.post("/drain", params={"timeout": 60})
    wait_for("the status webhooks", lambda: unprocessed(runtime) == 0, 120, 0.2)
    time.sleep(1.5)


def unprocessed(runtime: Runtime) -> int:
    with runtime.db.read(unscoped="benchmark") as session:
        return int(
            session.scalar(
                select(func.count()).select_from(WebhookEvent).where(WebhookEvent.state == "new")
            )
            or 0
        )


def feed_replies(base_url: str, number_id: str, wa_ids: list[str], rate: float, go: Any) -> None:
    """The customers' phones (in a process of their own): one reply each, `rate` a second."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        go.wait()
        start = time.monotonic()
        for i, wa_id in enumerate(wa_ids):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            res = client.post(
                f"/numbers/{number_id}/inbound", json={"from": wa_id, "text": "Sí, me interesa"}
            )
            res.raise_for_status()


def answers(
    runtime: Runtime, workflow_id: int
) -> dict[str, tuple[dt.datetime, dt.datetime | None]]:
    """Per customer: when the answer's outbox item was queued, and when it was sent."""
    with runtime.db.read(unscoped="benchmark") as session:
        rows = session.execute(
            select(Contact.wa_id, OutboxItem.created_at, OutboxItem.sent_at)
            .join(WorkflowRun, WorkflowRun.contact_id == Contact.id)
            .join(WorkflowRunStep, WorkflowRunStep.run_id == WorkflowRun.id)
            .join(OutboxItem, OutboxItem.message_id == WorkflowRunStep.message_id)
            .where(WorkflowRun.workflow_id == workflow_id, WorkflowRunStep.step_id == "answer")
        ).tuples()
        return {wa_id: (queued, sent) for wa_id, queued, sent in rows if wa_id}


def stored_at(runtime: Runtime, since: dt.datetime) -> dict[str, dt.datetime]:
    """Per customer: when the webhook holding their message was stored."""
    found: dict[str, dt.datetime] = {}
    with runtime.db.read(unscoped="benchmark") as session:
        events = session.execute(
            select(WebhookEvent.received_at, WebhookEvent.body).where(
                WebhookEvent.received_at >= since
            )
        ).tuples()
        for received_at, body in events:
            if b'"messages"' not in body:
                continue
            for entry in json.loads(body).get("entry", []):
                for change in entry.get("changes", []):
                    for message in change.get("value", {}).get("messages", []):
                        found.setdefault(message["from"], received_at)
    return found


def accepted_at(control: httpx.Client, number_id: str) -> dict[str, float]:
    """Per customer: when the sandbox accepted the text sent to them (its own clock, this
    machine's; the outbox's sent_at may come from a status webhook's whole second)."""
    sent = control.get("/sent", params={"number_id": number_id, "limit": 1_000_000}).json()
    return {m["customer"]: float(m["timestamp"]) for m in sent if m["type"] == "text"}


def latencies(
    runtime: Runtime,
    control: httpx.Client,
    number_id: str,
    workflow_id: int,
    wa_ids: list[str],
    since: dt.datetime,
) -> tuple[list[float], list[float]]:
    """(stored -> answer queued, stored -> answer accepted by the sandbox), in seconds."""
    stored = stored_at(runtime, since)
    done = answers(runtime, workflow_id)
    accepted = accepted_at(control, number_id)
    queued, sent = [], []
    for wa_id in wa_ids:
        if wa_id not in stored or wa_id not in done:
            continue
        queued.append((done[wa_id][0] - stored[wa_id]).total_seconds())
        if wa_id in accepted:
            sent.append(accepted[wa_id] - stored[wa_id].timestamp())
    return queued, sent


def reply_counts(runtime: Runtime, workflow_id: int, wa_ids: list[str]) -> str:
    """Where the replies got to: stored, noted as the broadcast's replies, runs started,
    answers sent (a shortfall names the stage that lost them)."""
    wanted = set(wa_ids)
    with runtime.db.read(unscoped="benchmark") as session:
        stored = session.execute(
            select(Contact.wa_id)
            .join(Message, Message.contact_id == Contact.id)
            .where(Message.direction == "inbound")
        ).scalars()
        noted = session.execute(
            select(Contact.wa_id)
            .join(BroadcastRecipient, BroadcastRecipient.contact_id == Contact.id)
            .where(BroadcastRecipient.replied_at.is_not(None))
        ).scalars()
        runs = session.execute(
            select(Contact.wa_id)
            .join(WorkflowRun, WorkflowRun.contact_id == Contact.id)
            .where(WorkflowRun.workflow_id == workflow_id)
        ).scalars()
        counts = [len(wanted & set(found)) for found in (stored, noted, runs)]
    sent = answers_sent(runtime, workflow_id, wa_ids)
    return (
        f"{counts[0]} stored, {counts[1]} noted as broadcast replies, "
        f"{counts[2]} runs, {sent} answers sent"
    )


def answers_sent(runtime: Runtime, workflow_id: int, wa_ids: list[str]) -> int:
    done = answers(runtime, workflow_id)
    return sum(1 for wa_id in wa_ids if wa_id in done and done[wa_id][1] is not None)


def bench_replies(args: argparse.Namespace, tmp: Path) -> bool:
    everyone = customers(args.replies + args.baseline_replies)
    singles, crowd = everyone[: args.baseline_replies], everyone[args.baseline_replies :]
    with live_puente(args, tmp) as (runtime, control):
        number = control.post(
            "/numbers",
            json={
                "display_phone_number": "15559000001",
                "waba_id": WABA,
                "mps": args.mps,
                "coexistence": False,
            },
        ).json()
        workspace_id = replies_setup(runtime, number["id"], args.mps, everyone)
        workflow_id = install(runtime.db, workspace_id, ANSWER_WORKFLOW, "Respuesta")
        send_broadcast(runtime, control, workspace_id)
        print(
            f"broadcast replies: a broadcast to {len(everyone)} customers, sent; a "
            f"broadcast_reply workflow answers with a text; the number at {args.mps} msg/s",
            flush=True,
        )

        since = utcnow()
        for wa_id in singles:  # the baseline: one reply at a time
            res = control.post(
                f"/numbers/{number['id']}/inbound", json={"from": wa_id, "text": "Sí, me interesa"}
            )
            res.raise_for_status()

            def answered(wa_id: str = wa_id) -> bool:
                return answers_sent(runtime, workflow_id, [wa_id]) == 1

            settle(answered, 30, 0.05)
            time.sleep(0.5)
        base_queued, base_sent = latencies(
            runtime, control, number["id"], workflow_id, singles, since
        )
        base_counts = reply_counts(runtime, workflow_id, singles)

        since = utcnow()
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        feeder = ctx.Process(
            target=feed_replies,
            args=(str(control.base_url), number["id"], crowd, args.reply_rate, go),
        )
        feeder.start()
        time.sleep(2)  # the feeder imports; replies start when it is ready and told
        go.set()
        expected = len(crowd) / args.reply_rate
        settle(lambda: answers_sent(runtime, workflow_id, crowd) == len(crowd), expected + 60, 0.5)
        feeder.join(30)
        crowd_queued, crowd_sent = latencies(
            runtime, control, number["id"], workflow_id, crowd, since
        )
        crowd_counts = reply_counts(runtime, workflow_id, crowd)
    print(f"  {len(singles)} single replies (baseline), one at a time: {base_counts}")
    print(f"    stored -> answer queued:   {spread(base_queued)}")
    print(f"    stored -> answer accepted: {spread(base_sent)}")
    print(f"  {len(crowd)} replies at {args.reply_rate:g}/s over {expected:.0f} s: {crowd_counts}")
    print(f"    stored -> answer queued:   {spread(crowd_queued)}")
    print(f"    stored -> answer accepted: {spread(crowd_sent)}")
    print("  target: each answer sent within 2 s at p95")
    return len(crowd_sent) == len(crowd) and len(base_sent) == len(singles)


# -- main ------------------------------------------------------------------------------------

QUICK: dict[str, Any] = {
    "messages": 1_000,
    "contacts": 100,
    "rounds": 2,
    "timers": 500,
    "baseline_timers": 20,
    "timer_spread": 3.0,
    "replies": 50,
    "baseline_replies": 2,
    "reply_rate": 50.0,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke size")
    parser.add_argument("--only", choices=("inbound", "timers", "replies"))
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--per-post", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--baseline-timers", type=int, default=100)
    parser.add_argument("--timer-spread", type=float, default=10.0)
    parser.add_argument("--replies", type=int, default=1_000)
    parser.add_argument("--baseline-replies", type=int, default=5)
    parser.add_argument("--reply-rate", type=float, default=100.0, help="replies a second")
    parser.add_argument("--mps", type=int, default=1000, help="the number's throughput")
    if parser.parse_known_args()[0].quick:  # sizes given with --quick still count
        parser.set_defaults(**QUICK)
    args = parser.parse_args()
    if args.postgres:
        _ensure_database(args.postgres)
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"automation: {engine}, cores: {os.cpu_count()}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="puente-bench-automation-") as tmp:
        if args.only in (None, "inbound"):
            ok = bench_inbound(args, Path(tmp)) and ok
        if args.only in (None, "timers"):
            ok = bench_timers(args, Path(tmp)) and ok
        if args.only in (None, "replies"):
            ok = bench_replies(args, Path(tmp)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
