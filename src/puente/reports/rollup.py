"""Daily rollups from the raw facts: the worker adds new facts as they commit, and
`rebuild` sums them again from scratch. Both go through `metrics_of`, so they cannot
disagree.

A rollup row is keyed by workspace, metric, local day (the workspace's time zone) and
the dimensions; adding to it is one upsert (`count = count + n`). The upserts of a batch go
in the key's order, so two workers adding to the same rows wait for each other instead of
deadlocking.

Each figure is kept at several grains, so that a report reads few rows whatever it is
cut by (`grains_of`): the whole workspace (`metric~`), one number, team or agent named in
the metric (`metric@c:7`, `@t:2`, `@a:38`: an index on the metric finds exactly its rows),
per agent, team or number for the tables that list them (`metric@agents`, `@teams`,
`@channels`), and every dimension at once for filters combined (`metric`). Durations
are histograms (reports.buckets) at the first four grains, and sums without bins at the
others (`metric#`, `metric#@agents`, ...): filters combined get their averages only.
Without grains, 90 days of 50 agents on 3 numbers came to a row per response."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import String, delete, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.hours import BusinessHours, hours_of, open_seconds_between
from puente.channels.models import Channel
from puente.db.bulk_rows import insert_rows
from puente.reports.buckets import bin_of
from puente.reports.facts import Kind
from puente.reports.models import ReportFact, ReportRollup

# (metric, day, channel, team, agent, source, label, bucket)
Key = tuple[str, dt.date, int, int, int, str, str, int]

# Durations kept twice: by the wall clock and within the number's business hours.
TIMED = {
    Kind.FIRST_RESPONSE.value: "first_response",
    Kind.RESPONSE.value: "response_time",
    Kind.RESOLVED.value: "resolution_time",
    Kind.ASSIGNED.value: "queue_wait",
}
SUMS = "#"  # a duration's count and total, without bins
# The grains every figure is added to, besides the one with every dimension: (suffix,
# which of channel, team, agent it keeps). Keyed grains name the value in the metric.
GROUPED = (("@channels", 0), ("@teams", 1), ("@agents", 2))
KEYED = (("@c:", 0), ("@t:", 1), ("@a:", 2))


def grains_of(
    metric: str, day: dt.date, dims: tuple[int, int, int], source: str, label: str, bucket: int
) -> Iterator[Key]:
    """Every rollup key a figure of `metric` with these dimensions adds to."""
    channel, team, agent = dims
    yield (metric, day, channel, team, agent, source, label, bucket)
    yield (metric + "~", day, 0, 0, 0, source, label, bucket)
    for suffix, i in KEYED:
        if dims[i]:
            yield (metric + suffix + str(dims[i]), day, 0, 0, 0, source, label, bucket)
    for suffix, i in GROUPED:
        kept = [0, 0, 0]
        kept[i] = dims[i]
        yield (metric + suffix, day, kept[0], kept[1], kept[2], source, label, bucket)
    # Per agent within one number or team: the leaderboard filtered by either.
    for suffix, i in KEYED[:2]:
        if dims[i]:
            name = metric + suffix + str(dims[i]) + "@agents"
            yield (name, day, 0, 0, agent, source, label, bucket)


WEEKLY = "/w"  # a histogram's bins per local week (Monday's date): see queries.durations


def histogram_grains_of(
    metric: str, day: dt.date, dims: tuple[int, int, int], source: str, bucket: int
) -> Iterator[Key]:
    """A duration's bins: the whole workspace and each single filter, per day and per
    week (90 days of bins read per day are thousands of rows; per week, a seventh)."""
    yield (metric + "~", day, 0, 0, 0, source, "", bucket)
    for suffix, i in KEYED:
        if dims[i]:
            yield (metric + suffix + str(dims[i]), day, 0, 0, 0, source, "", bucket)


_HISTOGRAMS = tuple(TIMED.values())


def add_weeks(deltas: Deltas) -> Deltas:
    """Add each histogram's daily deltas to its weekly rows too (summed from the daily
    sums, not fact by fact: a rebuild's million responses make a few thousand of them)."""
    histogram: dict[str, bool] = {}  # by metric name: a few thousand names, many keys each
    for sums in deltas.values():
        weekly: dict[Key, list[float]] = {}
        for k, (count, total) in sums.items():
            name = k[0]
            known = histogram.get(name)
            if known is None:
                known = histogram[name] = (
                    "#" not in name
                    and name.startswith(_HISTOGRAMS)
                    and not name.endswith(WEEKLY)
                    and (name.endswith("~") or "@" in name)
                )
            if not known:
                continue
            week = (name + WEEKLY, k[1] - dt.timedelta(days=k[1].weekday()), *k[2:])
            entry = weekly.get(week)
            if entry is None:
                weekly[week] = [count, total]
            else:
                entry[0] += count
                entry[1] += total
        for k, v in weekly.items():
            entry = sums.get(k)
            if entry is None:
                sums[k] = v
            else:
                entry[0] += v[0]
                entry[1] += v[1]
    return deltas


class FactRow(NamedTuple):
    """What a fact brings to the rollups (read as plain rows: a rebuild reads millions)."""

    workspace_id: int
    kind: str
    at: dt.datetime
    channel_id: int
    team_id: int
    agent_id: int
    source: str
    label: str
    amount: int  # the fact's count (`count` is a tuple's method)
    seconds: float | None


FACT_COLUMNS = (
    ReportFact.workspace_id,
    ReportFact.kind,
    ReportFact.at,
    ReportFact.channel_id,
    ReportFact.team_id,
    ReportFact.agent_id,
    ReportFact.source,
    ReportFact.label,
    ReportFact.count,
    ReportFact.seconds,
)
_UTC = zoneinfo.ZoneInfo("UTC")


@dataclass
class Context:
    """What turning facts into rollups needs to know of the workspaces and their numbers,
    and what it worked out already (a day and hour per quarter hour)."""

    zones: dict[int, zoneinfo.ZoneInfo]
    hours: dict[int, BusinessHours | None]
    _local: dict[tuple[int, int], tuple[dt.date, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, workspace_ids: set[int]) -> Context:
        zones = {}
        for ws_id, tz in session.execute(
            select(Workspace.id, Workspace.timezone).where(Workspace.id.in_(workspace_ids))
        ):
            try:
                zones[ws_id] = zoneinfo.ZoneInfo(tz or "UTC")
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zones[ws_id] = _UTC
        hours = {
            channel.id: hours_of(channel)
            for channel in session.scalars(
                select(Channel).where(Channel.workspace_id.in_(workspace_ids))
            )
        }
        return cls(zones=zones, hours=hours)

    def local(self, workspace_id: int, at: dt.datetime) -> tuple[dt.date, int]:
        """The local day and hour of the week (0: Monday 00:00) of `at`. Every zone's
        offset is a multiple of 15 minutes, so one answer serves a quarter hour."""
        quarter = int(at.timestamp()) // 900
        key = (workspace_id, quarter)
        found = self._local.get(key)
        if found is None:
            local = at.astimezone(self.zones.get(workspace_id) or _UTC)
            found = (local.date(), local.weekday() * 24 + local.hour)
            self._local[key] = found
        return found


def metrics_of(
    fact: FactRow | tuple[Any, ...], context: Context
) -> Iterator[tuple[Key, int, float]]:
    """The rollup rows `fact` adds to, with the count and total it adds."""
    workspace_id, kind, at, channel, team, agent, source, label, count, fact_seconds = fact
    day, hour_of_week = context.local(workspace_id, at)
    dims = (channel, team, agent)

    def counted(
        metric: str, label: str = "", bucket: int = 0, total: float = 0.0
    ) -> Iterator[tuple[Key, int, float]]:
        for key in grains_of(metric, day, dims, source, label, bucket):
            yield key, count, total

    if kind == Kind.MESSAGE.value:
        yield from counted("messages", label)
        return
    if kind == Kind.OPENED.value:
        yield from counted("conversations", label)
        for key in grains_of("arrivals", day, dims, "", "", hour_of_week):
            yield key, count, 0.0
        return
    metric = TIMED.get(kind)
    if metric is not None:
        if kind == Kind.RESOLVED.value:
            yield from counted("resolved")
        elif kind == Kind.ASSIGNED.value:
            yield from counted("assignments", label)
        if fact_seconds is None:
            return
        seconds = float(fact_seconds)
        hours = context.hours.get(channel)
        if hours is None:
            within = seconds
        else:
            within = open_seconds_between(hours, at - dt.timedelta(seconds=seconds), at)
        for name, value in ((metric, seconds), (metric + "_bh", within)):
            for key in histogram_grains_of(name, day, dims, source, bin_of(value)):
                yield key, 1, value
        # Averages per person, team or number read the wall clock's sums.
        for key in grains_of(metric + SUMS, day, dims, source, "", 0):
            yield key, 1, seconds
        return
    if kind == Kind.CSAT.value:
        score = int(label or 0)
        for key in grains_of("csat", day, dims, "", "", score):
            yield key, count, float(score * count)
        return
    if kind == Kind.PRESENCE.value:
        yield from counted("presence", label, total=float(fact_seconds or 0.0) * count)
        return
    # handoff, contact, consent, broadcast, pricing: counted by their source and label.
    yield from counted(kind, label)


Deltas = dict[int, dict[Key, list[float]]]


def add_up(
    facts: Sequence[FactRow | tuple[Any, ...]], context: Context, into: Deltas | None = None
) -> Deltas:
    """The facts' rollup deltas, by workspace. Facts without a duration are first summed
    per local day (and hour, for arrivals) and dimensions, then spread over their grains
    once: a million messages make a few thousand such sums, not eight million updates."""
    out: Deltas = into if into is not None else defaultdict(dict)

    def add(fact: FactRow | tuple[Any, ...]) -> None:
        sums = out[fact[0]]
        for k, count, total in metrics_of(fact, context):
            entry = sums.get(k)
            if entry is None:
                sums[k] = [count, total]
            else:
                entry[0] += count
                entry[1] += total

    opened = Kind.OPENED.value
    folded: dict[tuple[Any, ...], list[Any]] = {}
    for fact in facts:
        if fact[9] is not None:
            add(fact)
            continue
        day, hour_of_week = context.local(fact[0], fact[2])
        key = (fact[0], fact[1], day, hour_of_week if fact[1] == opened else -1, *fact[3:8])
        entry = folded.get(key)
        if entry is None:
            folded[key] = [fact, fact[8]]
        else:
            entry[1] += fact[8]
    for fact, count in folded.values():
        add((*fact[:8], count, None))
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


def _rows(deltas: Deltas) -> list[dict[str, Any]]:
    return [
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


def upsert(session: Session, deltas: Deltas) -> None:
    """Add the deltas to the rollup rows, creating the missing ones: one statement run
    over all the rows (compiled once), in the key's order."""
    rows = _rows(deltas)
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    maker: Callable[..., Any] = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = maker(ReportRollup)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY_COLUMNS),
        set_={
            "count": ReportRollup.count + stmt.excluded.count,
            "total": ReportRollup.total + stmt.excluded.total,
        },
    )
    session.execute(stmt, rows)


_ROW_COLUMNS = (*_KEY_COLUMNS, "count", "total")


def insert_rollups(session: Session, deltas: Deltas) -> None:
    """Rows known to be new (a rebuild deleted their days first), written by the driver
    (executemany on SQLite, COPY on PostgreSQL): a rebuild writes hundreds of thousands."""
    rows = (
        (ws_id, k[0], k[1].isoformat(), k[2], k[3], k[4], k[5], k[6], k[7], int(v[0]), float(v[1]))
        for ws_id, sums in deltas.items()
        for k, v in sums.items()
    )
    insert_rows(session, ReportRollup, _ROW_COLUMNS, rows)


def roll_up(session: Session, facts: Sequence[ReportFact]) -> None:
    """Add claimed facts to the rollups and mark them done, in the caller's transaction."""
    if not facts:
        return
    context = Context.load(session, {f.workspace_id for f in facts})
    rows = [FactRow(*(getattr(f, c.key) for c in FACT_COLUMNS)) for f in facts]
    upsert(session, add_weeks(add_up(rows, context)))
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


CHUNK = 50_000
# The columns as the driver gives them: converting each timestamp through the column's
# type (naive text on SQLite) cost a third of a rebuild's reading.
_RAW_COLUMNS = (*FACT_COLUMNS[:2], type_coerce(ReportFact.at, String), *FACT_COLUMNS[3:])


def _fact_row(row: Any) -> tuple[Any, ...]:
    """A FactRow's fields as a plain tuple (building named ones cost a rebuild 7 %)."""
    at = row[3]
    if not isinstance(at, dt.datetime):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return (row[1], row[2], at, *row[4:])


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
    deltas: Deltas = defaultdict(dict)
    done = 0
    last_id = 0
    while True:
        chunk = (
            session.connection()
            .execute(
                select(ReportFact.id, *_RAW_COLUMNS)
                .where(*where, ReportFact.id > last_id)
                .order_by(ReportFact.id)
                .limit(CHUNK)
            )
            .all()
        )
        if not chunk:
            break
        last_id = chunk[-1][0]
        add_up([_fact_row(row) for row in chunk], context, deltas)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    insert_rollups(session, add_weeks(deltas))
    return done
