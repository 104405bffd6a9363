"""Failed and parked webhook events and changes: what people see of them, and retrying."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, false, or_, select, true, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.db.base import utcnow
from puente.errors import Conflict, NotFound
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.jobs import INGEST


@dataclass(frozen=True)
class Failure:
    """A failed event (unusable body) or a parked or failed change, as shown to people."""

    kind: str  # "event" or "change"
    id: int
    event_id: int
    state: str
    reason: str | None
    field: str | None
    phone_number_id: str | None
    waba_id: str | None
    attempts: int
    at: Any  # datetime: when it last changed

    @property
    def ref(self) -> str:
        return f"{self.kind[0].upper()}{self.id}"


def sees_unclaimed(session: Session, workspace_id: int | None) -> bool:
    """Whether a workspace may see what no channel claims (unreadable events, changes
    parked for unknown numbers): they can hold another tenant's numbers, so only the
    operator (None, the CLI) and the workspace of a one-workspace install see them."""
    if workspace_id is None:
        return True
    ids = session.scalars(select(Workspace.id).limit(2)).all()
    return list(ids) == [workspace_id]


def _visible_changes(workspace_id: int | None, unclaimed: bool) -> Any:
    """Changes a workspace may see: those for its own channels and, with `unclaimed`,
    those no channel claims yet. None means the operator: all."""
    if workspace_id is None:
        return True
    own = select(Channel.phone_number_id).where(Channel.workspace_id == workspace_id)
    own_wabas = select(Channel.waba_id).where(Channel.workspace_id == workspace_id)
    number = WebhookChange.phone_number_id
    mine = or_(number.in_(own), and_(number.is_(None), WebhookChange.waba_id.in_(own_wabas)))
    if not unclaimed:
        return mine
    any_number = select(Channel.phone_number_id)
    any_waba = select(Channel.waba_id)
    return or_(
        mine,
        and_(number.is_not(None), number.not_in(any_number)),
        and_(
            number.is_(None),
            or_(WebhookChange.waba_id.is_(None), WebhookChange.waba_id.not_in(any_waba)),
        ),
    )


def list_failures(session: Session, workspace_id: int | None, limit: int = 100) -> list[Failure]:
    """Failed events and parked or failed changes, newest first. Failed events belong to
    no workspace (their body could not be read), so only `sees_unclaimed` callers get them."""
    unclaimed = sees_unclaimed(session, workspace_id)
    events = session.execute(
        select(
            WebhookEvent.id,
            WebhookEvent.error,
            WebhookEvent.attempts,
            WebhookEvent.processed_at,
            WebhookEvent.received_at,
        )
        .where(WebhookEvent.state == EventState.FAILED.value, true() if unclaimed else false())
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    ).all()
    changes = session.scalars(
        select(WebhookChange)
        .where(
            WebhookChange.state.in_((ChangeState.FAILED.value, ChangeState.PARKED.value)),
            _visible_changes(workspace_id, unclaimed),
        )
        .order_by(WebhookChange.id.desc())
        .limit(limit)
    ).all()
    items = [
        Failure(
            kind="event",
            id=row.id,
            event_id=row.id,
            state=EventState.FAILED.value,
            reason=row.error,
            field=None,
            phone_number_id=None,
            waba_id=None,
            attempts=row.attempts,
            at=row.processed_at or row.received_at,
        )
        for row in events
    ]
    items += [_change_failure(change) for change in changes]
    items.sort(key=lambda f: f.at, reverse=True)
    return items[:limit]


def _change_failure(change: WebhookChange) -> Failure:
    return Failure(
        kind="change",
        id=change.id,
        event_id=change.event_id,
        state=change.state,
        reason=change.error,
        field=change.field,
        phone_number_id=change.phone_number_id,
        waba_id=change.waba_id,
        attempts=change.attempts,
        at=change.updated_at,
    )


def _event_failure(event: WebhookEvent) -> Failure:
    return Failure(
        kind="event",
        id=event.id,
        event_id=event.id,
        state=event.state,
        reason=event.error,
        field=None,
        phone_number_id=None,
        waba_id=None,
        attempts=event.attempts,
        at=event.processed_at or event.received_at,
    )


def access_failed_event(session: Session, workspace_id: int | None, event_id: int) -> WebhookEvent:
    event = session.get(WebhookEvent, event_id)
    if event is None or not sees_unclaimed(session, workspace_id):
        raise NotFound(f"no webhook event {event_id}")
    return event


def access_change(session: Session, workspace_id: int | None, change_id: int) -> WebhookChange:
    change = session.scalar(
        select(WebhookChange).where(
            WebhookChange.id == change_id,
            _visible_changes(workspace_id, sees_unclaimed(session, workspace_id)),
        )
    )
    if change is None:
        raise NotFound(f"no webhook change {change_id}")
    return change


def _audit_retry(session: Session, actor: Any, workspace_id: int | None, target: str) -> None:
    # A person's (or token's) retry; the operator's CLI passes no actor.
    if actor is not None:
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=Action.WEBHOOK_RETRIED,
            target=target,
        )


def do_retry_event(
    session: Session, workspace_id: int | None, event_id: int, actor: Any = None
) -> Failure:
    """Queue a FAILED event (its body could not be read) to be processed again."""
    event = access_failed_event(session, workspace_id, event_id)
    if event.state != EventState.FAILED.value:
        raise Conflict(
            f"webhook event {event_id} is {event.state}; only failed events are retried "
            "(retry a partial event's changes one by one)",
            code="not_failed",
        )
    # Changes recorded by an earlier run are recreated by the new one if still failing.
    session.execute(delete(WebhookChange).where(WebhookChange.event_id == event_id))
    event.state = EventState.NEW.value
    event.error = None
    session.flush()
    _audit_retry(session, actor, workspace_id, f"webhook event {event_id}")
    INGEST.wake_after_commit(session)
    return _event_failure(event)


def do_retry_change(
    session: Session, workspace_id: int | None, change_id: int, actor: Any = None
) -> Failure:
    """Queue a failed or parked change to be applied again."""
    change = access_change(session, workspace_id, change_id)
    if change.state not in (ChangeState.FAILED.value, ChangeState.PARKED.value):
        raise Conflict(
            f"webhook change {change_id} is {change.state}; only failed or parked changes "
            "are retried",
            code="not_failed",
        )
    change.state = ChangeState.READY.value
    change.updated_at = utcnow()
    session.flush()
    _audit_retry(session, actor, workspace_id, f"webhook change {change_id}")
    INGEST.wake_after_commit(session)
    return _change_failure(change)


@dataclass(frozen=True)
class RetryCount:
    events: int
    changes: int


def do_retry_all(session: Session) -> RetryCount:
    """Queue every failed event and failed change again (parked ones wait for a channel)."""
    event_ids = list(
        session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.state == EventState.FAILED.value)
        )
    )
    for chunk in _chunks(event_ids, 500):
        session.execute(delete(WebhookChange).where(WebhookChange.event_id.in_(chunk)))
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(chunk))
            .values(state=EventState.NEW.value, error=None)
            .execution_options(synchronize_session=False)
        )
    result = session.execute(
        update(WebhookChange)
        .where(WebhookChange.state == ChangeState.FAILED.value)
        .values(state=ChangeState.READY.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changes = int(getattr(result, "rowcount", 0) or 0)
    if event_ids or changes:
        INGEST.wake_after_commit(session)
    return RetryCount(events=len(event_ids), changes=changes)


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
