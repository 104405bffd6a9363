"""Recording the facts reports count, inside the transaction of the change that caused
them: a fact commits with its change or not at all, so a crash can neither lose one nor
count one twice, and a message delivered twice (stored once) is counted once.

Facts are buffered on the session and written in one insert just before it commits;
identical ones (same kind, dimensions and quarter hour, without a duration) become one row
with their count, so 100 customer messages of an ingest batch cost one row, not 100. A
savepoint that rolls back takes its own facts with it.

The conversation helpers (`opened`, `answered`, `resolved`, `assigned`) also keep the
conversation's current cycle (`opened_at`, `first_response_at`), which is what makes a
first response "first". Imported history never reaches them: it only counts as messages.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import event, insert
from sqlalchemy.orm import Session, SessionTransaction

from puente.reports.models import ReportFact


class Kind(enum.StrEnum):
    MESSAGE = "message"  # source: who sent it; label: its type
    OPENED = "opened"  # label: new | reopened; source: who started it
    RESOLVED = "resolved"  # seconds: since it opened
    FIRST_RESPONSE = "first_response"  # seconds: since it opened; source: who answered
    RESPONSE = "response"  # seconds: since the customer began waiting
    ASSIGNED = "assigned"  # label: assigned | reassigned | unassigned; seconds: queue wait
    HANDOFF = "handoff"  # the bot handed the conversation to a person
    CONTACT = "contact"  # a contact created; source: where from
    CONSENT = "consent"  # label: opt_in | opt_out
    BROADCAST = "broadcast"  # source: template name; label: sent | delivered | read | ...
    PRICING = "pricing"  # label: billable | free; source: category; channel: the number
    CSAT = "csat"  # label: the score, 1 to 5
    PRESENCE = "presence"  # label: the status that ended; seconds: how long it lasted


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str
    workspace_id: int
    at: dt.datetime
    channel_id: int = 0
    conversation_id: int = 0
    team_id: int = 0
    agent_id: int = 0
    source: str = ""
    label: str = ""
    count: int = 1
    seconds: float | None = None


_PENDING = "puente.reports.pending"  # session.info: [(transaction, Fact), ...]


def record(session: Session, fact: Fact) -> None:
    """Count `fact` when the session's transaction commits."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, fact))


def _quarter(at: dt.datetime) -> dt.datetime:
    # Quarter hours: every time zone's offset is a multiple of 15 minutes, so a day or an
    # hour of the day in any of them still comes out right.
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def folded(facts: list[Fact]) -> list[Fact]:
    """Identical countable facts as one, with their counts summed."""
    out: list[Fact] = []
    merged: dict[tuple[Any, ...], int] = {}
    for fact in facts:
        if fact.seconds is not None:
            out.append(fact)
            continue
        fact = replace(fact, at=_quarter(fact.at), conversation_id=0)
        key = (
            fact.kind,
            fact.workspace_id,
            fact.at,
            fact.channel_id,
            fact.team_id,
            fact.agent_id,
            fact.source,
            fact.label,
        )
        index = merged.get(key)
        if index is None:
            merged[key] = len(out)
            out.append(fact)
        else:
            out[index] = replace(out[index], count=out[index].count + fact.count)
    return out


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the outer transaction writes them
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    rows = [
        {
            "workspace_id": f.workspace_id,
            "kind": f.kind,
            "at": f.at,
            "channel_id": f.channel_id,
            "conversation_id": f.conversation_id,
            "team_id": f.team_id,
            "agent_id": f.agent_id,
            "source": f.source[:24],
            "label": f.label[:64],
            "count": f.count,
            "seconds": f.seconds,
            "rolled_up": False,
        }
        for f in folded([fact for _, fact in pending])
    ]
    session.execute(insert(ReportFact), rows)
    # Not woken now: the rollup worker gathers facts for a few seconds (reports.worker).


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if previous.parent is None:
        session.info.pop(_PENDING, None)
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [(t, f) for t, f in pending if not inside(t)]


# -- the conversation's cycle ----------------------------------------------------------------


class Cycle(Protocol):
    """What the helpers read and keep of a conversation (conversations.models)."""

    id: int
    workspace_id: int
    channel_id: int
    assignee_id: int | None
    team_id: int | None
    waiting_since: dt.datetime | None
    opened_at: dt.datetime | None
    first_response_at: dt.datetime | None


def _seconds(start: dt.datetime, end: dt.datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _fact(conversation: Cycle, kind: Kind, at: dt.datetime, **dims: Any) -> Fact:
    dims.setdefault("agent_id", conversation.assignee_id or 0)
    return Fact(
        kind=kind.value,
        workspace_id=conversation.workspace_id,
        at=at,
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        team_id=conversation.team_id or 0,
        **dims,
    )


def opened(
    session: Session, conversation: Cycle, at: dt.datetime, *, reopened: bool, source: str
) -> None:
    """The conversation began (a first message) or reopened: a new cycle starts."""
    conversation.opened_at = at
    conversation.first_response_at = None
    label = "reopened" if reopened else "new"
    record(session, _fact(conversation, Kind.OPENED, at, label=label, source=source))


def answered(
    session: Session, conversation: Cycle, at: dt.datetime, *, source: str, agent_id: int | None
) -> None:
    """The business answered (a person, the owner's phone, the bot): call it before the
    customer's waiting time is cleared. Counts a response time when the customer was
    waiting, and the cycle's first response the first time."""
    who = {"source": source, "agent_id": agent_id or 0}
    waiting = conversation.waiting_since
    if waiting is not None and at >= waiting:
        seconds = _seconds(waiting, at)
        record(session, _fact(conversation, Kind.RESPONSE, at, seconds=seconds, **who))
    start = conversation.opened_at
    if start is not None and conversation.first_response_at is None and at >= start:
        conversation.first_response_at = at
        seconds = _seconds(start, at)
        record(session, _fact(conversation, Kind.FIRST_RESPONSE, at, seconds=seconds, **who))


def resolved(session: Session, conversation: Cycle, at: dt.datetime) -> None:
    """The conversation was closed: the cycle's resolution time, by its assignee."""
    start = conversation.opened_at
    seconds = _seconds(start, at) if start is not None and at >= start else None
    record(session, _fact(conversation, Kind.RESOLVED, at, seconds=seconds))
    conversation.opened_at = None


def assigned(
    session: Session, conversation: Cycle, at: dt.datetime, *, previous_assignee_id: int | None
) -> None:
    """The assignee changed (call after the change): how long the customer had waited."""
    if conversation.assignee_id is None:
        label = "unassigned"
    else:
        label = "reassigned" if previous_assignee_id else "assigned"
    waiting = conversation.waiting_since
    seconds = _seconds(waiting, at) if waiting is not None and label != "unassigned" else None
    record(session, _fact(conversation, Kind.ASSIGNED, at, label=label, seconds=seconds))
