"""Two workers storing two messages of the same customer at the same moment: the away
message's record admits one. On PostgreSQL the second transaction waits for the first's
row and then finds it recent; on SQLite it waits for the write lock, with the same end."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select, text

from puente.automation.away import _claim
from puente.automation.away_models import AwayMessageSent
from puente.automation.hours import parse_business_hours
from puente.channels.models import Channel
from puente.db.session import Database
from tests.factories import make_channel, make_contact, make_workspace
from tests.waiting import wait_until

HOURS = parse_business_hours({"time_zone": "UTC", "week": {}, "away_every_hours": 12})


def _claim_in_own_transaction(db: Database, ids: tuple[int, int], now: dt.datetime) -> int | None:
    with db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, ids[0])
        assert channel is not None
        return _claim(session, channel, ids[1], now, HOURS)


def test_of_two_racing_transactions_only_one_sends(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        ids = (make_channel(session, ws).id, make_contact(session, ws).id)
    now = dt.datetime.now(dt.UTC)
    second: dict[str, int | None] = {}
    with db.unit_of_work(unscoped="test") as first:
        channel = first.get(Channel, ids[0])
        assert channel is not None
        assert _claim(first, channel, ids[1], now, HOURS) is not None
        racer = threading.Thread(
            target=lambda: second.update(id=_claim_in_own_transaction(db, ids, now))
        )
        racer.start()
        if db.engine.dialect.name == "postgresql":
            # The second insert is really under way, waiting for the first's row. Each look
            # is its own transaction: within one, pg_stat_activity keeps its first snapshot.
            def second_waits() -> int:
                with db.engine.connect() as watcher:
                    return int(
                        watcher.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                                " AND query LIKE 'INSERT INTO away_messages_sent%'"
                            )
                        ).scalar()
                        or 0
                    )

            wait_until(second_waits, what="the second transaction to wait for the first")
    racer.join()
    assert second == {"id": None}
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(AwayMessageSent)) == 1


def test_after_the_period_the_record_is_taken_again(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        ids = (make_channel(session, ws).id, make_contact(session, ws).id)
    start = dt.datetime(2026, 12, 7, 22, 0, tzinfo=dt.UTC)
    assert _claim_in_own_transaction(db, ids, start) is not None
    assert _claim_in_own_transaction(db, ids, start + dt.timedelta(hours=11, minutes=59)) is None
    assert _claim_in_own_transaction(db, ids, start + dt.timedelta(hours=12)) is not None
