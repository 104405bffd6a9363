"""Pruning and redacting raw webhook bodies, which hold message text and phone numbers.

Only what is finished goes: DONE events (with their changes) and DONE changes. NEW, PARTIAL
and FAILED events and parked, failed or queued changes stay, because they are what a
person needs to recover from a problem.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent

PRUNE_BATCH = 500
# What a redacted body is replaced with. The row (and its dedupe key) stays, so a late
# retry of the same delivery from Meta is still recognised and not applied again.
REDACTED_BODY = b""


@dataclass
class WebhookPruneCounts:
    events: int = 0
    changes: int = 0

    def add(self, other: WebhookPruneCounts) -> None:
        self.events += other.events
        self.changes += other.changes

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _done_events(cutoff: dt.datetime) -> Any:
    return and_(WebhookEvent.state == EventState.DONE.value, WebhookEvent.received_at < cutoff)


def _done_changes(cutoff: dt.datetime) -> Any:
    return and_(WebhookChange.state == ChangeState.DONE.value, WebhookChange.updated_at < cutoff)


def count_prunable(session: Session, cutoff: dt.datetime) -> WebhookPruneCounts:
    """What `do_prune_batch` calls would delete now (for --dry-run)."""
    events = session.scalar(
        select(func.count()).select_from(WebhookEvent).where(_done_events(cutoff))
    )
    changes = session.scalar(
        select(func.count())
        .select_from(WebhookChange)
        .where(
            or_(
                WebhookChange.event_id.in_(select(WebhookEvent.id).where(_done_events(cutoff))),
                _done_changes(cutoff),
            )
        )
    )
    return WebhookPruneCounts(events=events or 0, changes=changes or 0)


def do_prune_batch(
    session: Session, cutoff: dt.datetime, *, batch: int = PRUNE_BATCH
) -> WebhookPruneCounts:
    """Delete up to `batch` DONE events received before `cutoff` (with their changes),
    and up to `batch` DONE changes of unfinished events last touched before it. Call until
    both counts are below `batch`; each call is meant for its own short transaction."""
    counts = WebhookPruneCounts()
    ids = list(
        session.scalars(
            select(WebhookEvent.id)
            .where(_done_events(cutoff))
            .order_by(WebhookEvent.id)
            .limit(batch)
        )
    )
    if ids:
        counts.changes += _rowcount(
            session.execute(delete(WebhookChange).where(WebhookChange.event_id.in_(ids)))
        )
        counts.events = _rowcount(
            session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        )
    change_ids = list(
        session.scalars(
            select(WebhookChange.id)
            .where(_done_changes(cutoff))
            .order_by(WebhookChange.id)
            .limit(batch)
        )
    )
    if change_ids:
        counts.changes += _rowcount(
            session.execute(delete(WebhookChange).where(WebhookChange.id.in_(change_ids)))
        )
    session.flush()
    return counts


def _mentions(session: Session, column: Any, needles: Iterable[str]) -> Any:
    """The raw JSON contains one of `needles` as a whole string value ("5215512345678")."""
    quoted = [b'"' + n.encode() + b'"' for n in needles]
    if session.get_bind().dialect.name == "sqlite":
        # SQLite's LIKE does not look inside BLOBs; instr does.
        return or_(*(func.instr(column, q) > 0 for q in quoted))
    return or_(*(column.like(b"%" + q + b"%") for q in quoted))


def do_redact_contact_events(
    session: Session, workspace_id: int, identifiers: Iterable[str]
) -> int:
    """Blank the bodies of DONE events that mention one of a contact's identifiers (WhatsApp
    id, number, BSUID) and one of the workspace's numbers, and delete the DONE change rows
    that mention them. Done events were fully applied, so nothing is lost but the raw copy.
    Unfinished events and parked or failed changes are kept (see docs/security.md).
    Returns how many events were blanked."""
    # LIKE wildcards in an identifier would only widen the match; quotes would break it.
    needles = sorted({i for i in identifiers if i and not set(i) & set('"%_\\')})
    numbers = list(
        session.scalars(select(Channel.phone_number_id).where(Channel.workspace_id == workspace_id))
    )
    if not needles or not numbers:
        return 0
    ours = _mentions(session, WebhookEvent.body, numbers)
    result = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.state == EventState.DONE.value,
            WebhookEvent.body != REDACTED_BODY,
            ours,
            _mentions(session, WebhookEvent.body, needles),
        )
        .values(body=REDACTED_BODY)
        .execution_options(synchronize_session=False)
    )
    # Change rows are few (only those once parked or failed): match their JSON here.
    quoted = [f'"{n}"' for n in needles]
    done_changes = session.execute(
        select(WebhookChange.id, WebhookChange.value).where(
            WebhookChange.state == ChangeState.DONE.value,
            WebhookChange.phone_number_id.in_(numbers),
        )
    ).all()
    doomed = [row.id for row in done_changes if any(q in json.dumps(row.value) for q in quoted)]
    if doomed:
        session.execute(delete(WebhookChange).where(WebhookChange.id.in_(doomed)))
    session.flush()
    return _rowcount(result)
