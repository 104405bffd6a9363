"""The rollup worker, on the job module's REPORTS queue: it claims facts not yet added to
the rollups (`FOR UPDATE SKIP LOCKED` on PostgreSQL), adds them, and marks them, in one
transaction. A worker that dies leaves its facts as they were; two never take the same."""

from __future__ import annotations

from sqlalchemy import select

from puente.db.scope import Unscoped
from puente.db.session import Database
from puente.jobs import REPORTS, Worker, skip_locked
from puente.jobs import install as install_worker
from puente.reports.models import ReportFact
from puente.reports.rollup import roll_up
from puente.runtime import Runtime

BATCH = 5000
_CLAIM = Unscoped("the rollup worker adds the new facts of every workspace")


def rollup_step(db: Database, batch: int = BATCH) -> bool:
    """Add one batch of new facts to the rollups; True when there was any."""
    # A look first, without the write lock (SQLite's is the whole database's): most
    # polls find nothing.
    with db.read(unscoped=_CLAIM.reason) as session:
        waiting = session.scalar(
            select(ReportFact.id).where(ReportFact.rolled_up.is_(False)).limit(1)
        )
    if waiting is None:
        return False
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        facts = list(
            session.scalars(
                skip_locked(
                    session,
                    select(ReportFact)
                    .where(ReportFact.rolled_up.is_(False))
                    .order_by(ReportFact.id)
                    .limit(batch),
                )
            )
        )
        roll_up(session, facts)
    return bool(facts)


def drain(db: Database) -> int:
    """Roll up everything pending now (tests, the demo, `puente reports rebuild`)."""
    steps = 0
    while rollup_step(db):
        steps += 1
    return steps


# Reports need not be fresher than a few seconds: the worker is not woken by each commit
# that writes facts (on SQLite that was a second write transaction after nearly every
# one), it takes what gathered every few seconds, in batches.
POLL_FACTOR = 10
MIN_POLL_SECONDS = 1.0


def install(runtime: Runtime) -> Worker:
    db = runtime.db
    idle = max(MIN_POLL_SECONDS, runtime.settings.worker_poll_seconds * POLL_FACTOR)
    worker = Worker("puente-reports", REPORTS, lambda: rollup_step(db), idle_seconds=idle)
    install_worker(runtime, worker)
    return worker
