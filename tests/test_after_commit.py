"""After-commit work runs once the transaction commits, not when a savepoint inside it is
released: SQLAlchemy fires its after_commit hook for both, and a worker woken at the
savepoint (another process, on PostgreSQL) looked for rows it could not see yet, so a
broadcast reply went unnoticed."""

from __future__ import annotations

from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.db.session import Database, on_commit
from tests.factories import make_workspace


def test_work_queued_in_a_savepoint_runs_after_the_commit_and_sees_the_row(db: Database) -> None:
    seen: list[object] = []

    def look() -> None:
        # What another connection sees when the callback runs.
        with db.read(unscoped="test") as other:
            seen.append(other.scalar(select(Workspace.name).where(Workspace.name == "Savepoint")))

    with db.unit_of_work(unscoped="test") as session:
        with session.begin_nested():
            make_workspace(session, "Savepoint")
            on_commit(session, look)
        assert seen == []  # the savepoint's release is not the commit
    assert seen == ["Savepoint"]
