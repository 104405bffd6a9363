"""Storing, claiming and processing raw webhook events.

The webhook endpoint stores bodies with `do_store_events`; the ingest worker calls
`do_process_new_events` and `do_process_ready_changes` inside its unit of work. Each
`entry[].changes[]` item is applied in its own savepoint, so one bad change never spoils
the others; changes that cannot apply yet (unknown number) or fail are kept as
WebhookChange rows until they are released or retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.conversations.statuses import lock_messages_for_statuses
from puente.db.base import utcnow
from puente.db.session import _CALLBACKS_KEY, on_commit
from puente.errors import Conflict, NotFound
from puente.foreground import yield_to_requests
from puente.ingest.models import ChangeState, EventState, WebhookChange, WebhookEvent
from puente.ingest.processors import ChangeRef, UnknownChannel, apply_change
from puente.whatsapp.webhooks import Envelope

if TYPE_CHECKING:
    from puente.runtime import Runtime

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "puente_ingest"
ENVELOPE_OBJECT = "whatsapp_business_account"


# -- waking workers ------------------------------------------------------------------


class _Wakeable(Protocol):
    def wake(self) -> None: ...


# Ingest workers of this process; weak so a discarded app does not keep its worker alive.
_workers: weakref.WeakSet[_Wakeable] = weakref.WeakSet()
_workers_lock = threading.Lock()


def register_worker(worker: _Wakeable) -> None:
    with _workers_lock:
        _workers.add(worker)


def wake_ingest_workers() -> None:
    """Wake this process's ingest workers (other processes hear NOTIFY on PostgreSQL)."""
    with _workers_lock:
        workers = list(_workers)
    for worker in workers:
        worker.wake()


def _wake_after_commit(session: Session) -> None:
    """Make the worker look at the queue once this transaction commits."""
    # NOTIFY is transactional: listeners hear it only if the commit happens.
    notify_sql(session.connection())
    on_commit(session, wake_ingest_workers)


# -- storing ---------------------------------------------------------------------------


# 128 bits: two different bodies sharing a key is out of reach (about 2^64 bodies before
# it gets likely), and the unique index stays a quarter of the size of 64 hex characters.
DEDUPE_KEY_BYTES = 16


def dedupe_key(body: bytes) -> bytes:
    """Meta's retries resend the same bytes, so the body's hash identifies a delivery:
    the first 16 bytes of its sha256."""
    return hashlib.sha256(body).digest()[:DEDUPE_KEY_BYTES]


def do_store_events(session: Session, bodies: Sequence[bytes]) -> None:
    """Insert raw bodies as NEW events; a body already stored is silently skipped."""
    insert_events(session.connection(), bodies)
    _wake_after_commit(session)


_INSERT_HEAD = "INSERT INTO webhook_events (dedupe_key, received_at, body, state, attempts) VALUES "
_INSERT_TAIL = " ON CONFLICT (dedupe_key) DO NOTHING"
_ROW = {"sqlite": "(?, ?, ?, 'new', 0)", "postgresql": "(%s, %s, %s, 'new', 0)"}
# Well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters (3 per row).
_ROWS_PER_STATEMENT = 500


def _insert_statements(
    dialect: Dialect, bodies: Sequence[bytes]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Driver-level INSERTs for `bodies`, each body once.

    One multi-row INSERT per batch rather than an executemany: the driver releases the
    GIL around every statement it steps, and while the event loop is busy each
    re-acquisition waits for a thread switch, so one statement costs one switch.
    """
    rows: dict[bytes, bytes] = {}
    for body in bodies:
        rows.setdefault(dedupe_key(body), body)
    to_db = WebhookEvent.__table__.c.received_at.type.bind_processor(dialect)
    now = to_db(utcnow()) if to_db else utcnow()
    items = list(rows.items())
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        chunk = items[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join([_ROW[dialect.name]] * len(chunk))
        params = tuple(value for key, body in chunk for value in (key, now, body))
        yield _INSERT_HEAD + values + _INSERT_TAIL, params


def insert_events(conn: Connection, bodies: Sequence[bytes]) -> None:
    """The insert itself, at the driver level, inside the caller's transaction."""
    for sql, params in _insert_statements(conn.dialect, bodies):
        conn.exec_driver_sql(sql, params)


def commit_events(engine: Engine, bodies: Sequence[bytes]) -> None:
    """Insert and commit `bodies` on a driver connection from the pool."""
    raw = engine.raw_connection()
    try:
        write_events(raw, engine.dialect, bodies)
    finally:
        raw.close()  # back to the pool, which resets or discards it


def write_events(raw: Any, dialect: Dialect, bodies: Sequence[bytes]) -> None:
    """Insert and commit `bodies` on the driver connection `raw`: the webhook writer's path.

    It runs for every burst of webhooks, in a thread that shares the GIL with the event
    loop, so it makes as few calls into the driver as it can: each one releases the GIL
    and, while the event loop is busy, waits for a thread switch to get it back. On
    SQLite a burst is one INSERT in autocommit mode (Puente's SQLite connections leave
    transactions to us, see db.session): a single statement is its own transaction, it
    takes the write lock when it starts, as BEGIN IMMEDIATE would, and is committed when
    it returns. One call instead of three (BEGIN, INSERT, COMMIT).
    """
    statements = list(_insert_statements(dialect, bodies))
    cursor = raw.cursor()
    try:
        if dialect.name == "sqlite" and len(statements) == 1:
            cursor.execute(*statements[0])
            return
        try:
            if dialect.name == "sqlite":
                # Several statements: one transaction, with the write lock up front like
                # every other writer.
                cursor.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                cursor.execute(sql, params)
            if dialect.name == "postgresql":
                cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
            raw.commit()
        except Exception:
            with contextlib.suppress(Exception):  # the original error is the one to report
                raw.rollback()
            raise
    finally:
        cursor.close()


def notify_sql(conn: Connection) -> None:
    """On PostgreSQL, tell other processes' workers (heard at commit, not before)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")


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


def _claim(session: Session, stmt: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        # Several `puente worker` processes share the queue; each takes rows no one holds.
        return stmt.with_for_update(skip_locked=True)
    return stmt  # SQLite: BEGIN IMMEDIATE already makes this process the only writer


def claim_new_event_ids(session: Session, limit: int) -> list[int]:
    stmt = (
        select(WebhookEvent.id)
        .where(WebhookEvent.state == EventState.NEW.value)
        .order_by(WebhookEvent.id)
        .limit(limit)
    )
    return list(session.scalars(_claim(session, stmt)))


def claim_event(session: Session, event_id: int) -> WebhookEvent | None:
    """Lock one NEW event for processing, or None if it is gone or taken."""
    stmt = select(WebhookEvent).where(
        WebhookEvent.id == event_id, WebhookEvent.state == EventState.NEW.value
    )
    event: WebhookEvent | None = session.scalar(_claim(session, stmt))
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
    for event_id, size in session.execute(_claim(session, sizes_stmt)).tuples():
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
            select(table.c.id, table.c.body).where(table.c.id.in_(ids)).order_by(table.c.id)
        )
        .tuples()
        .all()
    )
    now = utcnow()
    parsed = [(event_id, _parse_body(event_id, body)) for event_id, body in rows]
    # Events whose customers another worker holds stay NEW for a later step.
    held = _try_lock_customers(session, [changes for _, changes in parsed])
    left = held.count(False)
    parsed = [item for item, ok in zip(parsed, held, strict=True) if ok]
    session.info[LEFT_FOR_LATER] = (left, session.info.pop(_REFUSED_KEY, None))
    _lock_status_targets(session, [changes for _, changes in parsed])
    results = []
    for event_id, changes in parsed:
        yield_to_requests()
        state, error = _apply_changes(session, runtime, event_id, changes)
        results.append({"event_id": event_id, "state": state, "error": error, "at": now})
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
    event.state, event.error = _apply_changes(session, runtime, event.id, changes)
    session.flush()


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


def do_process_ready_changes(
    session: Session, runtime: Runtime, limit: int = 50, *, only_id: int | None = None
) -> int:
    """Apply again the changes released or retried (state READY), or just the change
    `only_id` if it is still READY. Returns how many were applied."""
    stmt = select(WebhookChange).where(WebhookChange.state == ChangeState.READY.value)
    if only_id is not None:
        stmt = stmt.where(WebhookChange.id == only_id)
    rows = list(session.scalars(_claim(session, stmt.order_by(WebhookChange.id).limit(limit))))
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
        _wake_after_commit(session)
    return released


# -- visibility and retry ----------------------------------------------------------------


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
    _wake_after_commit(session)
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
    _wake_after_commit(session)
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
        _wake_after_commit(session)
    return RetryCount(events=len(event_ids), changes=changes)


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
