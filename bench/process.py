"""Processing speed: stored webhook events turned into contacts, conversations and messages.

Generates N inbound messages from C contacts, several messages (from a few contacts)
per POST, stores them as raw webhook events, then runs the ingest worker's own step
(`puente.ingest.process.do_process_new_events`, a batch of events per transaction) until
the queue is empty. A share of the POSTs is delivered a second time with different
bytes (as a retry to another subscribed app would be), so deduplication is exercised.

Baseline, same run: a plain bulk insert of the same Message rows (Core executemany)
into an empty schema whose contacts and conversations already exist.

    .venv/bin/python bench/process.py [--messages 20000] [--contacts 2000] [--per-post 10]

PostgreSQL mode (several `puente worker` processes sharing one backlog): each worker
count in --workers gets a fresh schema and the same stored events, then that many
processes run the worker's step until the queue is empty; the figures are throughput per
worker count, deadlocks (changes queued again) and lost unread counts. The baseline is the
one-worker run of the same backlog.

    .venv/bin/python bench/process.py --postgres postgresql+psycopg://postgres@127.0.0.1/puente_bench \
        --workers 1,2,4 [--messages 20000] [--contacts 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import create_engine, func, make_url, select

from puente.accounts.service import do_create_workspace
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.models import Base
from puente.db.session import Database
from puente.ingest.models import WebhookEvent
from puente.ingest.process import do_process_new_events
from puente.ingest.store import do_store_webhooks
from puente.ingest.worker import IngestProcessor
from puente.runtime import Runtime

PNID = "106540352242922"
WABA = "102290129340398"
BUSINESS = "15550783881"
T0 = 1_760_000_000


def make_runtime(data_dir: Path, database_url: str | None = None) -> Runtime:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=SecretStr(Fernet.generate_key().decode()),
        session_secret=SecretStr("bench"),
        run_workers=False,
        log_level="WARNING",
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url())
    if database_url is not None:
        Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    return Runtime.from_settings(settings, db)


def make_channel(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        workspace = do_create_workspace(session, name="Bench")
        channel = Channel(
            workspace_id=workspace.id,
            name="Bench number",
            phone_number_id=PNID,
            waba_id=WABA,
            display_phone_number=BUSINESS,
            settings={},
        )
        session.add(channel)
        session.flush()
        return workspace.id, channel.id


def customer(i: int) -> str:
    return f"1650{i:07d}"


def generate(
    messages: int, contacts: int, per_post: int, seed: int = 7
) -> list[list[dict[str, Any]]]:
    """Posts of message dicts; each post holds messages of up to 5 contacts."""
    rng = random.Random(seed)
    posts: list[list[dict[str, Any]]] = []
    n = 0
    while n < messages:
        size = min(per_post, messages - n)
        senders = [rng.randrange(contacts) for _ in range(min(5, size))]
        post = []
        for k in range(size):
            sender = senders[k % len(senders)]
            post.append(
                {
                    "from": customer(sender),
                    "id": f"wamid.BENCH{n:09d}",
                    "timestamp": str(T0 + n),
                    "type": "text",
                    "text": {"body": f"Mensaje {n} de {sender}: ¿tienen la talla M en rojo?"},
                }
            )
            n += 1
        posts.append(post)
    return posts


def body_of(post: list[dict[str, Any]], *, retry: bool = False) -> bytes:
    senders = sorted({m["from"] for m in post})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": PNID},
        "contacts": [{"profile": {"name": f"Cliente {s[-4:]}"}, "wa_id": s} for s in senders],
        "messages": post,
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }
    # A retry carries the same updates in different bytes, so the raw-body dedupe
    # cannot catch it and the processors must.
    return json.dumps(envelope, indent=1 if retry else None).encode()


def run_processing(runtime: Runtime, batch: int) -> float:
    start = time.perf_counter()
    while True:
        with runtime.db.unit_of_work(unscoped="benchmark") as session:
            done = do_process_new_events(session, runtime, limit=batch)
        if not done:
            break
    return time.perf_counter() - start


def baseline(data_dir: Path, posts: list[list[dict[str, Any]]], contacts: int) -> float:
    """The same Message rows, inserted in one executemany into an empty schema."""
    runtime = make_runtime(data_dir)
    workspace_id, channel_id = make_channel(runtime)
    now = dt.datetime.now(dt.UTC)
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        session.execute(
            Contact.__table__.insert(),
            [
                {
                    "workspace_id": workspace_id,
                    "wa_id": customer(i),
                    "sources": [],
                    "created_at": now,
                }
                for i in range(contacts)
            ],
        )
        ids = dict(session.execute(select(Contact.wa_id, Contact.id)).tuples().all())
        session.execute(
            Conversation.__table__.insert(),
            [
                {"workspace_id": workspace_id, "channel_id": channel_id, "contact_id": cid}
                for cid in ids.values()
            ],
        )
        conv = dict(
            session.execute(select(Conversation.contact_id, Conversation.id)).tuples().all()
        )
    rows = []
    for post in posts:
        for m in post:
            cid = ids[m["from"]]
            rows.append(
                {
                    "workspace_id": workspace_id,
                    "channel_id": channel_id,
                    "conversation_id": conv[cid],
                    "contact_id": cid,
                    "wamid": m["id"],
                    "direction": "inbound",
                    "source": "customer",
                    "type": "text",
                    "content": m["text"],
                    "text": m["text"]["body"],
                    "timestamp": dt.datetime.fromtimestamp(int(m["timestamp"]), dt.UTC),
                    "status": "received",
                    "history": [],
                }
            )
    start = time.perf_counter()
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        session.execute(Message.__table__.insert(), rows)
    elapsed = time.perf_counter() - start
    runtime.db.dispose()
    return elapsed


class _RequeueCounter(logging.Handler):
    """Counts the changes a worker had to queue again (a deadlock or serialization
    failure on PostgreSQL: see puente.ingest.process.is_try_again)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "queued again" in record.getMessage():
            self.count += 1


def _worker(url: str, data_dir: str, batch: int, go: Any, results: Any) -> None:
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=url,
        secret_key=SecretStr(Fernet.generate_key().decode()),
        session_secret=SecretStr("bench"),
        run_workers=False,
        log_level="WARNING",
    )
    runtime = Runtime.from_settings(settings, Database(settings.sqlalchemy_url()))
    counter = _RequeueCounter()
    logging.getLogger("puente.ingest").addHandler(counter)
    processor = IngestProcessor(runtime, batch_size=batch)  # `puente worker`'s own step
    go.wait()
    idle = 0
    while idle < 3:  # another worker may still hold the last rows: look again briefly
        did = processor.step()
        idle = 0 if did else idle + 1
        if not did:
            time.sleep(0.05)
    results.put(counter.count)
    runtime.db.dispose()


def postgres_run(
    url: str, workers: int, bodies: list[bytes], batch: int, tmp: Path
) -> tuple[float, int, dict[str, int]]:
    runtime = make_runtime(tmp / f"pg{workers}", url)
    make_channel(runtime)
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        do_store_webhooks(session, bodies)
    runtime.db.dispose()
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, str(tmp / f"w{workers}"), batch, go, results))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    time.sleep(3)  # let every process import and connect before the clock starts
    start = time.perf_counter()
    go.set()
    requeued = sum(results.get(timeout=3600) for _ in procs)
    # The last 3 empty polls of each worker are not processing time.
    elapsed = time.perf_counter() - start - 0.15
    for proc in procs:
        proc.join()
    db = Database(url)
    with db.read(unscoped="benchmark") as session:
        counts = {
            "rows": session.scalar(select(func.count()).select_from(Message)) or 0,
            "distinct": session.scalar(select(func.count(func.distinct(Message.wamid)))) or 0,
            "unread": session.scalar(select(func.sum(Conversation.unread_count))) or 0,
            "pending": session.scalar(
                select(func.count()).select_from(WebhookEvent).where(WebhookEvent.state != "done")
            )
            or 0,
        }
    db.dispose()
    return elapsed, requeued, counts


def _ensure_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        ).scalar()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def postgres_main(args: argparse.Namespace) -> int:
    _ensure_database(args.postgres)
    posts = generate(args.messages, args.contacts, args.per_post)
    rng = random.Random(11)
    resent = rng.sample(range(len(posts)), int(len(posts) * args.retries))
    bodies = [body_of(p) for p in posts] + [body_of(posts[i], retry=True) for i in resent]
    counts_of = [int(n) for n in args.workers.split(",")]
    print(
        f"process on PostgreSQL: {args.messages} inbound messages in {len(posts)} POSTs "
        f"(+{len(resent)} resent) from {args.contacts} contacts, batch {args.batch}"
    )
    ok = True
    base_rate = None
    with tempfile.TemporaryDirectory(prefix="puente-bench-process-pg-") as tmp:
        for workers in counts_of:
            elapsed, requeued, c = postgres_run(
                args.postgres, workers, bodies, args.batch, Path(tmp)
            )
            rate = args.messages / elapsed
            base_rate = base_rate or rate
            lost_unread = args.messages - c["unread"]
            print(
                f"  {workers} worker(s): {elapsed:7.2f} s {rate:8.0f} msg/s "
                f"({rate / base_rate:4.2f}x one worker)  deadlocks/requeued: {requeued}  "
                f"lost: {args.messages - c['distinct']}  duplicated: {c['rows'] - c['distinct']}  "
                f"lost unread: {lost_unread}  not done: {c['pending']}"
            )
            ok = ok and requeued == 0 and lost_unread == 0 and c["pending"] == 0
            ok = ok and c["rows"] == c["distinct"] == args.messages
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL: run the multi-worker mode")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (PostgreSQL mode)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--per-post", type=int, default=10)
    parser.add_argument("--retries", type=float, default=0.05, help="share of POSTs resent")
    parser.add_argument("--batch", type=int, default=50, help="events per transaction")
    args = parser.parse_args()
    if args.postgres:
        return postgres_main(args)

    posts = generate(args.messages, args.contacts, args.per_post)
    rng = random.Random(11)
    resent = rng.sample(range(len(posts)), int(len(posts) * args.retries))
    with tempfile.TemporaryDirectory(prefix="puente-bench-process-") as tmp:
        runtime = make_runtime(Path(tmp) / "run")
        make_channel(runtime)
        bodies = [body_of(p) for p in posts] + [body_of(posts[i], retry=True) for i in resent]
        with runtime.db.unit_of_work(unscoped="benchmark") as session:
            do_store_webhooks(session, bodies)
        elapsed = run_processing(runtime, args.batch)
        with runtime.db.read(unscoped="benchmark") as session:
            rows = session.scalar(select(func.count()).select_from(Message)) or 0
            distinct = session.scalar(select(func.count(func.distinct(Message.wamid)))) or 0
            contacts = session.scalar(select(func.count()).select_from(Contact)) or 0
            unread = session.scalar(select(func.sum(Conversation.unread_count))) or 0
            pending = (
                session.scalar(
                    select(func.count())
                    .select_from(WebhookEvent)
                    .where(WebhookEvent.state != "done")
                )
                or 0
            )
        runtime.db.dispose()
        base = baseline(Path(tmp) / "baseline", posts, args.contacts)

    sent = args.messages
    rate = sent / elapsed
    base_rate = sent / base
    print(
        f"process: {sent} inbound messages in {len(posts)} POSTs (+{len(resent)} resent) "
        f"from {args.contacts} contacts, batch {args.batch} events/transaction, SQLite"
    )
    print(f"  processed:        {elapsed:7.2f} s  {rate:9.0f} msg/s")
    print(f"  baseline insert:  {base:7.2f} s  {base_rate:9.0f} msg/s (plain executemany)")
    print(f"  ratio:            {base_rate / rate:7.1f}x slower than the bare insert")
    print(f"  lost: {sent - distinct}  duplicated: {rows - distinct}  contacts: {contacts}")
    print(f"  unread total: {unread} (expected {sent})  events not done: {pending}")
    ok = sent == distinct == rows and unread == sent and pending == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
