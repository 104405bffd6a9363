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
    with db.unit_of_work() as session:
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
    assert "intact: 5 entries" in output


def test_altered_entry_is_named(
    chain: int, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.unit_of_work() as session:
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
    with db.unit_of_work() as session:
        session.query(AuditEntry).filter(
            AuditEntry.workspace_id == chain, AuditEntry.seq == 2
        ).delete()
    code, output = _verify(settings, monkeypatch)
    assert code == 1
    assert "entry #2 is missing" in output


def test_reordered_entries_are_detected(chain: int, db: Database) -> None:
    with db.unit_of_work() as session:
        rows = {
            e.seq: e
            for e in session.query(AuditEntry).filter(AuditEntry.workspace_id == chain).all()
        }
        rows[2].seq, rows[4].seq = 1000, 1001
        session.flush()
        rows[2].seq, rows[4].seq = 4, 2
    with db.read() as session:
        _checked, problems = audit.verify(session, chain, all_chains=False)
    assert problems and problems[0].seq == 2
    assert problems[0].kind in ("reordered", "altered")
