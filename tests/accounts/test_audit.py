"""The audit log's hash chain and `puente audit verify`."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from puente.accounts import audit
from puente.accounts.models import AuditEntry
from puente.cli import app as cli
from puente.config import Settings
from puente.db.session import Database
from tests.factories import make_workspace


@pytest.fixture
def chain(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Acme")
        for n in range(5):
            audit.record(
                session,
                workspace_id=ws.id,
                actor="ana@example.com",
                action="user.role_changed",
                target=f"user {n}",
                details={"to": "admin"},
                ip="10.0.0.1",
            )
        return ws.id


def _verify(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("PUENTE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("PUENTE_DATABASE_URL", settings.database_url)
    from puente.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["audit", "verify"])
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_intact_chain_verifies(
    chain: int, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _verify(settings, monkeypatch)
    assert code == 0, output
    assert "intact: 6 entries" in output  # the workspace's creation, then the five


def test_altered_entry_is_named(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.workspace_id == chain, AuditEntry.seq == 3)
            .values(details={"to": "owner"})
        )
    code, output = _verify(settings, monkeypatch)
    assert code == 1
    assert "entry #3" in output and "altered" in output


def test_removed_entry_is_named(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        session.query(AuditEntry).filter(
            AuditEntry.workspace_id == chain, AuditEntry.seq == 2
        ).delete()
    code, output = _verify(settings, monkeypatch)
    assert code == 1
    assert "entry #2 is missing" in output


def test_reordered_entries_are_detected(chain: int, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        rows = {
            e.seq: e
            for e in session.query(AuditEntry).filter(AuditEntry.workspace_id == chain).all()
        }
        rows[2].seq, rows[4].seq = 1000, 1001
        session.flush()
        rows[2].seq, rows[4].seq = 4, 2
    with db.read(unscoped="test") as session:
        problems = audit.verify(session, chain, all_chains=False).problems
    assert problems and problems[0].seq == 2
    assert problems[0].kind in ("reordered", "altered")


def test_a_rewrite_with_the_chain_recomputed_is_detected(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone with write access to the database edits entry #3 and recomputes every hash
    # after it, as the old unkeyed chain allowed; without the key the result is not signed.
    with db.unit_of_work(unscoped="test") as session:
        entries = (
            session.query(AuditEntry)
            .filter(AuditEntry.workspace_id == chain)
            .order_by(AuditEntry.seq)
            .all()
        )
        entries[3].details = {"to": "owner"}
        prev = entries[2].hash
        for entry in entries[3:]:
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(b"a key the intruder made up", prev, entry)
            prev = entry.hash
    code, output = _verify(settings, monkeypatch)
    assert code == 1
    assert "entry #4" in output and "altered" in output


def test_deleting_a_workspaces_whole_log_is_detected(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        session.query(AuditEntry).filter(AuditEntry.workspace_id == chain).delete()
    code, output = _verify(settings, monkeypatch)
    assert code == 1
    assert f"workspace {chain}" in output and "whole audit log was deleted" in output


def test_entries_from_before_the_key_verify_but_are_reported(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An install upgraded from the unkeyed chain: its old entries carry plain sha256.
    with db.unit_of_work(unscoped="test") as session:
        entries = (
            session.query(AuditEntry)
            .filter(AuditEntry.workspace_id == chain)
            .order_by(AuditEntry.seq)
            .all()
        )
        prev = audit.GENESIS
        for entry in entries[:3]:
            entry.prev_hash = prev
            entry.hash = audit._unkeyed_hash(prev, entry)
            prev = entry.hash
        for entry in entries[3:]:
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(db.audit_keys[0], prev, entry)
            prev = entry.hash
    code, output = _verify(settings, monkeypatch)
    assert code == 0, output
    assert "3 older entries were written before the log was keyed" in output
