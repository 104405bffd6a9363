"""The inbox's start-up indexes (decision 0003) and the planner statistics they need."""

from __future__ import annotations

import pytest

from puente.conversations.search import ensure_inbox_indexes
from puente.db.session import Database
from tests.factories import make_channel, make_contact, make_conversation, make_workspace


def _three_conversations_indexed(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        workspace = make_workspace(s)
        channel = make_channel(s, workspace)
        for n in range(3):
            make_conversation(s, channel, make_contact(s, workspace, wa_id=f"57300000000{n}"))
    ensure_inbox_indexes(db.engine)


def test_an_index_added_to_an_analyzed_sqlite_database_gets_statistics(db: Database) -> None:
    # Without statistics for the new index SQLite preferred the old, analyzed ones and a
    # list page went from 9 to 212 ms on a million messages.
    if not db.is_sqlite:
        pytest.skip("sqlite_stat1 is SQLite's; PostgreSQL's autovacuum analyzes new indexes")
    _three_conversations_indexed(db)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("DROP INDEX ix_conversations_contact_list")
        conn.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE idx = 'ix_conversations_contact_list'")

    ensure_inbox_indexes(db.engine)

    with db.engine.connect() as conn:
        stats = conn.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_conversations_contact_list'"
        ).scalar()
    assert stats is not None and stats.startswith("3 ")


def test_the_replaced_contact_index_goes_and_its_successor_gets_statistics(
    db: Database,
) -> None:
    # A database from before ix_conversations_contact_list: same number of indexes after
    # the swap, but the new one still needs statistics.
    if not db.is_sqlite:
        pytest.skip("sqlite_stat1 is SQLite's")
    _three_conversations_indexed(db)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_conversations_contact_list")
        conn.exec_driver_sql(
            "CREATE INDEX ix_conversations_contact_inbox ON conversations "
            "(contact_id, status, workspace_id, assignee_id, team_id, last_activity_at)"
        )
        conn.exec_driver_sql("ANALYZE")

    ensure_inbox_indexes(db.engine)

    with db.engine.connect() as conn:
        names = {
            r[0]
            for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        stats = conn.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_conversations_contact_list'"
        ).scalar()
    assert "ix_conversations_contact_list" in names
    assert "ix_conversations_contact_inbox" not in names
    assert stats is not None and stats.startswith("3 ")


def test_starting_again_leaves_an_unanalyzed_database_unanalyzed(db: Database) -> None:
    # Statistics taken on a nearly empty database would mislead the planner once it grows.
    if not db.is_sqlite:
        pytest.skip("sqlite_stat1 is SQLite's")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_conversations_contact_list")
    ensure_inbox_indexes(db.engine)
    with db.engine.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).first()
    assert exists is None
