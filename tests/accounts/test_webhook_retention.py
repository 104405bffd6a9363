"""Raw webhook bodies: processed ones go after PUENTE_WEBHOOK_RETENTION_DAYS (unfinished ones
stay for recovery), and erasing a contact blanks the processed bodies that named it."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from puente.accounts.models import AuditEntry
from puente.accounts.privacy import RetentionJob
from puente.cli import app
from puente.config import Settings
from puente.contacts.models import Contact
from puente.db.session import Database
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.ingest.store import do_store_webhooks
from puente.ingest.worker import run_until_idle
from tests.accounts.test_privacy_retention import cli_env  # noqa: F401 (fixture)
from tests.conftest import LiveServer
from tests.factories import make_channel, make_token, make_workspace
from tests.ingest.conftest import client, runtime_of, server, stored_events  # noqa: F401
from tests.ingest.helpers import PHONE_NUMBER_ID, dumps, envelope, messages_change, signed
from tests.ingest.helpers import text_message as text

runner = CliRunner()
NOW = dt.datetime.now(dt.UTC)
CUSTOMER = "5215512345678"


def old_event(
    db: Database, tag: str, state: EventState, days: int, change: ChangeState | None = None
) -> int:
    """A stored event `days` old in `state`, with one recorded change in state `change`."""
    body = dumps(envelope(messages_change([text(f"wamid.{tag}", f"secret {tag}")])))
    with db.unit_of_work(unscoped="test") as session:
        do_store_webhooks(session, [body])
    with db.unit_of_work(unscoped="test") as session:
        event = session.scalars(select(WebhookEvent).order_by(WebhookEvent.id.desc())).first()
        assert event is not None
        event.state = state.value
        event.received_at = NOW - dt.timedelta(days=days)
        if change is not None:
            session.add(
                WebhookChange(
                    event_id=event.id,
                    waba_id="1",
                    phone_number_id="999",
                    field="messages",
                    value={"tag": tag},
                    state=change.value,
                    attempts=1,
                    updated_at=NOW - dt.timedelta(days=days),
                )
            )
        return event.id


def surviving(db: Database) -> tuple[set[int], set[str]]:
    with db.read(unscoped="test") as session:
        events = set(session.scalars(select(WebhookEvent.id)))
        changes = {str(v["tag"]) for v in session.scalars(select(WebhookChange.value))}
    return events, changes


def webhook_audit(db: Database) -> list[AuditEntry]:
    with db.read(unscoped="test") as session:
        rows = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "retention.webhooks_purged")
            )
        )
        session.expunge_all()
        return rows


@pytest.fixture
def aged(db: Database) -> dict[str, int]:
    return {
        "done_old": old_event(db, "done_old", EventState.DONE, 40, ChangeState.DONE),
        "done_new": old_event(db, "done_new", EventState.DONE, 3),
        "new_old": old_event(db, "new_old", EventState.NEW, 40),
        "failed_old": old_event(db, "failed_old", EventState.FAILED, 40),
        "partial_old": old_event(db, "partial_old", EventState.PARTIAL, 40, ChangeState.PARKED),
        "partial_done": old_event(db, "partial_done", EventState.PARTIAL, 40, ChangeState.DONE),
    }


def test_retention_run_deletes_only_processed_raw_events_past_the_period(
    cli_env: None,  # noqa: F811
    db: Database,
    aged: dict[str, int],
) -> None:
    dry = runner.invoke(app, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "raw webhook events (keeps 30 days): would delete 1 processed events, 2" in dry.output
    assert len(surviving(db)[0]) == 6

    done = runner.invoke(app, ["retention", "run"])
    assert done.exit_code == 0, done.output
    assert "deleted 1 processed events, 2 processed changes" in done.output
    events, changes = surviving(db)
    # Everything unfinished stays for recovery, and so does what is recent.
    assert events == set(aged.values()) - {aged["done_old"]}
    assert changes == {"partial_old"}  # the parked change; the applied one went
    [entry] = webhook_audit(db)
    assert entry.workspace_id is None
    assert entry.details == {"events": 1, "changes": 2}

    again = runner.invoke(app, ["retention", "run"])
    assert "deleted 0 processed events, 0 processed changes" in again.output
    assert len(webhook_audit(db)) == 1  # nothing deleted, nothing logged


def test_zero_days_keeps_raw_events_forever(
    cli_env: None,  # noqa: F811
    db: Database,
    aged: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_WEBHOOK_RETENTION_DAYS", "0")
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0, result.output
    assert "raw webhook events: kept forever" in result.output
    assert len(surviving(db)[0]) == 6


def test_daily_job_prunes_raw_events_with_the_configured_period(
    db: Database, settings: Settings, aged: dict[str, int]
) -> None:
    job = RetentionJob(db, settings.data_dir / "media", webhook_days=2, first_run=NOW)
    job.step()
    events, _ = surviving(db)
    assert aged["done_old"] not in events and aged["done_new"] not in events
    assert aged["new_old"] in events and aged["partial_old"] in events


def _post(http: httpx.Client, body: bytes) -> None:
    assert http.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200


def test_erasing_a_contact_blanks_the_processed_bodies_that_named_it(
    client: httpx.Client,  # noqa: F811
    server: LiveServer,  # noqa: F811
    db: Database,
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ours = make_workspace(session, "Ours")
        make_channel(session, ours, phone_number_id=PHONE_NUMBER_ID)
        theirs = make_workspace(session, "Theirs")
        make_channel(session, theirs, phone_number_id="222000222")
        token = make_token(session, ours, ["privacy:write"])
    first = dumps(
        envelope(messages_change([text("wamid.E1", "mi dirección", CUSTOMER)], sender=CUSTOMER))
    )
    elsewhere = dumps(
        envelope(
            messages_change(
                [text("wamid.E2", "other business", CUSTOMER)],
                sender=CUSTOMER,
                phone_number_id="222000222",
            )
        )
    )
    _post(client, first)
    _post(client, elsewhere)
    run_until_idle(runtime_of(server))
    unprocessed = dumps(
        envelope(messages_change([text("wamid.E3", "later", CUSTOMER)], sender=CUSTOMER))
    )
    _post(client, unprocessed)
    with db.read(unscoped="test") as session:
        contact_id = session.scalar(
            select(Contact.id).where(Contact.workspace_id == ours.id, Contact.wa_id == CUSTOMER)
        )

    erased = client.delete(
        f"/api/v1/contacts/{contact_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["raw_events"] == 1
    bodies = [e.body for e in stored_events(db)]
    assert bodies == [b"", elsewhere, unprocessed]  # another tenant's and unfinished stay

    # Meta retrying the first delivery is still recognised and not applied again.
    _post(client, first)
    assert len(stored_events(db)) == 3
