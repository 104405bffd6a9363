"""Outbound benchmark: planning speed, pacing against the sandbox, agent-reply latency.

`plan`: creates a workspace with N contacts tagged `clientes` and an approved template,
then times `do_create_broadcast` (audience by tag, per-contact values, estimate,
recipient rows, and the messages + outbox items of every recipient) in one unit of work.

`pace`: the Meta sandbox runs under uvicorn in a subprocess with one number per rate
(`mps` 20, 80, 1000); Puente (SQLite, this process) queues a broadcast of rate x seconds
recipients and runs the outbox worker. The achieved rate comes from the sandbox's own
accept timestamps (`GET /_sandbox/api/sent`), steady state (first second excluded); the
130429 count from a response counter wrapped around the sandbox app. Then, on the 80
msg/s number during a running broadcast, agent replies (priority 0) are queued one at a
time and timed from queueing until the sandbox accepted them.

    .venv/bin/python bench/outbound.py plan [--recipients 100000] [--postgres URL]
    .venv/bin/python bench/outbound.py pace [--seconds 60] [--rates 20,80,1000] [--replies 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from puente.accounts.service import do_create_workspace
from puente.channels.models import Channel
from puente.contacts.models import Contact, ContactTag, Tag
from puente.db.models import Base
from puente.db.session import Database
from puente.outbound.broadcasts.service import do_create_broadcast
from puente.outbound.models import MessageTemplate, OutboxItem


def setup(db: Database, n: int) -> int:
    with db.unit_of_work(unscoped="benchmark") as session:
        ws = do_create_workspace(session, name="Bench", slug=f"bench-{time.time_ns()}")
        session.add(
            Channel(
                workspace_id=ws.id,
                name="Bench",
                phone_number_id=f"9{time.time_ns() % 10**12}",
                waba_id="900",
                display_phone_number="15550000000",
                throughput_mps=1000,
                settings={},
            )
        )
        session.add(
            MessageTemplate(
                workspace_id=ws.id,
                waba_id="900",
                name="aviso",
                language="es",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} salió."}],
            )
        )
        tag = Tag(workspace_id=ws.id, name="clientes")
        session.add(tag)
        session.flush()
        for start in range(0, n, 10000):
            rows = [
                {
                    "workspace_id": ws.id,
                    "wa_id": f"521551{i:07d}",
                    "phone_e164": f"+521551{i:07d}",
                    "name": f"Cliente {i}",
                    "sources": ["import"],
                    "custom_fields": {"pedido": f"A-{i}"},
                }
                for i in range(start, min(n, start + 10000))
            ]
            ids = session.scalars(insert(Contact).returning(Contact.id), rows).all()
            session.execute(
                insert(ContactTag),
                [{"workspace_id": ws.id, "contact_id": c, "tag_id": tag.id} for c in ids],
            )
        return int(ws.id)


def plan(args: argparse.Namespace) -> None:
    url = args.postgres or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    db = Database(url)
    db.use_audit_keys([b"bench-audit-key"])  # creating the workspace writes its audit entry
    Base.metadata.create_all(db.engine)
    workspace_id = setup(db, args.recipients)
    started = time.perf_counter()
    cpu = time.process_time()
    with db.unit_of_work(unscoped="benchmark") as session:
        broadcast = do_create_broadcast(
            session,
            workspace_id=workspace_id,
            name="bench",
            template_name="aviso",
            language="es",
            variables={"body.1": "{first_name|cliente}", "body.2": "{custom.pedido}"},
            audience={"kind": "tags", "tags": ["clientes"]},
        )
        broadcast_id = broadcast.id
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    with db.read(unscoped="benchmark") as session:
        queued = session.scalar(select(func.count()).where(OutboxItem.broadcast_id == broadcast_id))
    base = baseline(db, args.recipients)
    print(f"engine: {db.engine.dialect.name}")
    print(f"recipients: {args.recipients}, outbox items queued: {queued}")
    print(
        f"plan + queue: {elapsed:.2f} s ({args.recipients / elapsed:,.0f} recipients/s),"
        f" {cpu:.2f} s of CPU in this process"
    )
    print(
        f"baseline, one plain insert of {args.recipients:,} outbox-sized rows: {base:.2f} s;"
        f" plan + queue is {elapsed / base:.1f}x the baseline"
    )


def baseline(db: Database, n: int) -> float:
    """Machine speed in the same run: the rows of one table of the plan (an id and a
    ~300-byte payload, no secondary index) inserted the cheapest way the driver allows,
    in one transaction. The plan writes four tables with their indexes, so the ratio
    says how far it is from the floor on this machine at this moment."""
    payload = '{"messaging_product": "whatsapp", "to": "+5215510000000", "type": "template", '
    payload += '"template": {"name": "aviso", "language": {"code": "es"}, "components": []}}' * 2
    rows = [(i, payload) for i in range(1, n + 1)]
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_baseline")
        conn.exec_driver_sql("CREATE TABLE bench_baseline (id bigint PRIMARY KEY, payload text)")
    started = time.perf_counter()
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor, cursor.copy("COPY bench_baseline FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql("INSERT INTO bench_baseline VALUES (?, ?)", rows)
    elapsed = time.perf_counter() - started
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_baseline")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what")
    p = sub.add_parser("plan", help="plan + queue a large broadcast")
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--postgres", help="a PostgreSQL URL (default: a fresh SQLite file)")
    p = sub.add_parser("pace", help="sending rate and agent-reply latency against the sandbox")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rates", default="20,80,1000")
    p.add_argument("--replies", type=int, default=10)
    args = parser.parse_args()
    if args.what in (None, "plan"):  # bench/run_all.py runs the planning figure only
        args.recipients = getattr(args, "recipients", 100_000)
        args.postgres = getattr(args, "postgres", None)
        plan(args)
    else:
        from outbound_pace import pace  # bench/ is on the path when run as a script

        pace(args)


if __name__ == "__main__":
    main()
