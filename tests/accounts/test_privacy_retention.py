"""The retention purge (CLI and the daily job), legal hold, and the CLI for export and erase."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from puente.accounts.credentials import sha256_hex
from puente.accounts.models import WebSession
from puente.accounts.privacy import RetentionJob
from puente.accounts.service import do_update_security_settings
from puente.accounts.sessions import IDLE_TIMEOUT, do_create_session
from puente.cli import app
from puente.config import Settings, get_settings
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Media, Message, StatusEvent
from puente.db.session import Database
from tests.accounts.test_privacy import Person, add_media, audit_rows, make_person
from tests.factories import make_user, make_workspace

runner = CliRunner()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUENTE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("PUENTE_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("PUENTE_DATABASE_URL", raising=False)
    assert settings.secret_key is not None
    monkeypatch.setenv("PUENTE_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def workspace_keeping(db: Database, name: str, days: int | None) -> int:
    """A workspace whose owner set the retention period on /settings/security."""
    from puente.accounts.gate import load_member_actor

    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, name)
        owner = make_user(session, ws, role="owner")
        actor = load_member_actor(session, owner, ws.id)
        assert actor is not None
        do_update_security_settings(session, actor, require_2fa="none", retention=days)
        return ws.id


def texts(db: Database, person: Person) -> list[str]:
    with db.read(unscoped="test") as session:
        return [
            m.text or ""
            for m in session.scalars(
                select(Message).where(Message.contact_id == person.contact_id).order_by(Message.id)
            )
        ]


def media_file(settings: Settings, sha: str) -> bool:
    return (settings.data_dir / "media" / sha[:2] / sha).is_file()


def people(db: Database, settings: Settings, ws_id: int) -> tuple[Person, Person]:
    tag = str(ws_id).encode()
    # Messages 40 and 10 days old; the first of each carries a photo.
    ana = make_person(db, settings, ws_id, name="Ana", photo=b"ana" + tag, ages_days=(40, 10))
    held = make_person(db, settings, ws_id, name="Held", photo=b"held" + tag, ages_days=(40, 10))
    with db.unit_of_work(unscoped="test") as session:
        contact = session.get(Contact, held.contact_id)
        assert contact is not None
        contact.legal_hold = True
        session.add(
            StatusEvent(
                workspace_id=ws_id,
                wamid=f"wamid.GONE{ws_id}",
                status="read",
                timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(days=50),
            )
        )
    return ana, held


def test_retention_run_purges_old_messages_except_legal_hold(
    cli_env: None, db: Database, settings: Settings
) -> None:
    ws_id = workspace_keeping(db, "Keeps30", 30)
    ana, held = people(db, settings, ws_id)
    forever_id = workspace_keeping(db, "Forever", None)
    forever, _ = people(db, settings, forever_id)

    dry = runner.invoke(app, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Keeps30 (keeps 30 days): would delete 1 messages, 1 media rows" in dry.output
    assert texts(db, ana) == ["Ana says hello 0", "Ana says hello 1"]
    assert audit_rows(db, ws_id, "retention.purged") == []

    done = runner.invoke(app, ["retention", "run"])
    assert done.exit_code == 0, done.output
    assert "Keeps30 (keeps 30 days): deleted 1 messages, 1 media rows, 1 files" in done.output
    assert "Forever" not in done.output

    assert texts(db, ana) == ["Ana says hello 1"]
    assert texts(db, held) == ["Held says hello 0", "Held says hello 1"]
    assert texts(db, forever) == ["Ana says hello 0", "Ana says hello 1"]
    assert not media_file(settings, ana.media_sha)
    assert media_file(settings, held.media_sha) and media_file(settings, forever.media_sha)
    with db.read(unscoped="test") as session:
        conversation = session.get(Conversation, ana.conversation_id)
        assert conversation is not None
        # The purged message was the preview: it must not live on there.
        assert conversation.last_message_preview is None
        assert session.scalar(select(Media).where(Media.sha256 == ana.media_sha)) is None
        assert (
            session.scalars(
                select(StatusEvent.wamid).where(StatusEvent.workspace_id == ws_id)
            ).all()
            == []
        )
    [entry] = audit_rows(db, ws_id, "retention.purged")
    assert entry.details == {
        "messages": 1,
        "media_rows": 1,
        "media_files": 1,
        "status_events": 1,
    }
    assert entry.target == "older than 30 days"

    again = runner.invoke(app, ["retention", "run", "--workspace", "keeps30"])
    assert "deleted 0 messages" in again.output
    assert len(audit_rows(db, ws_id, "retention.purged")) == 1  # nothing purged, nothing logged


def test_retention_run_explains_when_nothing_is_configured(cli_env: None, db: Database) -> None:
    workspace_keeping(db, "Nothing", None)
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0
    assert "no workspace has a retention period" in result.output
    unknown = runner.invoke(app, ["retention", "run", "--workspace", "nope"])
    assert unknown.exit_code == 1
    assert "no workspace called 'nope'" in unknown.output


def test_daily_job_runs_when_due_then_waits_a_day(db: Database, settings: Settings) -> None:
    ws_id = workspace_keeping(db, "Daily", 30)
    ana, _held = people(db, settings, ws_id)
    now = dt.datetime.now(dt.UTC)
    job = RetentionJob(db, settings.data_dir / "media", first_run=now + dt.timedelta(hours=1))

    job.step()
    assert len(texts(db, ana)) == 2  # not due yet

    job.next_run = now - dt.timedelta(seconds=1)
    job.step()
    assert texts(db, ana) == ["Ana says hello 1"]
    assert job.next_run > now + dt.timedelta(hours=23)


def test_daily_job_deletes_sign_ins_that_have_ended(db: Database, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Sessions")
        user = make_user(session, ws)
        live, expired, idle = (
            do_create_session(session, user=user, workspace_id=ws.id) for _ in range(3)
        )
        minute = dt.timedelta(minutes=1)
        ended = {
            expired: {"expires_at": now - minute},
            idle: {"last_seen_at": now - IDLE_TIMEOUT - minute},
        }
        for token, values in ended.items():
            session.execute(
                update(WebSession).where(WebSession.token_hash == sha256_hex(token)).values(values)
            )

    RetentionJob(db, settings.data_dir / "media", first_run=now).step()

    with db.read(unscoped="test") as session:
        left = session.scalars(select(WebSession.token_hash)).all()
    assert left == [sha256_hex(live)]


def test_cli_export_erase_and_legal_hold(
    cli_env: None, db: Database, settings: Settings, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    ws_id = workspace_keeping(db, "Cli", None)
    ana, held = people(db, settings, ws_id)
    out = tmp_path / "ana.zip"

    exported = runner.invoke(app, ["contacts", "export", str(ana.contact_id), "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "2 messages, 1 media files" in exported.output
    zf = zipfile.ZipFile(io.BytesIO(out.read_bytes()))
    assert json.loads(zf.read("contact.json"))["id"] == ana.contact_id
    assert [e.actor for e in audit_rows(db, ws_id, "contact.exported")] == ["cli"]

    wrong = runner.invoke(
        app, ["contacts", "export", str(ana.contact_id), "-o", str(out), "--workspace", "other"]
    )
    assert wrong.exit_code == 1
    assert "no workspace called 'other'" in wrong.output

    unconfirmed = runner.invoke(app, ["contacts", "erase", str(ana.contact_id)])
    assert unconfirmed.exit_code == 1 and "--yes" in unconfirmed.output

    refused = runner.invoke(app, ["contacts", "erase", str(held.contact_id), "--yes"])
    assert refused.exit_code == 1
    assert "legal hold" in refused.output
    lifted = runner.invoke(app, ["contacts", "legal-hold", str(held.contact_id), "--off"])
    assert lifted.exit_code == 0 and "lifted" in lifted.output

    erased = runner.invoke(app, ["contacts", "erase", str(ana.contact_id), "--yes"])
    assert erased.exit_code == 0, erased.output
    assert f"contact {ana.contact_id} erased: 1 conversations, 2 messages" in erased.output
    with db.read(unscoped="test") as session:
        assert session.get(Contact, ana.contact_id) is None
    missing = runner.invoke(app, ["contacts", "erase", str(ana.contact_id), "--yes"])
    assert missing.exit_code == 1 and f"no contact {ana.contact_id}" in missing.output

    placed = runner.invoke(app, ["contacts", "legal-hold", str(held.contact_id)])
    assert placed.exit_code == 0 and "placed" in placed.output
    assert [e.details for e in audit_rows(db, ws_id, "contact.legal_hold")] == [
        {"legal_hold": False},
        {"legal_hold": True},
    ]


def test_media_row_shared_with_a_recent_message_keeps_its_file(
    db: Database, settings: Settings
) -> None:
    from puente.accounts.privacy import run_retention

    ws_id = workspace_keeping(db, "Shared", 30)
    ana, _held = people(db, settings, ws_id)
    with db.unit_of_work(unscoped="test") as session:
        recent = session.scalars(
            select(Message).where(Message.contact_id == ana.contact_id).order_by(Message.id)
        ).all()[-1]
        add_media(session, recent, ana.media_sha, 3)

    [report] = run_retention(db, settings.data_dir / "media", [ws_id])

    assert report.counts.messages == 1 and report.counts.media_rows == 1
    assert report.counts.media_files == 0
    assert media_file(settings, ana.media_sha)
