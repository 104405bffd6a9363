"""Daily rollups from the raw facts: the worker adds new facts as they commit, and
`rebuild` sums them again from scratch. Both go through `metrics_of`, so they cannot
disagree.

A rollup row is keyed by workspace, metric, local day (the workspace's time zone) and
the dimensions; adding to it is one upsert (`count = count + n`). The upserts of a batch go
in the key's order, so two workers adding to the same rows wait for each other instead of
deadlocking."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.hours import BusinessHours, hours_of, open_seconds_between
from puente.channels.models import Channel
from puente.reports.buckets import bin_of
from puente.reports.facts import Kind
from puente.reports.models import ReportFact, ReportRollup

# (metric, day, channel, team, agent, source, label, bucket)
Key = tuple[str, dt.date, int, int, int, str, str, int]

# Durations kept twice: by the wall clock and within the number's business hours.
_TIMED = {
    Kind.FIRST_RESPONSE.value: "first_response",
    Kind.RESPONSE.value: "response_time",
    Kind.RESOLVED.value: "resolution_time",
    Kind.ASSIGNED.value: "queue_wait",
}


@dataclass
class Context:
    """What turning facts into rollups needs to know of the workspace and its numbers."""

    zones: dict[int, zoneinfo.ZoneInfo]
    hours: dict[int, BusinessHours | None]

    @classmethod
    def load(cls, session: Session, workspace_ids: set[int]) -> Context:
        zones = {}
        for ws_id, tz in session.execute(
            select(Workspace.id, Workspace.timezone).where(Workspace.id.in_(workspace_ids))
        ):
            try:
                zones[ws_id] = zoneinfo.ZoneInfo(tz or "UTC")
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zones[ws_id] = zoneinfo.ZoneInfo("UTC")
        hours = {
            channel.id: hours_of(channel)
            for channel in session.scalars(
                select(Channel).where(Channel.workspace_id.in_(workspace_ids))
            )
        }
        return cls(zones=zones, hours=hours)


def metrics_of(fact: ReportFact, context: Context) -> Iterator[tuple[Key, int, float]]:
    """The rollup rows `fact` adds to, with the count and total it adds."""
    zone = context.zones.get(fact.workspace_id) or zoneinfo.ZoneInfo("UTC")
    local = fact.at.astimezone(zone)
    day = local.date()
    dims = (fact.channel_id, fact.team_id, fact.agent_id, fact.source)
    kind = fact.kind

    def key(metric: str, label: str = "", bucket: int = 0, source: str | None = None) -> Key:
        channel, team, agent, src = dims
        return (metric, day, channel, team, agent, src if source is None else source, label, bucket)

    if kind == Kind.MESSAGE.value:
        yield key("messages", fact.label), fact.count, 0.0
        return
    if kind == Kind.OPENED.value:
        yield key("conversations", fact.label), fact.count, 0.0
        hour_of_week = local.weekday() * 24 + local.hour
        yield key("arrivals", bucket=hour_of_week, source=""), fact.count, 0.0
        return
    if kind in _TIMED:
        metric = _TIMED[kind]
        if kind == Kind.RESOLVED.value:
            yield key("resolved"), fact.count, 0.0
        if kind == Kind.ASSIGNED.value:
            yield key("assignments", fact.label), fact.count, 0.0
        if fact.seconds is None:
            return
        seconds = float(fact.seconds)
        yield key(metric, bucket=bin_of(seconds)), 1, seconds
        hours = context.hours.get(fact.channel_id)
        if hours is None:
            within = seconds
        else:
            start = fact.at - dt.timedelta(seconds=seconds)
            within = open_seconds_between(hours, start, fact.at)
        yield key(metric + "_bh", bucket=bin_of(within)), 1, within
        return
    if kind == Kind.CSAT.value:
        score = int(fact.label or 0)
        yield key("csat", bucket=score), fact.count, float(score * fact.count)
        return
    if kind == Kind.PRESENCE.value:
        yield key("presence", fact.label), fact.count, float(fact.seconds or 0.0)
        return
    # handoff, contact, consent, broadcast, pricing: counted by their source and label.
    yield key(kind, fact.label), fact.count, 0.0


def add_up(facts: list[ReportFact], context: Context) -> dict[int, dict[Key, list[float]]]:
    """The facts' rollup deltas, by workspace."""
    out: dict[int, dict[Key, list[float]]] = defaultdict(dict)
    for fact in facts:
        sums = out[fact.workspace_id]
        for k, count, total in metrics_of(fact, context):
            entry = sums.get(k)
            if entry is None:
                sums[k] = [count, total]
            else:
                entry[0] += count
                entry[1] += total
    return out


_KEY_COLUMNS = (
    "workspace_id",
    "metric",
    "day",
    "channel_id",
    "team_id",
    "agent_id",
    "source",
    "label",
    "bucket",
)


def upsert(session: Session, deltas: dict[int, dict[Key, list[float]]]) -> None:
    """Add the deltas to the rollup rows, creating the missing ones."""
    dialect = session.get_bind().dialect.name
    maker: Callable[..., Any] = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "workspace_id": ws_id,
            "metric": k[0],
            "day": k[1],
            "channel_id": k[2],
            "team_id": k[3],
            "agent_id": k[4],
            "source": k[5],
            "label": k[6],
            "bucket": k[7],
            "count": int(v[0]),
            "total": float(v[1]),
        }
        for ws_id in sorted(deltas)
        for k, v in sorted(deltas[ws_id].items())
    ]
    for start in range(0, len(rows), 1000):
        stmt = maker(ReportRollup).values(rows[start : start + 1000])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(_KEY_COLUMNS),
            set_={
                "count": ReportRollup.count + stmt.excluded.count,
                "total": ReportRollup.total + stmt.excluded.total,
            },
        )
        session.execute(stmt)


def roll_up(session: Session, facts: list[ReportFact]) -> None:
    """Add claimed facts to the rollups and mark them done, in the caller's transaction."""
    if not facts:
        return
    context = Context.load(session, {f.workspace_id for f in facts})
    upsert(session, add_up(facts, context))
    ids = [f.id for f in facts]
    for start in range(0, len(ids), 1000):
        session.execute(
            update(ReportFact)
            .where(ReportFact.id.in_(ids[start : start + 1000]))
            .values(rolled_up=True)
            .execution_options(synchronize_session=False)
        )


def local_midnight(session: Session, workspace_id: int, day: dt.date) -> dt.datetime:
    tz = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


CHUNK = 20_000


def rebuild(
    session: Session,
    workspace_id: int,
    since: dt.date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Sum the workspace's rollups again from its facts (from the local day `since`, or
    all of them), in the caller's transaction; returns how many facts were read."""
    where = [ReportFact.workspace_id == workspace_id]
    if since is not None:
        where.append(ReportFact.at >= local_midnight(session, workspace_id, since))
    # First take the facts from the worker (waiting for any batch it holds to commit),
    # then forget the rollups they went into, then add them up again.
    session.execute(
        update(ReportFact)
        .where(*where, ReportFact.rolled_up.is_(False))
        .values(rolled_up=True)
        .execution_options(synchronize_session=False)
    )
    gone = delete(ReportRollup).where(ReportRollup.workspace_id == workspace_id)
    if since is not None:
        gone = gone.where(ReportRollup.day >= since)
    session.execute(gone.execution_options(synchronize_session=False))
    total = session.scalar(select(func.count()).select_from(ReportFact).where(*where)) or 0
    context = Context.load(session, {workspace_id})
    done = 0
    last_id = 0
    while True:
        facts = list(
            session.scalars(
                select(ReportFact)
                .where(*where, ReportFact.id > last_id)
                .order_by(ReportFact.id)
                .limit(CHUNK)
            )
        )
        if not facts:
            break
        last_id = facts[-1].id
        upsert(session, add_up(facts, context))
        session.expunge_all()
        done += len(facts)
        if progress is not None:
            progress(done, total)
    return done
