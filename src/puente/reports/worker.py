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


def install(runtime: Runtime) -> Worker:
    db = runtime.db
    idle = runtime.settings.worker_poll_seconds
    worker = Worker("puente-reports", REPORTS, lambda: rollup_step(db), idle_seconds=idle)
    install_worker(runtime, worker)
    return worker
