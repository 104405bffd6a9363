"""The job mechanism: wake-ups after commit, one NOTIFY per queue and transaction, the
LISTEN loop across processes, leases, and retry backoff."""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import Table, event, text
from sqlalchemy.orm import Session

from puente import jobs
from puente.config import Settings
from puente.conversations.models import Media
from puente.db.base import utcnow
from puente.db.session import Database
from puente.runtime import Runtime
from tests.factories import make_channel, make_workspace


class Recorder:
    """Stands in for a worker: counts the times its queue woke it."""

    def __init__(self) -> None:
        self.woken = threading.Event()
        self.count = 0

    def wake(self) -> None:
        self.count += 1
        self.woken.set()


def test_a_queue_wakes_its_workers_only_once_the_transaction_commits(db: Database) -> None:
    queue = jobs.Queue("test_wake")
    worker = Recorder()
    queue.register(worker)
    with pytest.raises(RuntimeError), db.unit_of_work(unscoped="test") as session:
        session.execute(text("SELECT 1"))
        queue.wake_after_commit(session)
        raise RuntimeError("rolled back")
    assert worker.count == 0
    with db.unit_of_work(unscoped="test") as session:
        session.execute(text("SELECT 1"))
        queue.wake_after_commit(session)
        assert worker.count == 0  # not before the commit
    assert worker.count == 1


def _notifies(db: Database) -> list[str]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("NOTIFY"):
            sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    return sent


def test_a_transaction_notifies_each_queue_once_and_only_on_commit(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("NOTIFY is PostgreSQL's; SQLite wakes only this process")
    sent = _notifies(db)
    with db.unit_of_work(unscoped="test") as session:
        jobs.MEDIA.wake_after_commit(session)
        for _ in range(3):
            with session.begin_nested():
                jobs.MEDIA.wake_after_commit(session)
                jobs.OUTBOX.wake_after_commit(session)
        assert sent == []  # held until the commit
    assert sent == ["NOTIFY puente_media", "NOTIFY puente_outbox"]
    with pytest.raises(RuntimeError), db.unit_of_work(unscoped="test") as session:
        jobs.INGEST.wake_after_commit(session)
        raise RuntimeError("rolled back")
    with db.unit_of_work(unscoped="test") as session:
        session.execute(text("SELECT 1"))
    assert sent == ["NOTIFY puente_media", "NOTIFY puente_outbox"]


def test_the_listener_wakes_the_queue_another_process_notified(
    settings: Settings, db: Database
) -> None:
    if not db.is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    media, outbox = Recorder(), Recorder()
    jobs.MEDIA.register(media)
    jobs.OUTBOX.register(outbox)
    listener = jobs.Listener(Runtime.from_settings(settings, db))
    listener.start()
    try:
        # Listening starts with a wake-up of every queue, for what was sent before.
        assert media.woken.wait(10)
        media.woken.clear()
        outbox_before = outbox.count
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("NOTIFY puente_media")
        assert media.woken.wait(10)
        assert outbox.count == outbox_before
    finally:
        listener.stop()
        listener.join()


_MEDIA = cast(Table, Media.__table__)


def _due_media(db: Database, count: int, at: dt.datetime) -> list[int]:
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session)
        channel = make_channel(session, workspace)
        rows = [
            Media(
                workspace_id=workspace.id,
                channel_id=channel.id,
                meta_media_id=f"media-{n}",
                state="pending",
                attempts=0,
                next_attempt_at=at,
            )
            for n in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _lease(session: Session, now: dt.datetime, limit: int) -> list[int]:
    c = _MEDIA.c
    return sorted(
        jobs.lease(
            session,
            _MEDIA,
            ready=c.state == "pending",
            due=c.next_attempt_at,
            order_by=(c.next_attempt_at, c.id),
            limit=limit,
            seconds=60,
            now=now,
        )
    )


def test_a_lease_claims_each_due_row_once_until_it_runs_out(db: Database) -> None:
    now = utcnow()
    ids = _due_media(db, 3, now - dt.timedelta(seconds=1))
    claims = []
    for _ in range(3):
        with db.unit_of_work(unscoped="test") as session:
            claims.append(_lease(session, now, limit=2))
    assert claims == [ids[:2], ids[2:], []]
    # A worker that died with its rows: they come due again when the lease runs out.
    with db.unit_of_work(unscoped="test") as session:
        assert _lease(session, now + dt.timedelta(seconds=61), limit=5) == ids


def test_a_lease_skips_the_rows_another_transaction_is_claiming(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("on SQLite one write transaction runs at a time")
    now = utcnow()
    ids = _due_media(db, 2, now - dt.timedelta(seconds=1))
    with db.unit_of_work(unscoped="test") as first:
        assert _lease(first, now, limit=1) == ids[:1]
        # Still uncommitted: a second worker takes the next row instead of waiting.
        with db.unit_of_work(unscoped="test") as second:
            assert _lease(second, now, limit=2) == ids[1:]


def test_backoff_doubles_up_to_its_ceiling_with_jitter() -> None:
    backoff = jobs.Backoff(base=2.0, ceiling=60.0, jitter=(0.5, 1.0))
    rng = random.Random(7)
    for attempts, exponential in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (30, 60.0)]:
        delays = {backoff.delay(attempts, rng) for _ in range(50)}
        assert all(exponential / 2 <= d <= exponential for d in delays)
        assert len(delays) > 1  # spread apart, not all at once
