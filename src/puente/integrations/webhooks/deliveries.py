"""Writing deliveries: one row per event and subscribed endpoint, inside the transaction
of the change (the reactions call `enqueue`), numbered per endpoint and conversation."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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


def next_sequence(
    session: Session, workspace_id: int, endpoint_id: int, conversation_id: int
) -> int:
    """The endpoint's next number for the conversation, from its counter row: one upsert.
    On PostgreSQL a second transaction numbering the same conversation waits on the row
    until the first commits, so the numbers follow the order of the commits."""
    values = {
        "workspace_id": workspace_id,
        "endpoint_id": endpoint_id,
        "conversation_id": conversation_id,
        "last": 1,
    }
    table = cast(Table, WebhookSequence.__table__)
    dialect = session.get_bind().dialect.name
    ins: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = (
        ins.values(values)
        .on_conflict_do_update(
            index_elements=["endpoint_id", "conversation_id"],
            set_={"last": table.c.last + 1},
        )
        .returning(table.c.last)
    )
    return int(session.connection().execute(stmt).scalar_one())


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
    number and those that name none (contacts).
    `data`, or `build()` called only when some endpoint wants it, is the payload's data.
    Returns how many deliveries were written; the worker is woken after commit."""
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
    rows = []
    for sub in wanted:
        sequence = (
            next_sequence(session, workspace_id, sub.id, conversation_id)
            if conversation_id is not None
            else None
        )
        rows.append(
            {
                "workspace_id": workspace_id,
                "endpoint_id": sub.id,
                "event_id": event_id,
                "event_type": event_type,
                "payload": payload_of(event_type, workspace_id, body, now, sequence),
                "conversation_id": conversation_id,
                "sequence": sequence,
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "give_up_at": now + RETRY_FOR,
                "created_at": now,
            }
        )
    session.execute(insert(WebhookDelivery), rows)
    WEBHOOKS.wake_after_commit(session)
    return len(rows)


def pending_count(session: Session, endpoint_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.state == DeliveryState.PENDING.value,
            )
        )
        or 0
    )
