"""Outbound benchmark, part one: plan and queue a 100,000-recipient broadcast.

Creates a workspace with N contacts tagged `clientes` and an approved template, then
times `do_create_broadcast` (audience by tag, per-contact values, estimate, recipient
rows, and the messages + outbox items of every recipient) in one unit of work.

    .venv/bin/python bench/outbound.py [--recipients 100000] [--postgres URL]
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
from puente.outbound.broadcasts import do_create_broadcast
from puente.outbound.models import MessageTemplate, OutboxItem


def setup(db: Database, n: int) -> int:
    with db.unit_of_work() as session:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    url = args.postgres or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    db = Database(url)
    Base.metadata.create_all(db.engine)
    workspace_id = setup(db, args.recipients)
    started = time.perf_counter()
    cpu = time.process_time()
    with db.unit_of_work() as session:
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
    with db.read() as session:
        queued = session.scalar(select(func.count()).where(OutboxItem.broadcast_id == broadcast_id))
    print(f"engine: {db.engine.dialect.name}")
    print(f"recipients: {args.recipients}, outbox items queued: {queued}")
    print(
        f"plan + queue: {elapsed:.2f} s ({args.recipients / elapsed:,.0f} recipients/s),"
        f" {cpu:.2f} s of CPU in this process"
    )


if __name__ == "__main__":
    main()
