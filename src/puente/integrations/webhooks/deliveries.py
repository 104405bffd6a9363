"""Writing deliveries: one row per event and subscribed endpoint, inside the transaction
of the change (the reactions call `enqueue`), numbered per endpoint and conversation."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, Text, bindparam, event, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from puente.db.base import utcnow
from puente.integrations.webhooks.models import (
    DeliveryState,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSequence,
)
from puente.jobs import WEBHOOKS

# How long a delivery is retried, and how long an endpoint may fail before it is disabled.
RETRY_FOR = dt.timedelta(days=3)


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


def payload_of(
    event_type: str,
    workspace_id: int,
    data: dict[str, Any],
    at: dt.datetime,
    sequence: int | None,
) -> dict[str, Any]:
    """The JSON body a receiver gets (Standard Webhooks' type, timestamp and data, with
    the workspace and the conversation's sequence number)."""
    return {
        "type": event_type,
        "timestamp": at.astimezone(dt.UTC).isoformat(),
        "workspace_id": workspace_id,
        "sequence": sequence,
        "data": data,
    }


def payload_text(
    event_type: str,
    workspace_id: int,
    data_json: str,
    at: dt.datetime,
    sequence: int | None,
) -> str:
    """`payload_of` as JSON text, byte for byte what `json.dumps` makes of it, around the
    event's data serialized once (`data_json`): the deliveries of one event to several
    endpoints differ only in their sequence numbers."""
    timestamp = json.dumps(at.astimezone(dt.UTC).isoformat())
    number = "null" if sequence is None else str(int(sequence))
    return (
        f'{{"type": {json.dumps(event_type)}, "timestamp": {timestamp}, '
        f'"workspace_id": {int(workspace_id)}, "sequence": {number}, "data": {data_json}}}'
    )


def new_delivery(
    session: Session,
    *,
    endpoint_id: int,
    workspace_id: int,
    event_type: str,
    event_id: str,
    payload: dict[str, Any],
    conversation_id: int | None,
    sequence: int | None,
    now: dt.datetime,
) -> WebhookDelivery:
    return WebhookDelivery(
        workspace_id=workspace_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        conversation_id=conversation_id,
        sequence=sequence,
        state=DeliveryState.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        give_up_at=now + RETRY_FOR,
        created_at=now,
    )


@dataclass(frozen=True)
class Subscriber:
    id: int
    events: frozenset[str]
    channel_id: int | None


_ENDPOINTS_KEY = "puente.webhooks.endpoints"


def forget_endpoints(session: Session) -> None:
    session.info.pop(_ENDPOINTS_KEY, None)


def subscribers(session: Session, workspace_id: int) -> list[Subscriber]:
    """The workspace's enabled endpoints: one query per workspace and session (a unit of
    work is one transaction), so a batch of a thousand messages asks once."""
    cache: dict[int, list[Subscriber]] = session.info.setdefault(_ENDPOINTS_KEY, {})
    found = cache.get(workspace_id)
    if found is None:
        rows = session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events, WebhookEndpoint.channel_id).where(
                WebhookEndpoint.workspace_id == workspace_id,
                WebhookEndpoint.enabled.is_(True),
            )
        ).all()
        found = [Subscriber(r.id, frozenset(r.events or ()), r.channel_id) for r in rows]
        cache[workspace_id] = found
    return found


def wanted(session: Session, workspace_id: int, *event_types: str) -> bool:
    """Whether an enabled endpoint of the workspace subscribes to any of `event_types`
    (before a reaction reads a row only the payload or the number filter needs)."""
    return any(s.events.intersection(event_types) for s in subscribers(session, workspace_id))


def take_sequences(
    session: Session, wanted: dict[tuple[int, int, int], int]
) -> dict[tuple[int, int, int], int]:
    """Reserve `count` numbers for each (workspace, endpoint, conversation) in one upsert
    of the counter rows; returns the last number reserved for each. On PostgreSQL a second
    transaction numbering the same conversation waits on its row until the first commits,
    so the numbers follow the order of the commits (keys sorted: no deadlock between two)."""
    if not wanted:
        return {}
    rows = [
        {"workspace_id": w, "endpoint_id": e, "conversation_id": c, "last": count}
        for (w, e, c), count in sorted(wanted.items())
    ]
    # One statement with the rows as parameters (executemany): SQLAlchemy compiles it once
    # and writes the rows into multi-row VALUES pages itself (`insertmanyvalues`), RETURNING
    # included. Built with the rows in `.values(rows)`, it was compiled afresh for every
    # transaction, a few hundred rows' worth of bind parameters: 15 to 20 ms of CPU for a
    # batch of 500 messages, most of what numbering cost.
    workspace_of = {(e, c): w for (w, e, c) in wanted}
    result = session.connection().execute(_upsert_sequences(session), rows)
    return {(workspace_of[(e, c)], e, c): int(last) for e, c, last in result.tuples()}


def _upsert_sequences(session: Session) -> Any:
    table = cast(Table, WebhookSequence.__table__)
    dialect = session.get_bind().dialect.name
    ins: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return ins.on_conflict_do_update(
        index_elements=["endpoint_id", "conversation_id"],
        set_={"last": table.c.last + ins.excluded.last},
    ).returning(table.c.endpoint_id, table.c.conversation_id, table.c.last)


class Pending(NamedTuple):
    """A delivery to write when the transaction commits. The data is kept as its JSON text,
    serialized when the event happened: a string and a tuple of plain values are all that
    waits for the commit (hundreds per transaction on the ingest path), not dicts for the
    garbage collector to walk, and nothing changes it meanwhile."""

    workspace_id: int
    endpoint_id: int
    event_id: str
    event_type: str
    data_json: str
    conversation_id: int | None
    at: dt.datetime


# session.info: [(transaction, Pending), ...], written by one INSERT just before the commit
# (as reports.facts does): a savepoint that rolls back takes its own deliveries with it.
_PENDING = "puente.webhooks.pending"
_WOKEN = "puente.webhooks.woken"  # session.info: the transaction that asked for the wake-up


def enqueue(
    session: Session,
    *,
    workspace_id: int,
    event_type: str,
    data: dict[str, Any] | None = None,
    build: Any = None,
    conversation_id: int | None = None,
    channel_id: int | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Write one delivery of the event to each enabled endpoint of the workspace that
    subscribes to `event_type`; an endpoint filtered to one number gets the events of that
    number and those that name none (contacts). `data`, or `build()` called only when some
    endpoint wants it, is the payload's data.

    The rows are written just before the transaction commits, all in one INSERT, with
    their sequence numbers taken then (one upsert of the counter rows); a savepoint that
    rolls back drops its own. Returns how many deliveries will be written; the worker is
    woken after commit."""
    wanted = [
        s
        for s in subscribers(session, workspace_id)
        if event_type in s.events
        and (s.channel_id is None or channel_id is None or s.channel_id == channel_id)
    ]
    if not wanted:
        return 0
    body = data if data is not None else build()
    if body is None:
        return 0
    now = at or utcnow()
    event_id = new_event_id()
    data_json = json.dumps(body)  # once, whatever the number of endpoints
    transaction = session.get_nested_transaction() or session.get_transaction()
    pending = session.info.setdefault(_PENDING, [])
    for sub in wanted:
        row = Pending(workspace_id, sub.id, event_id, event_type, data_json, conversation_id, now)
        pending.append((transaction, row))
    if _WOKEN not in session.info:
        # Once per transaction: a thousand messages need one wake-up, not a thousand.
        WEBHOOKS.wake_after_commit(session)
        session.info[_WOKEN] = transaction
    return len(wanted)


def write_pending(session: Session) -> int:
    """Write the deliveries enqueued in this transaction now (the commit does it by itself;
    tests and callers that read them back in the same transaction call it)."""
    session.info.pop(_WOKEN, None)
    pending: list[tuple[Any, Pending]] = session.info.pop(_PENDING, None) or []
    if not pending:
        return 0
    rows = [p for _, p in pending]
    counts: dict[tuple[int, int, int], int] = {}
    for p in rows:
        if p.conversation_id is not None:
            key = (p.workspace_id, p.endpoint_id, p.conversation_id)
            counts[key] = counts.get(key, 0) + 1
    last = take_sequences(session, counts)
    # Each key's numbers run up to `last`, handed out in the order the events came.
    following = {k: last[k] - counts[k] for k in counts}
    values = []
    for p in rows:
        sequence = None
        if p.conversation_id is not None:
            key = (p.workspace_id, p.endpoint_id, p.conversation_id)
            following[key] += 1
            sequence = following[key]
        values.append(
            {
                "workspace_id": p.workspace_id,
                "endpoint_id": p.endpoint_id,
                "event_id": p.event_id,
                "event_type": p.event_type,
                "payload_text": payload_text(
                    p.event_type, p.workspace_id, p.data_json, p.at, sequence
                ),
                "conversation_id": p.conversation_id,
                "sequence": sequence,
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": p.at,
                "give_up_at": p.at + RETRY_FOR,
                "created_at": p.at,
            }
        )
    session.execute(_insert_deliveries(session), values)
    return len(values)


def _insert_deliveries(session: Session) -> Any:
    """The deliveries' INSERT, taking the payload as the JSON text `payload_text` made (cast
    to JSONB on PostgreSQL; SQLite keeps JSON as text): serialized once per event instead
    of once per row by the column type."""
    table = cast(Table, WebhookDelivery.__table__)
    text = bindparam("payload_text", type_=Text)
    if session.get_bind().dialect.name == "postgresql":
        return insert(table).values(payload=sql_cast(text, postgresql.JSONB))
    return insert(table).values(payload=text)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the outer transaction writes them
    write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_WOKEN, None)
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    # The savepoint's wake-up went with it (see ingest.process): the next enqueue asks again.
    if inside(session.info.get(_WOKEN)):
        session.info.pop(_WOKEN, None)
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [(t, p) for t, p in pending if not inside(t)]
