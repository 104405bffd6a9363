"""Broadcasts: one approved template to an audience, one row per recipient.

Creating a broadcast plans it: the audience is resolved (segment, tags, list or CSV),
each person's template values are filled from their fields, opted-out and unusable
people are kept as skipped rows with the reason, and the cost is estimated. Starting it
(now or at its scheduled time) queues the recipients into the outbox in bulk
(`broadcast_queue`). A recipient's state then follows its message's status, and becomes
`replied` when the person writes back (`on_broadcast_reply`).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from puente.accounts.audit import Action, record
from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.conversations.models import Message, MessageStatus
from puente.db.base import utcnow
from puente.db.bulk_rows import dumps, insert_rows
from puente.errors import Conflict, InvalidInput, NotFound
from puente.events import BroadcastReplied, publish
from puente.jobs import OUTBOX
from puente.outbound.broadcasts.audience import (
    CsvResult,
    Person,
    audience_people,
    load_people,
    parse_csv,
    upsert_csv_contacts,
)
from puente.outbound.broadcasts.params import ValueResolver, check_variables, template_targets
from puente.outbound.broadcasts.queue import (
    CHUNK,
    Outcome,
    opted_out,
    publish_progress,
    queue_pending,
    queue_planned,
)
from puente.outbound.broadcasts.rates import estimate, rate_table
from puente.outbound.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastState,
    OutboxItem,
    OutboxState,
    RecipientState,
)
from puente.outbound.templates.service import SENDABLE, TemplateNotSendable, find_template

SHOWN_STATES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "replied",
    "failed",
    "skipped",
    "cancelled",
)
# A reply counts for the broadcast it answers only within this long after the send.
REPLY_WINDOW = dt.timedelta(days=7)
REPORT_LIMIT = 5000  # problem rows kept on the broadcast; the count is always exact
# Read once: each `.value` of an enum member is a descriptor call, 100,000s per broadcast.
_PENDING, _SKIPPED = RecipientState.PENDING.value, RecipientState.SKIPPED.value


@dataclass
class Planned:
    contact_id: int | None
    phone: str | None
    values: dict[str, str]
    state: str
    reason: str | None
    line: int | None


# -- creating --------------------------------------------------------------------------


def parse_schedule(value: str | dt.datetime | None, time_zone: str) -> dt.datetime | None:
    """A start time in UTC; one written without an offset is in the workspace's zone."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                "scheduled_at: not a date and time (use 2026-12-01T09:30)",
                details=[{"field": "scheduled_at", "message": "not a date and time"}],
            ) from None
    if value.tzinfo is None:
        try:
            zone = zoneinfo.ZoneInfo(time_zone or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo("UTC")
        value = value.replace(tzinfo=zone)
    return value.astimezone(dt.UTC)


def _channel(session: Session, workspace_id: int, channel_id: int | None) -> Channel:
    query = select(Channel).where(Channel.workspace_id == workspace_id)
    if channel_id is not None:
        query = query.where(Channel.id == channel_id)
    channels = list(session.scalars(query.order_by(Channel.id).limit(2)))
    if channel_id is not None and not channels:
        raise NotFound(f"no channel {channel_id} in this workspace")
    if not channels:
        raise Conflict("this workspace has no WhatsApp number yet", code="no_channel")
    if len(channels) > 1:
        raise InvalidInput(
            "channel_id: this workspace has several numbers; say which one sends",
            details=[{"field": "channel_id", "message": "required"}],
        )
    return channels[0]


def do_create_broadcast(
    session: Session,
    *,
    workspace_id: int,
    name: str,
    template_name: str,
    language: str,
    variables: Mapping[str, Any],
    audience: Mapping[str, Any],
    channel_id: int | None = None,
    csv_text: str | None = None,
    scheduled_at: str | dt.datetime | None = None,
    created_by_id: int | None = None,
    actor: Any = None,
    dry_run: bool = False,
) -> Broadcast:
    """Plan a broadcast; it starts at once unless scheduled for later (or `dry_run`,
    which plans and estimates without starting: the caller rolls it back)."""
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("no such workspace")
    channel = _channel(session, workspace_id, channel_id)
    template = find_template(
        session,
        workspace_id=workspace_id,
        name=template_name,
        language=language,
        waba_id=channel.waba_id,
    )
    if template is None:
        raise NotFound(
            f"no template '{template_name}' ({language}) for this number; sync templates first",
            code="unknown_template",
        )
    if template.status not in SENDABLE:
        raise TemplateNotSendable(
            f"template '{template_name}' ({language}) is {template.status.lower()};"
            " only approved templates can be broadcast",
            details={"template_id": template.id, "status": template.status},
        )
    clean = check_variables(template_targets(list(template.components or [])), variables)
    when = parse_schedule(scheduled_at, workspace.timezone)
    kind = str(audience.get("kind") or ("csv" if csv_text is not None else ""))
    report: list[dict[str, Any]] = []
    if kind == "csv":
        if not csv_text or not csv_text.strip():
            raise InvalidInput("upload a CSV file", details=[{"field": "csv"}])
        planned, report = _plan_csv(session, workspace_id, parse_csv(csv_text), clean)
    else:
        planned = _plan_contacts(session, workspace_id, dict(audience), clean)
    if not planned:
        raise InvalidInput(
            "nobody to send to: the audience is empty"
            + (f" ({len(report)} CSV rows had problems)" if report else ""),
            details=report[:REPORT_LIMIT] or [{"field": "audience", "message": "empty"}],
        )
    if template.category == "MARKETING":
        refused = opted_out(session, workspace_id, [p.contact_id for p in planned if p.contact_id])
        for p in planned:
            if p.state == _PENDING and p.contact_id in refused:
                p.state, p.reason = _SKIPPED, refused[p.contact_id]
    table = rate_table((workspace.settings or {}).get("rates"))
    sendable = [p.phone for p in planned if p.state == _PENDING and p.phone]
    broadcast = Broadcast(
        workspace_id=workspace_id,
        channel_id=channel.id,
        name=name.strip() or template_name,
        template_name=template_name,
        template_language=language,
        template_category=template.category,
        variables=clean,
        audience={**{k: v for k, v in audience.items() if k != "csv"}, "kind": kind},
        report=report[:REPORT_LIMIT],
        estimate={**estimate(table, template.category, sendable), "problems": len(report)},
        state=BroadcastState.SCHEDULED.value,
        scheduled_at=when or utcnow(),
        total=len(planned),
        created_by_id=created_by_id,
    )
    session.add(broadcast)
    session.flush()
    outcomes: dict[int, Outcome] = {}
    if not dry_run and (when is None or when <= utcnow()):
        # Starting at once: queued as planned, and each recipient's row written once, in
        # its final state (the same transaction, so a crash leaves no broadcast at all).
        broadcast.state = BroadcastState.SENDING.value
        broadcast.started_at = utcnow()
        pending = [
            (i, p.contact_id, p.values) for i, p in enumerate(planned) if p.state == _PENDING
        ]
        outcomes = queue_planned(session, broadcast, pending)
        publish_progress(session, broadcast)
    _insert_recipients(session, broadcast, planned, outcomes)
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=Action.BROADCAST_CREATED,
        target=f"broadcast {broadcast.id}",
        details={"recipients": len(planned), "template": template_name, "scheduled": bool(when)},
    )
    return broadcast


def _plan_contacts(
    session: Session, workspace_id: int, audience: dict[str, Any], variables: dict[str, str]
) -> list[Planned]:
    found, people, unknown = audience_people(session, workspace_id, audience)
    resolve = ValueResolver(variables)
    planned = [
        Planned(None, None, {}, RecipientState.SKIPPED.value, f"unknown contact {cid}", None)
        for cid in unknown
    ]
    for cid in found:
        planned.append(_plan_person(people.get(cid), cid, resolve, None, None))
    return planned


def _plan_person(
    person: Person | None,
    contact_id: int,
    resolve: ValueResolver,
    csv: dict[str, str] | None,
    line: int | None,
) -> Planned:
    phone = ("+" + person.wa_id) if person and person.wa_id else None
    if person is None or not person.wa_id:
        return Planned(contact_id, phone, {}, _SKIPPED, "no WhatsApp number", line)
    values, missing = resolve(person, csv)
    if missing:
        return Planned(contact_id, phone, {}, _SKIPPED, missing, line)
    return Planned(contact_id, phone, values, _PENDING, None, line)


def _plan_csv(
    session: Session, workspace_id: int, parsed: CsvResult, variables: dict[str, str]
) -> tuple[list[Planned], list[dict[str, Any]]]:
    report = list(parsed.problems)
    usable = []
    # Missing values are a row's problem, found before any contact is created for it.
    resolve_csv = ValueResolver({k: v for k, v in variables.items() if "{csv." in v.lower()})
    for row in parsed.rows:
        stand_in = Person(0, row.e164.lstrip("+"), row.name or "", {})
        _values, missing = resolve_csv(stand_in, row.columns)
        if missing:
            report.append({"line": row.line, "problem": missing})
        else:
            usable.append(row)
    upsert_csv_contacts(session, workspace_id, usable)
    people = load_people(session, workspace_id, [r.contact_id for r in usable if r.contact_id])
    planned: list[Planned] = []
    seen: dict[int, int] = {}
    resolve = ValueResolver(variables)
    for row in usable:
        if row.contact_id is None:
            report.append({"line": row.line, "problem": "could not save the contact"})
            continue
        if row.contact_id in seen:
            report.append(
                {"line": row.line, "problem": f"same contact as line {seen[row.contact_id]}"}
            )
            continue
        seen[row.contact_id] = row.line
        person = people.get(row.contact_id)
        if person is not None and not person.name and row.name:
            person = Person(person.id, person.wa_id, row.name, person.custom)
        p = _plan_person(person, row.contact_id, resolve, row.columns, row.line)
        if p.state == RecipientState.SKIPPED.value and p.reason and p.reason.startswith("missing"):
            report.append({"line": row.line, "problem": p.reason})
            continue
        planned.append(p)
    report.sort(key=lambda r: int(r.get("line") or 0))
    return planned, report


def _insert_recipients(
    session: Session, broadcast: Broadcast, planned: list[Planned], outcomes: dict[int, Outcome]
) -> None:
    """The recipients' rows, in plan order; those already queued (or skipped) by
    `queue_planned` with its decision, keyed by their position in the plan."""
    ws, bid = broadcast.workspace_id, broadcast.id
    empty = dumps({})

    def rows() -> Iterator[tuple[Any, ...]]:
        # Built as they are sent: on PostgreSQL one COPY streams them while the server,
        # storing the rows before, is the slower side.
        for i, p in enumerate(planned):
            state, reason, message_id = outcomes.get(i) or (p.state, p.reason, None)
            values = dumps(p.values) if p.values else empty
            yield (ws, bid, p.contact_id, p.phone, values, state, reason, p.line, message_id)

    columns = (
        "workspace_id", "broadcast_id", "contact_id", "phone", "values", "state", "reason", "line",
        "message_id",
    )  # fmt: skip
    insert_rows(session, BroadcastRecipient, columns, rows())


# -- controls --------------------------------------------------------------------------


def access_broadcast(session: Session, workspace_id: int, broadcast_id: int) -> Broadcast:
    broadcast = session.scalar(
        select(Broadcast).where(
            Broadcast.id == broadcast_id, Broadcast.workspace_id == workspace_id
        )
    )
    if broadcast is None:
        raise NotFound(f"no broadcast {broadcast_id} in this workspace")
    return broadcast


def list_broadcasts(session: Session, workspace_id: int, limit: int = 100) -> list[Broadcast]:
    return list(
        session.scalars(
            select(Broadcast)
            .where(Broadcast.workspace_id == workspace_id)
            .order_by(Broadcast.id.desc())
            .limit(limit)
        )
    )


def _refuse(broadcast: Broadcast, action: str, allowed: tuple[BroadcastState, ...]) -> None:
    if broadcast.state not in [s.value for s in allowed]:
        raise Conflict(
            f"a {broadcast.state} broadcast cannot be {action}",
            code="broadcast_state",
            details={"state": broadcast.state},
        )


def do_start(session: Session, broadcast: Broadcast, *, limit: int | None = None) -> int:
    """Start a scheduled broadcast now: queue its pending recipients."""
    _refuse(broadcast, "started", (BroadcastState.SCHEDULED,))
    broadcast.state = BroadcastState.SENDING.value
    broadcast.started_at = utcnow()
    queued = queue_pending(session, broadcast, limit=limit)
    publish_progress(session, broadcast)
    return queued


def do_pause(session: Session, broadcast: Broadcast, actor: Any = None) -> None:
    """Hold what is still queued; sends already in flight finish."""
    _refuse(broadcast, "paused", (BroadcastState.SENDING, BroadcastState.SCHEDULED))
    broadcast.state = BroadcastState.PAUSED.value
    session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.broadcast_id == broadcast.id,
            OutboxItem.state == OutboxState.QUEUED.value,
        )
        .values(state=OutboxState.HELD.value)
    )
    _audit(session, broadcast, actor, Action.BROADCAST_PAUSED)
    publish_progress(session, broadcast)


def do_resume(session: Session, broadcast: Broadcast, actor: Any = None) -> None:
    _refuse(broadcast, "resumed", (BroadcastState.PAUSED,))
    broadcast.state = BroadcastState.SENDING.value
    broadcast.started_at = broadcast.started_at or utcnow()
    session.execute(
        update(OutboxItem)
        .where(OutboxItem.broadcast_id == broadcast.id, OutboxItem.state == OutboxState.HELD.value)
        .values(state=OutboxState.QUEUED.value, next_attempt_at=utcnow())
    )
    OUTBOX.wake_after_commit(session)
    queue_pending(session, broadcast)
    _audit(session, broadcast, actor, Action.BROADCAST_RESUMED)
    publish_progress(session, broadcast)


def do_cancel_broadcast(session: Session, broadcast: Broadcast, actor: Any = None) -> None:
    """Nothing more goes out; what Meta already accepted stays sent."""
    _refuse(
        broadcast,
        "cancelled",
        (BroadcastState.SCHEDULED, BroadcastState.SENDING, BroadcastState.PAUSED),
    )
    broadcast.state = BroadcastState.CANCELLED.value
    broadcast.finished_at = utcnow()
    waiting = [OutboxState.QUEUED.value, OutboxState.HELD.value]
    message_ids = select(OutboxItem.message_id).where(
        OutboxItem.broadcast_id == broadcast.id, OutboxItem.state.in_(waiting)
    )
    session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.wamid.is_(None))
        .values(status=MessageStatus.CANCELLED.value, status_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboxItem)
        .where(OutboxItem.broadcast_id == broadcast.id, OutboxItem.state.in_(waiting))
        .values(state=OutboxState.CANCELLED.value)
    )
    session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.state == RecipientState.PENDING.value,
        )
        .values(state=RecipientState.CANCELLED.value, reason="the broadcast was cancelled")
    )
    _audit(session, broadcast, actor, Action.BROADCAST_CANCELLED)
    publish_progress(session, broadcast)


def do_retry_failed(session: Session, broadcast: Broadcast, actor: Any = None) -> int:
    """Send again to every recipient whose message failed (a new message each; the
    failed one stays in the conversation). Opt-outs found meanwhile are skipped."""
    _refuse(
        broadcast,
        "retried",
        (BroadcastState.SENDING, BroadcastState.PAUSED, BroadcastState.COMPLETED),
    )
    failed = list(
        session.scalars(
            select(BroadcastRecipient.id)
            .join(Message, Message.id == BroadcastRecipient.message_id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast.id,
                BroadcastRecipient.state == RecipientState.QUEUED.value,
                Message.status == MessageStatus.FAILED.value,
            )
        )
    )
    if not failed:
        raise Conflict("no failed recipients to retry", code="nothing_to_retry")
    for start in range(0, len(failed), CHUNK):
        session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.id.in_(failed[start : start + CHUNK]))
            .values(state=RecipientState.PENDING.value, message_id=None, reason=None)
        )
    if broadcast.state == BroadcastState.COMPLETED.value:
        broadcast.state = BroadcastState.SENDING.value
        broadcast.finished_at = None
    queue_pending(session, broadcast)
    _audit(session, broadcast, actor, Action.BROADCAST_RETRIED, {"recipients": len(failed)})
    return len(failed)


def _audit(
    session: Session,
    broadcast: Broadcast,
    actor: Any,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    record(
        session,
        workspace_id=broadcast.workspace_id,
        actor=actor,
        action=action,
        target=f"broadcast {broadcast.id}",
        details=details,
    )


def do_finish_if_done(session: Session, broadcast: Broadcast) -> bool:
    """A sending broadcast with nobody pending and nothing left in the outbox is done."""
    if broadcast.state != BroadcastState.SENDING.value:
        return False
    pending = session.scalar(
        select(BroadcastRecipient.id)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.state == RecipientState.PENDING.value,
        )
        .limit(1)
    )
    if pending is not None:
        return False
    open_item = session.scalar(
        select(OutboxItem.id)
        .where(
            OutboxItem.broadcast_id == broadcast.id,
            OutboxItem.state.in_(
                [OutboxState.QUEUED.value, OutboxState.SENDING.value, OutboxState.HELD.value]
            ),
        )
        .limit(1)
    )
    if open_item is not None:
        return False
    broadcast.state = BroadcastState.COMPLETED.value
    broadcast.finished_at = utcnow()
    publish_progress(session, broadcast)
    return True


# -- what people see -------------------------------------------------------------------


def shown_state_sql() -> Any:
    r, m = BroadcastRecipient, Message
    return case(
        (r.replied_at.is_not(None), "replied"),
        (r.state == RecipientState.SKIPPED.value, "skipped"),
        (r.state == RecipientState.CANCELLED.value, "cancelled"),
        (r.state == RecipientState.PENDING.value, "queued"),
        (m.status == MessageStatus.SENDING.value, "sending"),
        (m.status == MessageStatus.SENT.value, "sent"),
        (m.status == MessageStatus.DELIVERED.value, "delivered"),
        (m.status.in_([MessageStatus.READ.value, MessageStatus.PLAYED.value]), "read"),
        (m.status == MessageStatus.FAILED.value, "failed"),
        (m.status == MessageStatus.CANCELLED.value, "cancelled"),
        else_="queued",
    )


def progress(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    """Counts per shown state, and the share of recipients already settled."""
    shown = shown_state_sql()
    counts = dict.fromkeys(SHOWN_STATES, 0)
    rows = session.execute(
        select(shown, func.count())
        .select_from(BroadcastRecipient)
        .outerjoin(Message, Message.id == BroadcastRecipient.message_id)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.workspace_id == broadcast.workspace_id,
        )
        .group_by(shown)
    ).tuples()
    for state, n in rows:
        counts[str(state)] = int(n)
    total = sum(counts.values())
    left = counts["queued"] + counts["sending"]
    done = total - left
    return {
        "total": total,
        "counts": counts,
        "done": done,
        "percent": round(100 * done / total, 1) if total else 100.0,
        "state": broadcast.state,
        "waiting_reason": broadcast.waiting_reason,
    }


@dataclass(frozen=True)
class RecipientRow:
    id: int
    contact_id: int | None
    phone: str | None
    state: str
    reason: str | None
    line: int | None
    message_id: int | None
    wamid: str | None
    replied_at: dt.datetime | None
    status_at: dt.datetime | None


def _reason(reason: str | None, error: dict[str, Any] | None) -> str | None:
    if reason:
        return reason
    if not error:
        return None
    code = error.get("code")
    text = error.get("reason") or error.get("message") or error.get("title") or ""
    details = (error.get("error_data") or {}).get("details") if isinstance(error, dict) else None
    text = text or details or ""
    return f"{code}: {text}" if code else str(text) or None


def recipient_rows(
    session: Session,
    broadcast: Broadcast,
    *,
    state: str | None = None,
    offset: int = 0,
    limit: int | None = 100,
) -> Iterator[RecipientRow]:
    shown = shown_state_sql()
    query = (
        select(
            BroadcastRecipient.id,
            BroadcastRecipient.contact_id,
            BroadcastRecipient.phone,
            shown,
            BroadcastRecipient.reason,
            BroadcastRecipient.line,
            BroadcastRecipient.message_id,
            Message.wamid,
            BroadcastRecipient.replied_at,
            Message.status_at,
            Message.error,
        )
        .outerjoin(Message, Message.id == BroadcastRecipient.message_id)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.workspace_id == broadcast.workspace_id,
        )
        .order_by(BroadcastRecipient.id)
    )
    if state:
        if state not in SHOWN_STATES:
            raise InvalidInput(
                f"state is one of {', '.join(SHOWN_STATES)}", details=[{"field": "state"}]
            )
        query = query.where(shown == state)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    for row in session.execute(query.execution_options(yield_per=2000)).tuples():
        rid, cid, phone, shown_state, reason, line, mid, wamid, replied, at, error = row
        yield RecipientRow(
            rid, cid, phone, str(shown_state), _reason(reason, error), line, mid, wamid, replied, at
        )


# -- replies ---------------------------------------------------------------------------


def on_broadcast_reply(session: Session, recipient: BroadcastRecipient) -> None:
    """A recipient wrote back after the broadcast: the hook automation subscribes to
    (`BroadcastReplied`, delivered after commit)."""
    publish(
        session,
        BroadcastReplied(
            workspace_id=recipient.workspace_id,
            broadcast_id=recipient.broadcast_id,
            recipient_id=recipient.id,
            contact_id=recipient.contact_id,
            message_id=recipient.message_id,
            replied_at=recipient.replied_at,
        ),
    )


def do_note_reply(session: Session, workspace_id: int, contact_id: int, at: dt.datetime) -> int:
    """Mark as replied the contact's recent broadcast messages sent before `at`."""
    candidates = session.scalars(
        select(BroadcastRecipient)
        .join(Message, Message.id == BroadcastRecipient.message_id)
        .where(
            BroadcastRecipient.workspace_id == workspace_id,
            BroadcastRecipient.contact_id == contact_id,
            BroadcastRecipient.replied_at.is_(None),
            BroadcastRecipient.state == RecipientState.QUEUED.value,
            Message.wamid.is_not(None),
            # Meta stamps the reply in whole seconds, Puente its own send to the
            # microsecond: a reply in the same second as the send is stamped before it.
            Message.timestamp < at + dt.timedelta(seconds=1),
            Message.timestamp >= at - REPLY_WINDOW,
        )
    ).all()
    for recipient in candidates:
        recipient.replied_at = at
        on_broadcast_reply(session, recipient)
    if candidates:
        session.flush()
    return len(candidates)


EXPORT_HEADER = (
    "recipient_id",
    "contact_id",
    "phone",
    "state",
    "reason",
    "csv_line",
    "message_id",
    "wamid",
    "status_at",
    "replied_at",
)


def export_csv(session: Session, broadcast: Broadcast) -> str:
    """Every recipient with its state and reason, as CSV (the results export)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_HEADER)
    for r in recipient_rows(session, broadcast, limit=None):
        writer.writerow(
            [
                r.id,
                r.contact_id or "",
                r.phone or "",
                r.state,
                r.reason or "",
                r.line or "",
                r.message_id or "",
                r.wamid or "",
                r.status_at.isoformat() if r.status_at else "",
                r.replied_at.isoformat() if r.replied_at else "",
            ]
        )
    return out.getvalue()
