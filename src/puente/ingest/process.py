"""Claiming and processing stored webhook events.

The ingest worker calls `do_process_new_events` and `do_process_ready_changes` inside
its unit of work. Each `entry[].changes[]` item is applied in its own savepoint, so one
bad change never spoils the others; changes that cannot apply yet (unknown number) or
fail are kept as WebhookChange rows until they are released or retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, and_, bindparam, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import puente.automation.reactions
import puente.channels.chat_links  # (counts the conversations chat links start)
import puente.integrations.webhooks.reactions  # (outgoing webhooks' deliveries)
import puente.reports.csat  # (surveys asked at closing, answers taken before the inbox)
import puente.reports.hooks  # noqa: F401  (facts of contacts and consent, in our batches)
from puente import metrics
from puente.channels.models import Channel
from puente.conversations.statuses import lock_messages_for_statuses
from puente.db.base import utcnow
from puente.db.session import _CALLBACKS_KEY
from puente.foreground import yield_to_requests
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.ingest.processors import ChangeRef, UnknownChannel, apply_change
from puente.jobs import INGEST, skip_locked
from puente.logs import log_context
from puente.whatsapp.webhooks import Envelope

if TYPE_CHECKING:
    from puente.runtime import Runtime

log = logging.getLogger(__name__)

ENVELOPE_OBJECT = "whatsapp_business_account"


# -- parsing ---------------------------------------------------------------------------


class UnusableBody(Exception):
    """The signed body is not a webhook envelope we can read."""


def parse_changes(event_id: int, body: bytes) -> list[ChangeRef]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableBody(f"body is not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # Python's own limits: an integer of thousands of digits, nesting past the stack.
        raise UnusableBody(f"body is not JSON Puente can read: {exc}") from None
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        raise UnusableBody(f"not a webhook envelope: {_validation_summary(exc)}") from None
    except RecursionError:
        raise UnusableBody("not a webhook envelope: nested too deeply") from None
    if envelope.object != ENVELOPE_OBJECT:
        raise UnusableBody(f"unexpected object {envelope.object!r}, not {ENVELOPE_OBJECT!r}")
    return [
        ChangeRef(
            event_id=event_id,
            waba_id=entry.id,
            entry_time=entry.time,
            field=change.field,
            value=change.value,
        )
        for entry in envelope.entry
        for change in entry.changes
    ]


# -- applying --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    state: ChangeState
    error: str | None = None


APPLIED = Outcome(ChangeState.DONE)


def _apply_in_savepoint(session: Session, runtime: Runtime, change: ChangeRef) -> Outcome:
    # After-commit callbacks queued by a change whose savepoint rolls back must not fire.
    callbacks: list[Any] = session.info.setdefault(_CALLBACKS_KEY, [])
    mark = len(callbacks)
    try:
        with session.begin_nested():
            apply_change(session, runtime, change)
    except UnknownChannel as exc:
        del callbacks[mark:]
        return Outcome(ChangeState.PARKED, str(exc))
    except Exception as exc:
        del callbacks[mark:]
        if is_try_again(exc):
            log.warning(
                "webhook event %s: %s change queued again: %s",
                change.event_id,
                change.field,
                _describe(exc),
            )
            return Outcome(ChangeState.READY, _describe(exc))
        log.warning(
            "webhook event %s: %s change failed: %s", change.event_id, change.field, _describe(exc)
        )
        return Outcome(ChangeState.FAILED, _describe(exc))
    return APPLIED


# PostgreSQL's "try again": a deadlock or a serialization failure says nothing about the
# change itself, so it is queued again (READY, applied by the next step) instead of failed.
_TRY_AGAIN_SQLSTATES = frozenset({"40P01", "40001"})


def is_try_again(exc: BaseException) -> bool:
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and sqlstate in _TRY_AGAIN_SQLSTATES


def _validation_summary(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's own text quotes the input, i.e. the body.
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    ]
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(problems[:5]) + more


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid {exc.title}: {_validation_summary(exc)}"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def claim_event(session: Session, event_id: int) -> WebhookEvent | None:
    """Lock one NEW event for processing, or None if it is gone or taken."""
    stmt = select(WebhookEvent).where(
        WebhookEvent.id == event_id, WebhookEvent.state == EventState.NEW.value
    )
    event: WebhookEvent | None = session.scalar(skip_locked(session, stmt))
    return event


# A transaction holds SQLite's write lock (and, in one process, competes for the GIL with
# the web requests) for as long as it runs. Bounding a batch by bytes as well as by count
# keeps small message webhooks batched 50 at a time while a history chunk of thousands of
# messages gets a transaction of its own.
BATCH_BYTES = 256 * 1024


# Session.info key: (how many claimed events the batch left for a later step because
# another worker held their customers, the lock key of one customer another worker held)
# (see _try_lock_customers).
LEFT_FOR_LATER = "puente.ingest.left_for_later"
_REFUSED_KEY = "puente.ingest.refused_key"


def do_process_new_events(
    session: Session, runtime: Runtime, limit: int = 50, max_bytes: int = BATCH_BYTES
) -> int:
    """Process NEW events in id order: up to `limit` of them and about `max_bytes` of
    bodies (always at least one). Returns how many were processed."""
    table = cast(Table, WebhookEvent.__table__)
    sizes_stmt = (
        select(table.c.id, func.length(table.c.body))
        .where(table.c.state == EventState.NEW.value)
        .order_by(table.c.id)
        .limit(limit)
    )
    ids: list[int] = []
    total = 0
    for event_id, size in session.execute(skip_locked(session, sizes_stmt)).tuples():
        if ids and total + (size or 0) > max_bytes:
            break
        ids.append(event_id)
        total += size or 0
    if not ids:
        return 0
    # Plain rows, not ORM objects: each event's bookkeeping would otherwise be one more
    # UPDATE and flush between changes; here the whole batch gets one executemany.
    rows = (
        session.execute(
            select(table.c.id, table.c.body, table.c.received_at)
            .where(table.c.id.in_(ids))
            .order_by(table.c.id)
        )
        .tuples()
        .all()
    )
    now = utcnow()
    parsed = [(event_id, _parse_body(event_id, body)) for event_id, body, _at in rows]
    # Events whose customers another worker holds stay NEW for a later step.
    held = _try_lock_customers(session, [changes for _, changes in parsed])
    left = held.count(False)
    parsed = [item for item, ok in zip(parsed, held, strict=True) if ok]
    session.info[LEFT_FOR_LATER] = (left, session.info.pop(_REFUSED_KEY, None))
    _lock_status_targets(session, [changes for _, changes in parsed])
    results = []
    for event_id, changes in parsed:
        yield_to_requests()
        with log_context(event_id=event_id):
            state, error = _apply_changes(session, runtime, event_id, changes)
        results.append({"event_id": event_id, "state": state, "error": error, "at": now})
    received = {event_id: at for event_id, _body, at in rows}
    metrics.count_processed(session, [(r["state"], now - received[r["event_id"]]) for r in results])
    if results:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("event_id"))
            .values(
                state=bindparam("state"),
                error=bindparam("error"),
                processed_at=bindparam("at"),
                attempts=table.c.attempts + 1,
            ),
            results,
        )
    # Counted as work even when every event was left to another worker's customers, so
    # the worker comes straight back for them once those are committed.
    return len(rows)


def do_process_event(session: Session, runtime: Runtime, event: WebhookEvent) -> None:
    """Apply every change of one event; problems become WebhookChange rows."""
    event.attempts += 1
    event.processed_at = utcnow()
    changes = _parse_body(event.id, event.body)
    _lock_customers(session, list(customers_of(changes)))
    _lock_status_targets(session, [changes])
    with log_context(event_id=event.id):
        event.state, event.error = _apply_changes(session, runtime, event.id, changes)
    session.flush()
    metrics.count_processed(session, [(event.state, event.processed_at - event.received_at)])


def _parse_body(event_id: int, body: bytes) -> list[ChangeRef] | UnusableBody:
    try:
        return parse_changes(event_id, body)
    except UnusableBody as exc:
        return exc


# Where a change names the customers whose contact, conversation and messages it updates.
_CUSTOMER_FIELDS = {
    "messages": (
        ("contacts", "wa_id"),
        ("contacts", "user_id"),
        ("messages", "from"),
        ("messages", "from_user_id"),
        ("statuses", "recipient_id"),
        ("statuses", "recipient_user_id"),
    ),
    "smb_message_echoes": (("message_echoes", "to"), ("message_echoes", "to_user_id")),
}


def customers_of(changes: list[ChangeRef] | UnusableBody) -> Iterator[str]:
    if isinstance(changes, UnusableBody):
        return
    for change in changes:
        for key, field in _CUSTOMER_FIELDS.get(change.field, ()):
            for item in change.value.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get(field), str) and item[field]:
                    yield item[field]


def customer_lock_key(customer: str) -> int:
    """A signed 64-bit advisory lock key for one customer (by wa_id or BSUID)."""
    digest = hashlib.blake2b(f"puente.customer:{customer}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_customers(session: Session, customers: list[str]) -> None:
    """PostgreSQL: wait for and take these customers (one event's), in key order, in a
    transaction that holds no other customer (so the wait cannot close a cycle)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({customer_lock_key(c) for c in customers})
    if keys:
        # The subquery fixes the order in which the locks are taken.
        session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(k)) "
                "FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
            ),
            {"keys": keys},
        )


def do_wait_for_customer(session: Session, key: int) -> None:
    """PostgreSQL: wait until no other transaction holds the customer with lock `key`, in
    a transaction that holds nothing else (so the wait cannot close a cycle). A worker
    whose whole batch was another's customers waits here for that batch's commit instead
    of spinning."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _try_lock_customers(
    session: Session, groups: Sequence[list[ChangeRef] | UnusableBody]
) -> list[bool]:
    """PostgreSQL: take, without waiting, the customers each group of changes (an
    event's, in batch order) updates; returns for each group whether all of its customers
    are now held by this transaction. SQLite has one writer at a time: every group is
    True, and nothing is read from the changes.

    Two `puente worker` processes whose batches held messages of the same customer each
    read the conversation, added one to its unread count and wrote it back: the second
    write lost the first's increment, and their row locks deadlocked. A transaction-scoped
    advisory lock per customer keeps a customer's rows to one worker at a time. Taken with
    try-locks, a worker never waits while holding anything (so never deadlocks), and
    instead of waiting for a whole batch of another's it leaves just the events that share
    a customer for a later step, keeping the rest of its batch running beside the other.
    Once a group is left out, later groups sharing any of its customers are left out too,
    so one customer's events are still applied in their order."""
    if session.get_bind().dialect.name != "postgresql":
        return [True] * len(groups)
    keyed = [{customer_lock_key(c) for c in customers_of(group)} for group in groups]
    wanted = sorted(set().union(*keyed))
    if not wanted:
        return [True] * len(groups)
    rows = session.execute(
        text("SELECT k, pg_try_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": wanted},
    ).tuples()
    held = {key for key, ok in rows if ok}
    refused = set(wanted) - held
    if refused:
        # One that another worker holds: the one to wait for if nothing could be done.
        session.info[_REFUSED_KEY] = min(refused)
    blocked: set[int] = set()
    result = []
    for keys in keyed:
        ok = keys <= held and not keys & blocked
        if not ok:
            blocked |= keys
        result.append(ok)
    return result


def _lock_status_targets(
    session: Session, parsed: Iterable[list[ChangeRef] | UnusableBody]
) -> None:
    """Lock the messages the statuses of these events will update, in one order, before
    applying any (see `lock_messages_for_statuses`: concurrent batches would deadlock)."""
    lock_messages_for_statuses(
        session,
        (
            status
            for changes in parsed
            if not isinstance(changes, UnusableBody)
            for change in changes
            if change.field == "messages"
            for status in change.value.get("statuses") or []
            if isinstance(status, dict)
        ),
    )


def _apply_changes(
    session: Session, runtime: Runtime, event_id: int, changes: list[ChangeRef] | UnusableBody
) -> tuple[str, str | None]:
    """Apply the changes of one stored body; returns the event's new state and error."""
    if isinstance(changes, UnusableBody):
        log.warning("webhook event %s failed: %s", event_id, changes)
        return EventState.FAILED.value, str(changes)
    problems = 0
    for change in changes:
        outcome = _apply_in_savepoint(session, runtime, change)
        if outcome.state is ChangeState.DONE:
            continue
        problems += 1
        session.add(
            WebhookChange(
                event_id=event_id,
                waba_id=change.waba_id,
                phone_number_id=change.phone_number_id,
                field=change.field,
                value=change.value,
                state=outcome.state.value,
                error=outcome.error,
                attempts=1,
            )
        )
    if problems:
        return EventState.PARTIAL.value, f"{problems} of {len(changes)} changes parked or failed"
    return EventState.DONE.value, None


def do_mark_change_failed(session: Session, change_id: int, error: str) -> None:
    """Record that applying the change broke its whole transaction."""
    change = session.get(WebhookChange, change_id)
    if change is None:
        return
    change.attempts += 1
    change.state = ChangeState.FAILED.value
    change.error = error
    session.flush()
    _settle_event(session, change.event_id)


def do_mark_event_failed(session: Session, event_id: int, error: str) -> None:
    """Record that processing the event broke its whole transaction (not one change)."""
    event = session.get(WebhookEvent, event_id)
    if event is None:
        return
    event.attempts += 1
    event.processed_at = utcnow()
    event.state = EventState.FAILED.value
    event.error = error
    metrics.count_processed(session, [(event.state, event.processed_at - event.received_at)])


def do_process_ready_changes(
    session: Session, runtime: Runtime, limit: int = 50, *, only_id: int | None = None
) -> int:
    """Apply again the changes released or retried (state READY), or just the change
    `only_id` if it is still READY. Returns how many were applied."""
    stmt = select(WebhookChange).where(WebhookChange.state == ChangeState.READY.value)
    if only_id is not None:
        stmt = stmt.where(WebhookChange.id == only_id)
    rows = list(session.scalars(skip_locked(session, stmt.order_by(WebhookChange.id).limit(limit))))
    held = _try_lock_customers(
        session, [[ChangeRef(r.event_id, r.waba_id, None, r.field, r.value)] for r in rows]
    )
    rows = [row for row, ok in zip(rows, held, strict=True) if ok]
    entry_times: dict[int, dict[str, int | None]] = {}
    for row in rows:
        change = ChangeRef(
            event_id=row.event_id,
            waba_id=row.waba_id,
            entry_time=_entry_time(session, entry_times, row.event_id, row.waba_id),
            field=row.field,
            value=row.value,
        )
        with log_context(event_id=row.event_id):
            outcome = _apply_in_savepoint(session, runtime, change)
        row.attempts += 1
        row.state = outcome.state.value
        row.error = outcome.error
    session.flush()
    for event_id in sorted({row.event_id for row in rows}):
        _settle_event(session, event_id)
    return len(rows)


def _entry_time(
    session: Session, cache: dict[int, dict[str, int | None]], event_id: int, waba_id: str | None
) -> int | None:
    """`entry[].time` is not kept on the change row; read it back from the raw body."""
    if event_id not in cache:
        body = session.scalar(select(WebhookEvent.body).where(WebhookEvent.id == event_id))
        try:
            envelope = Envelope.model_validate_json(body or b"")
            cache[event_id] = {entry.id: entry.time for entry in envelope.entry}
        except ValidationError:
            cache[event_id] = {}
    return cache[event_id].get(waba_id or "")


_OPEN_CHANGE_STATES = (ChangeState.PARKED.value, ChangeState.FAILED.value, ChangeState.READY.value)


def _settle_event(session: Session, event_id: int) -> None:
    """An event is DONE once none of its changes is still parked, failed or queued."""
    open_changes = session.scalar(
        select(func.count())
        .select_from(WebhookChange)
        .where(WebhookChange.event_id == event_id, WebhookChange.state.in_(_OPEN_CHANGE_STATES))
    )
    event = session.get(WebhookEvent, event_id)
    if event is None:
        return
    if open_changes:
        event.state = EventState.PARTIAL.value
        event.error = f"{open_changes} changes parked or failed"
    else:
        event.state = EventState.DONE.value
        event.error = None
    event.processed_at = utcnow()


def do_release_parked_for_known_numbers(session: Session) -> int:
    """Queue again the changes parked for a number that has a channel now. Connecting a
    number releases what is parked at once; a worker transaction that looked the number
    up just before the channel's commit can still park a change just after it (PostgreSQL
    runs them side by side, and on a loaded machine that transaction may outlast the
    onboarding's second look). The worker's sweep calls this, so such a change waits
    seconds, not forever. Cheap when nothing is parked (the state is indexed)."""
    known = select(Channel.phone_number_id)
    result = session.execute(
        update(WebhookChange)
        .where(
            WebhookChange.state == ChangeState.PARKED.value,
            WebhookChange.phone_number_id.in_(known),
        )
        .values(state=ChangeState.READY.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    released = int(getattr(result, "rowcount", 0) or 0)
    if released:
        INGEST.wake_after_commit(session)
    return released


def release_parked(session: Session, phone_number_id: str, waba_id: str | None = None) -> int:
    """Queue again every change parked for `phone_number_id` (its channel now exists).
    With `waba_id`, also the account-level changes (no phone number) parked for that WABA.
    Returns how many were released."""
    match = WebhookChange.phone_number_id == phone_number_id
    if waba_id is not None:
        match = or_(
            match, and_(WebhookChange.phone_number_id.is_(None), WebhookChange.waba_id == waba_id)
        )
    result = session.execute(
        update(WebhookChange)
        .where(WebhookChange.state == ChangeState.PARKED.value, match)
        .values(state=ChangeState.READY.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    released = int(getattr(result, "rowcount", 0) or 0)
    if released:
        INGEST.wake_after_commit(session)
    return released
