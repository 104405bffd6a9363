"""Inbox speed at scale, measured over HTTP: the conversation list (first page, each
filter), opening a conversation (its latest 50 messages), message search, and how long a
new inbound message takes from the webhook POST to an agent's open event stream.

Builds the dataset with Core bulk inserts (default: 1,000,000 messages in 100,000
conversations, 50 agents in 5 teams, 3 numbers), then serves Puente with uvicorn in a
thread and signs in as the owner (sees everything) and as a team-scoped agent.
Baseline, same run: GET /healthz on the same server.

    .venv/bin/python bench/inbox.py [--messages 1000000] [--conversations 100000]
        [--requests 200] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/puente_bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr

from puente.accounts.credentials import hash_password
from puente.accounts.models import Membership, Team, TeamMember, User, Workspace
from puente.app import create_app
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import Contact, ContactIdentity
from puente.conversations.models import Conversation, Message
from puente.conversations.search import ensure_inbox_indexes, ensure_search_index
from puente.db.models import Base
from puente.db.session import Database
from puente.secrets import audit_keys

PASSWORD = "bench-password-long-enough"
APP_SECRET = "bench-app-secret"
WORDS = [
    "hola",
    "gracias",
    "pedido",
    "envío",
    "precio",
    "talla",
    "color",
    "entrega",
    "factura",
    "pago",
    "transferencia",
    "tienda",
    "horario",
    "mañana",
    "tarde",
    "dirección",
    "cambio",
    "devolución",
    "garantía",
    "stock",
    "oferta",
    "descuento",
    "zapatos",
    "camisa",
    "pantalón",
    "bolso",
    "regalo",
    "cumpleaños",
    "urgente",
    "confirmado",
    "cancelar",
    "número",
    "medellín",
    "bogotá",
    "monterrey",
    "madrid",
    "lima",
    "quito",
    "rastreo",
    "paquete",
    "caja",
    "tarjeta",
    "efectivo",
]
NAMES = [
    "Lucía",
    "Carlos",
    "Marta",
    "Pedro",
    "Sofía",
    "Juan",
    "Ana",
    "Diego",
    "Valeria",
    "Andrés",
    "Camila",
    "Mateo",
]
SURNAMES = [
    "Gómez",
    "Pérez",
    "Ruiz",
    "López",
    "Díaz",
    "Torres",
    "Rojas",
    "Castro",
    "Vargas",
    "Mora",
]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CHUNK = 20_000


def log(text: str) -> None:
    print(text, flush=True)


# -- the dataset ------------------------------------------------------------------------------


def build(
    db: Database, conversations: int, messages: int, agents: int, days: int = 180
) -> dict[str, Any]:
    rng = random.Random(42)
    t0 = time.perf_counter()
    pw = hash_password(PASSWORD)
    with db.engine.begin() as conn:
        ws = conn.execute(
            sa.insert(Workspace).returning(Workspace.id),
            {
                "name": "Bench",
                "slug": "bench",
                "timezone": "UTC",
                "settings": {},
                "created_at": NOW,
            },
        ).scalar_one()
        users = [
            {
                "email": f"agent{i}@bench.example" if i else "owner@bench.example",
                "name": f"Agent {i}" if i else "Owner",
                "password_hash": pw,
                "timezone": "America/Bogota",
                "availability": "online",
                "is_active": True,
                "totp_enabled": False,
                "created_at": NOW,
            }
            for i in range(agents + 1)
        ]
        user_ids = list(conn.execute(sa.insert(User).returning(User.id), users).scalars())
        user_ids = sorted(user_ids)
        conn.execute(
            sa.insert(Membership),
            [
                {
                    "workspace_id": ws,
                    "user_id": uid,
                    "role": "owner" if n == 0 else "agent",
                    "permissions": {},
                    "is_active": True,
                    "created_at": NOW,
                }
                for n, uid in enumerate(user_ids)
            ],
        )
        team_ids = sorted(
            conn.execute(
                sa.insert(Team).returning(Team.id),
                [{"workspace_id": ws, "name": f"Team {t}", "created_at": NOW} for t in range(5)],
            ).scalars()
        )
        agent_ids = user_ids[1:]
        conn.execute(
            sa.insert(TeamMember),
            [
                {"workspace_id": ws, "team_id": team_ids[n % 5], "user_id": uid}
                for n, uid in enumerate(agent_ids)
            ],
        )
        channel_ids = sorted(
            conn.execute(
                sa.insert(Channel).returning(Channel.id),
                [
                    {
                        "workspace_id": ws,
                        "name": f"Number {c}",
                        "phone_number_id": f"10654035224292{c}",
                        "waba_id": "102290129340398",
                        "display_phone_number": f"155507838{c:02d}",
                        "mode": "coexistence",
                        "throughput_mps": 20,
                        "connection_state": "connected",
                        "settings": {},
                        "created_at": NOW,
                    }
                    for c in range(3)
                ],
            ).scalars()
        )
    log(f"  workspace, {agents} agents, 5 teams, 3 numbers: {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    per_conversation = max(messages // conversations, 1)
    conv_rows: list[dict[str, Any]] = []
    contact_rows: list[dict[str, Any]] = []
    for i in range(conversations):
        wa = f"57300{i:07d}"
        name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)} {i}"
        contact_rows.append(
            {
                "workspace_id": ws,
                "wa_id": wa,
                "phone_e164": "+" + wa,
                "profile_name": name,
                "sources": ["whatsapp"],
                "custom_fields": {},
                "legal_hold": False,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    with db.engine.begin() as conn:
        contact_ids: list[int] = []
        for start in range(0, len(contact_rows), CHUNK):
            part = contact_rows[start : start + CHUNK]
            conn.execute(sa.insert(Contact), part)
        contact_ids = list(
            conn.execute(
                sa.select(Contact.id).where(Contact.workspace_id == ws).order_by(Contact.id)
            ).scalars()
        )
        conn.execute(
            sa.insert(ContactIdentity),
            [
                {
                    "workspace_id": ws,
                    "channel_id": channel_ids[n % 3],
                    "contact_id": cid,
                    "wa_id": contact_rows[n]["wa_id"],
                    "in_business_app": False,
                    "created_at": NOW,
                }
                for n, cid in enumerate(contact_ids)
            ],
        )
        for n, cid in enumerate(contact_ids):
            roll = rng.random()
            status = (
                "open"
                if roll < 0.15
                else "pending"
                if roll < 0.18
                else "snoozed"
                if roll < 0.20
                else "resolved"
            )
            at = NOW - dt.timedelta(seconds=rng.randint(0, days * 86400))
            assignee = rng.choice(agent_ids) if rng.random() < 0.7 else None
            conv_rows.append(
                {
                    "workspace_id": ws,
                    "channel_id": channel_ids[n % 3],
                    "contact_id": cid,
                    "status": status,
                    "assignee_id": assignee,
                    "team_id": team_ids[n % 5] if rng.random() < 0.8 else None,
                    "last_activity_at": at,
                    "waiting_since": at if rng.random() < 0.4 else None,
                    "last_inbound_at": at,
                    "window_expires_at": at + dt.timedelta(hours=24),
                    "unread_count": 0,
                    "last_message_preview": " ".join(rng.choices(WORDS, k=6)),
                    "last_message_source": rng.choice(
                        ["customer", "customer", "agent", "business_app", "bot"]
                    ),
                    "bot_paused": False,
                    "labels": ["vip"]
                    if rng.random() < 0.05
                    else (["mayorista"] if rng.random() < 0.05 else []),
                    "created_at": at,
                    "updated_at": at,
                }
            )
        for start in range(0, len(conv_rows), CHUNK):
            conn.execute(sa.insert(Conversation), conv_rows[start : start + CHUNK])
        conv_ids = list(
            conn.execute(
                sa.select(Conversation.id)
                .where(Conversation.workspace_id == ws)
                .order_by(Conversation.id)
            ).scalars()
        )
    log(f"  {conversations:,} contacts and conversations: {time.perf_counter() - t1:.1f} s")

    t2 = time.perf_counter()
    made = 0
    batch: list[dict[str, Any]] = []
    with db.engine.begin() as conn:
        for n, cid in enumerate(conv_ids):
            last = conv_rows[n]["last_activity_at"]
            for k in range(per_conversation):
                if made >= messages:
                    break
                inbound = k % 2 == 0
                text = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
                batch.append(
                    {
                        "workspace_id": ws,
                        "channel_id": conv_rows[n]["channel_id"],
                        "conversation_id": cid,
                        "contact_id": conv_rows[n]["contact_id"],
                        "wamid": f"wamid.BENCH{made:09d}",
                        "direction": "inbound" if inbound else "outbound",
                        "source": "customer"
                        if inbound
                        else ("agent" if k % 4 == 1 else "business_app"),
                        "type": "text",
                        "content": {"body": text},
                        "text": text,
                        "timestamp": last - dt.timedelta(minutes=(per_conversation - k) * 7),
                        "status": "received" if inbound else "read",
                        "edited": False,
                        "revoked": False,
                        "history": [],
                        "created_at": last,
                    }
                )
                made += 1
            if len(batch) >= CHUNK:
                conn.execute(sa.insert(Message), batch)
                batch = []
                if made % 200_000 < CHUNK:
                    log(f"    {made:,} messages, {made / (time.perf_counter() - t2):,.0f}/s")
        if batch:
            conn.execute(sa.insert(Message), batch)
    log(f"  {made:,} messages: {time.perf_counter() - t2:.1f} s")
    t3 = time.perf_counter()
    if db.is_postgres:
        # Bulk-loaded tables as autovacuum would leave them: statistics and the visibility
        # map that index-only scans (the tab counts) rely on.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    ensure_search_index(db.engine)
    ensure_inbox_indexes(db.engine)
    log(f"  statistics and full-text index: {time.perf_counter() - t3:.1f} s")
    return {
        "workspace_id": ws,
        "conversation_ids": conv_ids,
        "channel_ids": channel_ids,
        "team_ids": team_ids,
        "agent_ids": agent_ids,
        "phone_number_id": "106540352242920",
        "display": "15550783800",
    }


def _has_data(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("workspaces"):
                return False
            return bool(conn.execute(sa.select(sa.func.count()).select_from(Workspace)).scalar())
    finally:
        engine.dispose()


def existing_world(db: Database) -> dict[str, Any]:
    with db.engine.connect() as conn:
        ws = conn.execute(sa.select(Workspace.id)).scalar_one()
        users = list(conn.execute(sa.select(User.id).order_by(User.id)).scalars())
        return {
            "workspace_id": ws,
            "conversation_ids": list(conn.execute(sa.select(Conversation.id)).scalars()),
            "channel_ids": sorted(conn.execute(sa.select(Channel.id)).scalars()),
            "team_ids": sorted(conn.execute(sa.select(Team.id)).scalars()),
            "agent_ids": users[1:],
            "phone_number_id": "106540352242920",
            "display": "15550783800",
        }


# -- serving and measuring --------------------------------------------------------------------


class Server:
    def __init__(self, app: Any) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def sign_in(url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, headers={"accept": "text/html"})
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page
    )
    assert token, "no CSRF token on /login"
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=True,
    )
    assert response.status_code == 200 and "/login" not in str(response.url), response.status_code
    return client


def page_getter(client: httpx.Client, url: str) -> Callable[[int], httpx.Response]:
    return lambda _i: client.get(url)


def measure(name: str, call: Callable[[int], httpx.Response], n: int) -> dict[str, float]:
    for i in range(min(5, n)):
        call(i)  # warm caches and the connection
    times: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        response = call(i)
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (name, response.status_code, response.text[:200])
    times.sort()
    p50 = statistics.median(times)
    p95 = times[int(len(times) * 0.95) - 1]
    log(f"  {name:<44} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    return {"p50": p50, "p95": p95}


def webhook_body(phone_number_id: str, display: str, wa_id: str, wamid: str, text: str) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": display,
                                    "phone_number_id": phone_number_id,
                                },
                                "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id}],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": wamid,
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def live_latency(url: str, owner: httpx.Client, world: dict[str, Any], n: int) -> dict[str, float]:
    """From the start of a signed webhook POST to the event on an open SSE stream."""
    import queue

    arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
    stop = threading.Event()

    def listen() -> None:
        with owner.stream(
            "GET", "/inbox/events", headers={"accept": "text/event-stream"}, timeout=None
        ) as r:
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["kind"] == "message.created":
                        arrivals.put((event["data"].get("wamid") or "", time.perf_counter()))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.5)
    poster = httpx.Client(base_url=url, timeout=30)
    run = int(time.time())
    times: list[float] = []
    for i in range(n + 3):
        wamid = f"wamid.LIVE{run}.{i:06d}"  # unique per run, so a reused dataset works too
        body = webhook_body(
            world["phone_number_id"],
            world["display"],
            f"57300{i % 1000:07d}",
            wamid,
            "hola, ¿hay stock?",
        )
        signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        t = time.perf_counter()
        response = poster.post(
            "/webhooks/whatsapp",
            content=body,
            headers={
                "content-type": "application/json",
                "x-hub-signature-256": f"sha256={signature}",
            },
        )
        assert response.status_code == 200, response.text
        while True:
            got, at = arrivals.get(timeout=30)
            if got == wamid:
                break
        if i >= 3:  # the first few warm the worker
            times.append((at - t) * 1000)
        time.sleep(0.05)
    stop.set()
    times.sort()
    p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
    log(f"  {'webhook POST → event on an agent stream':<44} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    return {"p50": p50, "p95": p95}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", help="a PostgreSQL URL (its tables are dropped and rebuilt)")
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="keep the dataset (SQLite: in DIR; PostgreSQL: in its database) and reuse it",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="puente-bench-inbox-") as tmp:
        data_dir = Path(args.reuse or tmp)
        settings = Settings(
            data_dir=data_dir,
            database_url=args.postgres,
            secret_key=SecretStr(Fernet.generate_key().decode()),
            session_secret=SecretStr("bench"),
            meta_app_secret=SecretStr(APP_SECRET),
            run_workers=True,
            worker_poll_seconds=0.5,
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        reused = bool(args.reuse) and (
            (data_dir / "puente.sqlite3").exists()
            if not args.postgres
            else _has_data(args.postgres)
        )
        db = Database(settings.sqlalchemy_url())
        db.use_audit_keys(audit_keys(settings))
        engine = "PostgreSQL" if db.is_postgres else "SQLite"
        if reused:
            world = existing_world(db)
            log(f"Reusing the {engine} dataset in {data_dir}")
        else:
            if db.is_postgres:
                Base.metadata.drop_all(db.engine)
            Base.metadata.create_all(db.engine)
            log(
                f"Building {args.messages:,} messages in {args.conversations:,} conversations on {engine}…"
            )
            t = time.perf_counter()
            world = build(db, args.conversations, args.messages, args.agents)
            log(f"  built in {time.perf_counter() - t:.0f} s")

        app = create_app(settings, db)
        rng = random.Random(7)
        results: dict[str, dict[str, float]] = {}
        with Server(app) as server:
            owner = sign_in(server.url, "owner@bench.example")
            agent = sign_in(server.url, "agent1@bench.example")
            n = args.requests
            log(f"\nHTTP, {n} requests each (after 5 warm-up requests), one client at a time:")
            results["baseline /healthz"] = measure(
                "baseline: GET /healthz", lambda i: owner.get("/healthz"), n
            )
            filters = {
                "list: default (open, all)": "",
                "list: Mine (agent, team scope)": "tab=mine",
                "list: Unassigned": "tab=unassigned",
                "list: any status": "status=any",
                "list: closed": "status=resolved",
                f"list: number {world['channel_ids'][1]}": f"channel={world['channel_ids'][1]}",
                f"list: team {world['team_ids'][2]}": f"team={world['team_ids'][2]}",
                "list: label vip": "label=vip",
                "list: assignee": f"assignee={world['agent_ids'][3]}",
                "list: last message from the app": "source=business_app",
                "list: longest waiting": "sort=waiting",
                "list: contact search": "q=sofía",
            }
            for name, query in filters.items():
                who = agent if "agent" in name else owner
                results[name] = measure(name, page_getter(who, f"/inbox?{query}"), n)
            ids = world["conversation_ids"]
            results["open a conversation"] = measure(
                "open a conversation (latest 50 messages)",
                lambda i: owner.get(f"/inbox/c/{rng.choice(ids)}"),
                n,
            )
            results["search"] = measure(
                "message search (2 words)",
                lambda i: owner.get(f"/inbox/search?q={rng.choice(WORDS)}+{rng.choice(WORDS)}"),
                max(n // 2, 20),
            )
            results["live"] = live_latency(server.url, owner, world, max(n // 4, 30))
        list_p95 = max(v["p95"] for k, v in results.items() if k.startswith("list"))
        log(
            f"\nSummary ({engine}, {args.messages:,} messages): list p95 worst {list_p95:.1f} ms (target < 50), "
            f"open p95 {results['open a conversation']['p95']:.1f} ms (< 30), "
            f"search p95 {results['search']['p95']:.1f} ms (< 200), "
            f"live p95 {results['live']['p95']:.1f} ms (< 300); baseline /healthz p95 "
            f"{results['baseline /healthz']['p95']:.1f} ms"
        )
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
