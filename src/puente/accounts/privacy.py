"""Data protection: the retention purge, legal hold, and the export and erasure of everything
Puente holds about one contact. Audit entries written here carry ids and counts only."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, require
from puente.accounts.models import Workspace
from puente.accounts.permissions import Perm
from puente.accounts.service import retention_days
from puente.accounts.sessions import do_purge_expired_sessions
from puente.contacts.models import (
    ConsentEvent,
    Contact,
    ContactIdentity,
)
from puente.contacts.service import access_contact
from puente.conversations.models import Conversation, Media, Message, StatusEvent
from puente.db.base import utcnow
from puente.db.session import on_commit
from puente.errors import Conflict, InvalidInput, NotFound
from puente.events import ContactErased, publish
from puente.ingest import retention as raw_webhooks
from puente.runtime import BackgroundWorker, Runtime

log = logging.getLogger(__name__)

PURGE_BATCH = 500


def _deleted(session: Session, statement: Any) -> int:
    """Run a DELETE and return how many rows it removed."""
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


def media_path(media_dir: Path, sha256: str) -> Path:
    """Where a content-addressed media file lives (see conversations/media.py)."""
    return media_dir / sha256[:2] / sha256


def _remove_unreferenced_files(session: Session, media_dir: Path, shas: Iterable[str]) -> int:
    """Delete (after commit) the files of `shas` that no media row refers to any more.
    Files are shared between rows with the same content, in any workspace, so a file
    goes only with its last row. Returns how many files will be removed."""
    candidates = {s for s in shas if s}
    if not candidates:
        return 0
    still_used = set(
        session.scalars(select(Media.sha256).where(Media.sha256.in_(candidates)).distinct())
    )
    doomed = [media_path(media_dir, s) for s in sorted(candidates - still_used)]
    doomed = [p for p in doomed if p.is_file()]

    def remove() -> None:
        for path in doomed:
            path.unlink(missing_ok=True)

    on_commit(session, remove)
    return len(doomed)


# --- Legal hold -----------------------------------------------------------------------------


def access_contact_by_phone(session: Session, workspace_id: int, phone: str) -> Contact:
    """The workspace's contact with this phone number, written any way (a WhatsApp id, or
    E.164 with or without "+", spaces or dashes); other spellings of Mexican, Brazilian
    and Argentine mobiles match too."""
    from puente.contacts.phones import to_e164, wa_id_from_e164
    from puente.contacts.resolve import digits_of, wa_id_variants

    # WhatsApp ids such as Mexico's 521... are no longer valid numbers to the numbering
    # plan, so the digits as written are tried as well as the E.164 form.
    digits = digits_of(phone)
    if not 8 <= len(digits) <= 15 or len(digits) * 2 < len(phone.strip()):
        raise InvalidInput("that is not a phone number; write it with its country code")
    e164 = to_e164(phone)
    written = {digits, wa_id_from_e164(e164)} if e164 else {digits}
    spellings = sorted({v for w in written for v in (w, *wa_id_variants(w))})
    contact = session.scalars(
        select(Contact)
        .where(
            Contact.workspace_id == workspace_id,
            or_(
                Contact.wa_id.in_(spellings),
                Contact.phone_e164.in_([f"+{w}" for w in spellings]),
            ),
        )
        .order_by(Contact.id)
    ).first()
    if contact is None:
        raise NotFound("no contact with this phone number")
    return contact


def list_legal_holds(session: Session, workspace_id: int) -> list[Contact]:
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.workspace_id == workspace_id, Contact.legal_hold.is_(True))
            .order_by(Contact.id)
        )
    )


def do_set_legal_hold(
    session: Session, actor: Actor | str, workspace_id: int, contact_id: int, hold: bool
) -> Contact:
    """Place a contact under legal hold (retention skips it; erasure is refused) or lift it."""
    if isinstance(actor, Actor):
        require(actor, Perm.PRIVACY)
    contact = access_contact(session, workspace_id, contact_id)
    if contact.legal_hold != hold:
        contact.legal_hold = hold
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=Action.LEGAL_HOLD_CHANGED,
            target=f"contact {contact.id}",
            details={"legal_hold": hold},
        )
        session.flush()
    return contact


# --- Retention ------------------------------------------------------------------------------


@dataclass
class PurgeCounts:
    messages: int = 0
    media_rows: int = 0
    media_files: int = 0
    status_events: int = 0

    def add(self, other: PurgeCounts) -> None:
        self.messages += other.messages
        self.media_rows += other.media_rows
        self.media_files += other.media_files
        self.status_events += other.status_events

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def retention_cutoff(workspace: Workspace, now: dt.datetime | None = None) -> dt.datetime | None:
    """Messages sent before this instant are due for purging; None when the workspace
    keeps everything."""
    days = retention_days(workspace)
    if days is None:
        return None
    return (now or utcnow()) - dt.timedelta(days=days)


def workspaces_with_retention(session: Session) -> list[Workspace]:
    return [
        ws for ws in session.scalars(select(Workspace).order_by(Workspace.id)) if retention_days(ws)
    ]


def _not_held(contact_id: Any) -> Any:
    return ~exists().where(Contact.id == contact_id, Contact.legal_hold.is_(True))


def _due_messages(workspace_id: int, cutoff: dt.datetime) -> Any:
    return select(Message.id).where(
        Message.workspace_id == workspace_id,
        Message.timestamp < cutoff,
        _not_held(Message.contact_id),
    )


def count_due(session: Session, workspace_id: int, cutoff: dt.datetime) -> PurgeCounts:
    """What a purge would remove now (for --dry-run and the progress bar)."""
    due = _due_messages(workspace_id, cutoff).subquery()
    messages = session.scalar(select(func.count()).select_from(due)) or 0
    media = (
        session.scalar(
            select(func.count()).select_from(Media).where(Media.message_id.in_(select(due.c.id)))
        )
        or 0
    )
    orphans = (
        session.scalar(
            select(func.count()).select_from(Media).where(*_orphan_media(workspace_id, cutoff))
        )
        or 0
    )
    return PurgeCounts(messages=messages, media_rows=media + orphans)


def _orphan_media(workspace_id: int, cutoff: dt.datetime) -> tuple[Any, ...]:
    # Media whose message is gone (the row outlived it through ON DELETE SET NULL).
    return (
        Media.workspace_id == workspace_id,
        Media.message_id.is_(None),
        Media.created_at < cutoff,
    )


def do_purge_batch(
    session: Session,
    media_dir: Path,
    workspace_id: int,
    cutoff: dt.datetime,
    *,
    batch: int = PURGE_BATCH,
) -> PurgeCounts:
    """Delete up to `batch` messages older than `cutoff` (contacts under legal hold are
    skipped), their media rows, and media files nothing else uses. Call until it returns
    zero messages; each call is meant for its own short transaction."""
    counts = PurgeCounts()
    ids = list(
        session.scalars(_due_messages(workspace_id, cutoff).order_by(Message.id).limit(batch))
    )
    media_filter = Media.message_id.in_(ids) if ids else None
    shas: list[str] = []
    if media_filter is not None:
        shas += [s for s in session.scalars(select(Media.sha256).where(media_filter)) if s]
        counts.media_rows += _deleted(session, delete(Media).where(media_filter))
        # A purged last message must not live on as the conversation's preview.
        session.execute(
            update(Conversation)
            .where(Conversation.workspace_id == workspace_id, Conversation.last_message_id.in_(ids))
            .values(last_message_id=None, last_message_preview=None)
        )
        counts.messages = _deleted(session, delete(Message).where(Message.id.in_(ids)))
    else:
        # Messages are done: sweep media rows left without a message, then old status events.
        orphans = select(Media.id).where(*_orphan_media(workspace_id, cutoff)).limit(batch)
        orphan_ids = list(session.scalars(orphans))
        if orphan_ids:
            shas += [
                s
                for s in session.scalars(select(Media.sha256).where(Media.id.in_(orphan_ids)))
                if s
            ]
            counts.media_rows += _deleted(session, delete(Media).where(Media.id.in_(orphan_ids)))
        counts.status_events = _deleted(
            session,
            delete(StatusEvent).where(
                StatusEvent.workspace_id == workspace_id,
                StatusEvent.timestamp < cutoff,
                ~exists().where(Message.wamid == StatusEvent.wamid),
            ),
        )
    counts.media_files = _remove_unreferenced_files(session, media_dir, shas)
    session.flush()
    return counts


def record_purge(session: Session, workspace_id: int, days: int, counts: PurgeCounts) -> None:
    audit.record(
        session,
        workspace_id=workspace_id,
        actor="system",
        action=Action.RETENTION_PURGED,
        target=f"older than {days} days",
        details=counts.as_dict(),
    )


ProgressFn = Callable[[PurgeCounts], None]


@dataclass
class PurgeReport:
    workspace_id: int
    workspace_name: str
    days: int
    counts: PurgeCounts = field(default_factory=PurgeCounts)
    dry_run: bool = False


def run_retention(
    db: Any,
    media_dir: Path,
    workspaces: Sequence[int] | None = None,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    on_start: Callable[[PurgeReport, int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[PurgeReport]:
    """Purge every workspace with a retention period (or those listed), one short
    transaction per batch, and audit each workspace's totals once (counts only).
    `db` is a Database; `on_start(report, total_due)` and `on_progress(batch)` drive a
    progress display."""
    with db.read(unscoped="finding every workspace with a retention period") as session:
        targets = [
            (ws.id, ws.name, retention_days(ws), retention_cutoff(ws, now))
            for ws in workspaces_with_retention(session)
            if workspaces is None or ws.id in workspaces
        ]
    reports: list[PurgeReport] = []
    for ws_id, name, days, cutoff in targets:
        assert days is not None and cutoff is not None
        report = PurgeReport(ws_id, name, days, dry_run=dry_run)
        reports.append(report)
        with db.read(scope=ws_id) as session:
            due = count_due(session, ws_id, cutoff)
        if on_start is not None:
            on_start(report, due.messages)
        if dry_run:
            report.counts = due
            continue
        while True:
            with db.unit_of_work(scope=ws_id) as session:
                step = do_purge_batch(session, media_dir, ws_id, cutoff)
            report.counts.add(step)
            if on_progress is not None:
                on_progress(step)
            if step.messages == 0 and step.media_rows < PURGE_BATCH:
                break
        if report.counts.messages or report.counts.media_rows or report.counts.status_events:
            with db.unit_of_work(scope=ws_id) as session:
                record_purge(session, ws_id, days, report.counts)
    return reports


def run_webhook_retention(
    db: Any, days: int, *, dry_run: bool = False, now: dt.datetime | None = None
) -> raw_webhooks.WebhookPruneCounts | None:
    """Delete processed raw webhook events (and processed changes) older than `days`, one
    short transaction per batch; None when `days` is 0 (keep forever). Audited once,
    installation-wide, with counts only."""
    if days <= 0:
        return None
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    if dry_run:
        with db.read(unscoped="raw webhooks belong to no workspace yet") as session:
            return raw_webhooks.count_prunable(session, cutoff)
    total = raw_webhooks.WebhookPruneCounts()
    while True:
        with db.unit_of_work(unscoped="raw webhooks belong to no workspace yet") as session:
            step = raw_webhooks.do_prune_batch(session, cutoff)
        total.add(step)
        if step.events < raw_webhooks.PRUNE_BATCH and step.changes < raw_webhooks.PRUNE_BATCH:
            break
    if total.events or total.changes:
        with db.unit_of_work(unscoped="the installation's own audit entry") as session:
            audit.record(
                session,
                workspace_id=None,
                actor="system",
                action=Action.WEBHOOKS_PURGED,
                target=f"older than {days} days",
                details=total.as_dict(),
            )
    return total


class RetentionJob:
    """The daily retention run, as a BackgroundWorker step: the first run a few minutes
    after start, then every 24 hours. Purging is idempotent, so two processes running it
    at once only split the work."""

    FIRST_DELAY = dt.timedelta(minutes=5)
    INTERVAL = dt.timedelta(days=1)

    def __init__(
        self,
        db: Any,
        media_dir: Path,
        *,
        webhook_days: int = 0,
        first_run: dt.datetime | None = None,
    ) -> None:
        self.db = db
        self.media_dir = media_dir
        self.webhook_days = webhook_days
        self.next_run = first_run or utcnow() + self.FIRST_DELAY

    def step(self) -> bool:
        if utcnow() < self.next_run:
            return False
        self.next_run = utcnow() + self.INTERVAL
        reports = run_retention(self.db, self.media_dir)
        for r in reports:
            if r.counts.messages:
                log.info(
                    "retention: %s messages purged in workspace %s",
                    r.counts.messages,
                    r.workspace_id,
                )
        pruned = run_webhook_retention(self.db, self.webhook_days)
        if pruned is not None and pruned.events:
            log.info("retention: %s raw webhook events deleted", pruned.events)
        with self.db.unit_of_work(unscoped="expired sign-ins of every workspace") as session:
            ended = do_purge_expired_sessions(session)
        if ended:
            log.info("retention: %s expired sign-in sessions deleted", ended)
        return False


# --- Erasure --------------------------------------------------------------------------------


@dataclass
class EraseCounts:
    conversations: int = 0
    messages: int = 0
    media_rows: int = 0
    media_files: int = 0
    identities: int = 0
    consent_events: int = 0
    raw_events: int = 0  # processed webhook bodies that named the contact, blanked


def _count(session: Session, model: Any, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _delete_loose_references(session: Session, contact_id: int) -> None:
    """Rows of any table that point at the contact with ON DELETE SET NULL (a broadcast's
    recipient list, say) would outlive it with its number in them: delete them too.
    Found from the schema, so tables added later are covered."""
    from puente.db.models import Base

    contacts_id = Base.metadata.tables["contacts"].c.id
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column is contacts_id and (fk.ondelete or "").upper() == "SET NULL":
                session.execute(delete(table).where(fk.parent == contact_id))


def do_erase_contact(
    session: Session,
    actor: Actor | str,
    workspace_id: int,
    contact_id: int,
    media_dir: Path,
) -> EraseCounts:
    """Delete the contact and everything about it: identities, conversations (with their
    notes and timeline), messages, media rows and the files nobody else uses, consent,
    tags, and status events of its messages. Refused while the contact is under legal
    hold. The audit entry names only the contact's id and the counts."""
    if isinstance(actor, Actor):
        require(actor, Perm.PRIVACY)
    contact = access_contact(session, workspace_id, contact_id)
    if contact.legal_hold:
        raise Conflict(
            "this contact is under legal hold; lift the hold before erasing it",
            code="legal_hold",
        )
    # Before anything goes: reactions (outgoing webhooks) drop what they hold about it.
    publish(session, ContactErased(workspace_id=workspace_id, contact_id=contact.id))
    counts = EraseCounts(
        conversations=_count(session, Conversation, Conversation.contact_id == contact.id),
        messages=_count(session, Message, Message.contact_id == contact.id),
        identities=_count(session, ContactIdentity, ContactIdentity.contact_id == contact.id),
        consent_events=_count(session, ConsentEvent, ConsentEvent.contact_id == contact.id),
    )
    identifiers = [contact.wa_id or "", (contact.phone_e164 or "").lstrip("+")]
    for identity in session.scalars(
        select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
    ):
        identifiers += [identity.wa_id or "", identity.bsuid or "", identity.parent_bsuid or ""]
    counts.raw_events = raw_webhooks.do_redact_contact_events(session, workspace_id, identifiers)
    message_ids = select(Message.id).where(Message.contact_id == contact.id)
    shas = [
        s
        for s in session.scalars(select(Media.sha256).where(Media.message_id.in_(message_ids)))
        if s
    ]
    counts.media_rows = _deleted(session, delete(Media).where(Media.message_id.in_(message_ids)))
    session.execute(
        delete(StatusEvent).where(
            StatusEvent.wamid.in_(
                select(Message.wamid).where(
                    Message.contact_id == contact.id, Message.wamid.is_not(None)
                )
            )
        )
    )
    _delete_loose_references(session, contact.id)
    # The rest goes with the contact through ON DELETE CASCADE (identities, conversations
    # and what hangs off them, messages, outbox rows, consent, tags).
    session.delete(contact)
    session.flush()
    counts.media_files = _remove_unreferenced_files(session, media_dir, shas)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=Action.CONTACT_ERASED,
        target=f"contact {contact_id}",
        details=asdict(counts),
    )
    return counts


def register(runtime: Runtime) -> None:
    """Add the daily retention run to the process's background workers."""
    job = RetentionJob(
        runtime.db,
        runtime.settings.data_dir / "media",
        webhook_days=runtime.settings.webhook_retention_days,
    )
    # The step only checks the clock until a run is due, so a minute's poll is plenty.
    runtime.workers.append(BackgroundWorker("retention", job.step, idle_seconds=60))
