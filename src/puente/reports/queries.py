"""What each report shows, read from the daily rollups (and, for "now" figures, from the
live tables). Every report returns the same shape, a `Report`: a few headline figures, one
chart and its tables, so that the web pages, the CSV export and the API render any report
the same way. Column and series names are keys (`Column.key`) the delivery layers
translate; values are plain numbers, durations in seconds.

A report never reads a row per message or conversation: the rollups hold per-day sums and
duration histograms (reports.buckets), so a 90-day range reads a few thousand rows."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Team, User
from puente.channels.models import Channel
from puente.reports.buckets import percentile
from puente.reports.models import CsatSurvey, ReportRollup
from puente.reports.rollup import WEEKLY

BUSINESS_APP = "business_app"  # the owner's phone: a row of its own wherever people are


@dataclass(frozen=True)
class Filters:
    """A report's question: the workspace, the local days (inclusive, the workspace's time
    zone) and the optional filters. `channel_ids` None: every number."""

    workspace_id: int
    start: dt.date
    end: dt.date
    channel_ids: tuple[int, ...] | None = None
    team_id: int | None = None
    agent_id: int | None = None
    source: str | None = None

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]


@dataclass(frozen=True)
class Column:
    key: str  # translated by the page; also the CSV header
    kind: str = "number"  # number | seconds | text | percent | money | date


@dataclass
class Table:
    key: str
    columns: list[Column]
    rows: list[list[Any]]


@dataclass
class Series:
    key: str
    values: Sequence[float | None]


@dataclass
class Chart:
    kind: str  # line | bar | stacked | doughnut
    labels: list[str]
    series: list[Series]
    unit: str = "number"  # number | seconds | money


@dataclass
class Figure:
    key: str
    value: float | None
    kind: str = "number"


@dataclass
class Report:
    key: str
    figures: list[Figure]
    chart: Chart
    tables: list[Table] = field(default_factory=list)


# -- reading the rollups -------------------------------------------------------------------

Dim = str  # a ReportRollup column name: day, channel_id, team_id, agent_id, source, label, bucket


_GROUPED = {"channel_id": "@channels", "team_id": "@teams", "agent_id": "@agents"}


def grain(f: Filters, by: Sequence[Dim]) -> str:
    """The rollup grain holding what the question needs with the fewest rows (see
    reports.rollup): the whole workspace, one number, team or agent, a list per agent,
    team or number, or every dimension ("") when filters combine."""
    grouped = [d for d in by if d in _GROUPED]
    filters: list[str] = []
    if f.channel_ids is not None:
        if len(f.channel_ids) != 1:
            return ""
        filters.append(f"@c:{f.channel_ids[0]}")
    if f.team_id is not None:
        filters.append(f"@t:{f.team_id}")
    if f.agent_id is not None:
        filters.append(f"@a:{f.agent_id}")
    if not filters and not grouped:
        return "~"
    if not filters and len(grouped) == 1:
        return _GROUPED[grouped[0]]
    if len(filters) == 1 and not grouped:
        return filters[0]
    if len(filters) == 1 and grouped == ["agent_id"] and not filters[0].startswith("@a:"):
        return filters[0] + "@agents"  # the leaderboard of one number or team
    return ""


def _where(
    f: Filters, metrics: Sequence[str], suffix: str, *, use_source: bool = True
) -> list[ColumnElement[bool]]:
    r = ReportRollup
    names = [m + suffix for m in metrics]
    where: list[ColumnElement[bool]] = [
        r.workspace_id == f.workspace_id,
        r.metric.in_(names) if len(names) > 1 else r.metric == names[0],
        r.day >= f.start,
        r.day <= f.end,
    ]
    if suffix == "":  # every dimension: the filters are columns
        if f.channel_ids is not None:
            where.append(r.channel_id.in_(f.channel_ids or (-1,)))
        if f.team_id is not None:
            where.append(r.team_id == f.team_id)
        if f.agent_id is not None:
            where.append(r.agent_id == f.agent_id)
    if f.source and use_source:
        where.append(r.source == f.source)
    return where


def sums(
    session: Session,
    f: Filters,
    metrics: Sequence[str],
    by: Sequence[Dim],
    *,
    use_source: bool = True,
    suffix: str | None = None,
) -> dict[tuple[Any, ...], tuple[int, float]]:
    """SUM(count), SUM(total) of `metrics` grouped by `by` (the metric's name first), from
    the grain that fits (`suffix` to choose it)."""
    chosen = grain(f, by) if suffix is None else suffix
    cols = [ReportRollup.metric, *(getattr(ReportRollup, d) for d in by)]
    stmt = (
        select(*cols, func.sum(ReportRollup.count), func.sum(ReportRollup.total))
        .where(*_where(f, metrics, chosen, use_source=use_source))
        .group_by(*cols)
    )
    cut = len(chosen)
    return {
        (row[0][: len(row[0]) - cut] if cut else row[0], *row[1:-2]): (
            int(row[-2] or 0),
            float(row[-1] or 0.0),
        )
        for row in session.execute(stmt)
    }


@dataclass(frozen=True)
class Durations:
    count: int
    average: float | None
    median: float | None
    p90: float | None


def durations(
    session: Session, f: Filters, metric: str, by: Sequence[Dim] = (), *, use_source: bool = True
) -> dict[tuple[Any, ...], Durations]:
    """Median, average and 90th percentile of a duration metric, per group of `by` (day
    and source only: the bins are kept for the whole workspace and single filters). With
    filters combined there are no bins: the count and average only."""
    chosen = grain(f, by)
    if chosen == "" or chosen.endswith(tuple(_GROUPED.values())):
        plain = sums(session, f, [metric.removesuffix("_bh") + "#"], by, use_source=use_source)
        return {
            key[1:]: Durations(count, total / count if count else None, None, None)
            for key, (count, total) in plain.items()
            if not metric.endswith("_bh")
        }
    if "day" in by:
        raw = sums(session, f, [metric], [*by, "bucket"], use_source=use_source, suffix=chosen)
    else:
        raw = _bins_by_week(session, f, metric + chosen, [*by, "bucket"], use_source=use_source)
    groups: dict[tuple[Any, ...], list[tuple[int, int, float]]] = defaultdict(list)
    for key, (count, total) in raw.items():
        groups[key[1:-1]].append((key[-1], count, total))
    out = {}
    for group, bins in groups.items():
        n = sum(c for _, c, _ in bins)
        total = sum(t for _, _, t in bins)
        pairs = [(b, c) for b, c, _ in bins]
        out[group] = Durations(
            count=n,
            average=total / n if n else None,
            median=percentile(pairs, 0.5),
            p90=percentile(pairs, 0.9),
        )
    return out


def _bins_by_week(
    session: Session, f: Filters, metric: str, by: Sequence[Dim], *, use_source: bool
) -> dict[tuple[Any, ...], tuple[int, float]]:
    """A histogram's bins over the range: its whole weeks from the weekly rows (reports.
    rollup.WEEKLY), the days before the first Monday and after the last Sunday from the
    daily ones. Same sums, a seventh of the rows."""
    r = ReportRollup
    first_monday = f.start + dt.timedelta(days=(7 - f.start.weekday()) % 7)
    last_monday = f.end - dt.timedelta(days=(f.end.weekday() + 1) % 7 + 6)
    daily = and_(r.metric == metric, r.day >= f.start, r.day <= f.end)
    if first_monday <= last_monday:  # at least one whole week inside the range
        edges = or_(r.day < first_monday, r.day > last_monday + dt.timedelta(days=6))
        weeks = and_(r.metric == metric + WEEKLY, r.day >= first_monday, r.day <= last_monday)
        chosen: ColumnElement[bool] = or_(and_(daily, edges), weeks)
    else:
        chosen = daily
    where = [r.workspace_id == f.workspace_id, chosen]
    if f.source and use_source:
        where.append(r.source == f.source)
    cols = [getattr(r, d) for d in by]
    stmt = select(*cols, func.sum(r.count), func.sum(r.total)).where(*where).group_by(*cols)
    return {
        (metric, *row[:-2]): (int(row[-2] or 0), float(row[-1] or 0.0))
        for row in session.execute(stmt)
    }


def averages(
    session: Session, f: Filters, metric: str, by: Sequence[Dim], *, use_source: bool = True
) -> dict[tuple[Any, ...], tuple[int, float | None]]:
    """How many and the average of a duration metric per group of `by` (its sums, which
    keep every dimension and no bins: one row per day and group)."""
    raw = sums(session, f, [metric + "#"], by, use_source=use_source)
    return {
        key[1:]: (count, total / count if count else None) for key, (count, total) in raw.items()
    }


def _one(d: dict[tuple[Any, ...], Durations]) -> Durations:
    return d.get((), Durations(0, None, None, None))


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _per_day(
    f: Filters,
    values: dict[tuple[Any, ...], tuple[int, float]],
    metric: str,
    label: str | None = None,
) -> list[float | None]:
    by_day: dict[dt.date, float] = defaultdict(float)
    for key, (count, _) in values.items():
        if key[0] != metric or (label is not None and key[2] != label):
            continue
        by_day[key[1]] += count
    return [by_day.get(d, 0.0) for d in f.days]


def names(session: Session, f: Filters) -> Callable[[str, int], str]:
    """The display names of agents, teams and numbers of the workspace, by kind and id."""
    users: dict[int, str] = {
        i: n
        for i, n in session.execute(
            select(User.id, User.name)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == f.workspace_id)
        )
    }
    teams: dict[int, str] = {
        i: n
        for i, n in session.execute(
            select(Team.id, Team.name).where(Team.workspace_id == f.workspace_id)
        )
    }
    channels = {
        cid: name or phone
        for cid, name, phone in session.execute(
            select(Channel.id, Channel.name, Channel.display_phone_number).where(
                Channel.workspace_id == f.workspace_id
            )
        )
    }
    tables = {"agent": users, "team": teams, "channel": channels}

    def name(kind: str, ident: int) -> str:
        return str(tables[kind].get(ident) or f"#{ident}")

    return name


# -- the reports -------------------------------------------------------------------------------


def conversations(session: Session, f: Filters) -> Report:
    values = sums(session, f, ["conversations", "resolved"], ["day", "label"])
    new = _per_day(f, values, "conversations", "new")
    reopened = _per_day(f, values, "conversations", "reopened")
    resolved = _per_day(f, values, "resolved")
    arrivals = sums(session, f, ["arrivals"], ["bucket"], use_source=False)
    week = [[0] * 24 for _ in range(7)]
    for (_, bucket), (count, _) in arrivals.items():
        if 0 <= bucket < 168:
            week[bucket // 24][bucket % 24] += count
    return Report(
        key="conversations",
        figures=[
            Figure("new", sum(v or 0 for v in new)),
            Figure("reopened", sum(v or 0 for v in reopened)),
            Figure("resolved", sum(v or 0 for v in resolved)),
        ],
        chart=Chart(
            "line",
            [_iso(d) for d in f.days],
            [Series("new", new), Series("reopened", reopened), Series("resolved", resolved)],
        ),
        tables=[
            Table(
                "by_day",
                [Column("date", "date"), Column("new"), Column("reopened"), Column("resolved")],
                [
                    [_iso(d), n, r, s]
                    for d, n, r, s in zip(f.days, new, reopened, resolved, strict=True)
                ],
            ),
            Table(
                "by_hour",
                [Column("weekday", "text"), *(Column(f"{h:02d}") for h in range(24))],
                [[str(i), *week[i]] for i in range(7)],
            ),
        ],
    )


def _duration_figures(prefix: str, wall: Durations, bh: Durations) -> list[Figure]:
    return [
        Figure(f"{prefix}_median", wall.median, "seconds"),
        Figure(f"{prefix}_average", wall.average, "seconds"),
        Figure(f"{prefix}_p90", wall.p90, "seconds"),
        Figure(f"{prefix}_median_bh", bh.median, "seconds"),
    ]


def _duration_rows(d: Durations, bh: Durations) -> list[Any]:
    return [d.count, d.median, d.average, d.p90, bh.median, bh.average, bh.p90]


_DURATION_COLUMNS = [
    Column("count"),
    Column("median", "seconds"),
    Column("average", "seconds"),
    Column("p90", "seconds"),
    Column("median_bh", "seconds"),
    Column("average_bh", "seconds"),
    Column("p90_bh", "seconds"),
]


def responses(session: Session, f: Filters) -> Report:
    first = _one(durations(session, f, "first_response"))
    first_bh = _one(durations(session, f, "first_response_bh"))
    reply = _one(durations(session, f, "response_time"))
    reply_bh = _one(durations(session, f, "response_time_bh"))
    # The chart's daily figures are averages: a median per day would read every day's
    # bins (thousands of rows over 90 days), an average one row per day.
    daily_first = averages(session, f, "first_response", ["day"])
    daily_reply = averages(session, f, "response_time", ["day"])
    by_source = durations(session, f, "first_response", ["source"], use_source=False)
    by_source_bh = durations(session, f, "first_response_bh", ["source"], use_source=False)
    empty = Durations(0, None, None, None)
    return Report(
        key="responses",
        figures=[
            *_duration_figures("first_response", first, first_bh),
            *_duration_figures("response_time", reply, reply_bh),
        ],
        chart=Chart(
            "line",
            [_iso(d) for d in f.days],
            [
                Series(
                    "first_response_average",
                    [daily_first.get((d,), (0, None))[1] for d in f.days],
                ),
                Series(
                    "response_time_average",
                    [daily_reply.get((d,), (0, None))[1] for d in f.days],
                ),
            ],
            unit="seconds",
        ),
        tables=[
            Table(
                "summary",
                [Column("measure", "text"), *_DURATION_COLUMNS],
                [
                    ["first_response", *_duration_rows(first, first_bh)],
                    ["response_time", *_duration_rows(reply, reply_bh)],
                ],
            ),
            Table(
                "first_response_by_source",
                [Column("source", "text"), *_DURATION_COLUMNS],
                [
                    [src, *_duration_rows(d, by_source_bh.get((src,), empty))]
                    for (src,), d in sorted(by_source.items())
                ],
            ),
        ],
    )


def resolutions(session: Session, f: Filters) -> Report:
    name = names(session, f)
    wall = _one(durations(session, f, "resolution_time"))
    bh = _one(durations(session, f, "resolution_time_bh"))
    values = sums(session, f, ["resolved"], ["day"])
    per_day = [float(values.get(("resolved", d), (0, 0.0))[0]) for d in f.days]
    by_agent = averages(session, f, "resolution_time", ["agent_id"])
    counts_agent = sums(session, f, ["resolved"], ["agent_id"])
    by_team = sums(session, f, ["resolved"], ["team_id"])
    return Report(
        key="resolutions",
        figures=[Figure("resolved", sum(per_day)), *_duration_figures("resolution_time", wall, bh)],
        chart=Chart("bar", [_iso(d) for d in f.days], [Series("resolved", per_day)]),
        tables=[
            Table(
                "by_agent",
                [Column("agent", "text"), Column("resolved"), Column("average", "seconds")],
                [
                    [
                        name("agent", agent) if agent else "unassigned",
                        count,
                        by_agent.get((agent,), (0, None))[1],
                    ]
                    for (_, agent), (count, _) in sorted(
                        counts_agent.items(), key=lambda kv: -kv[1][0]
                    )
                ],
            ),
            Table(
                "by_team",
                [Column("team", "text"), Column("resolved")],
                [
                    [name("team", team) if team else "no_team", count]
                    for (_, team), (count, _) in sorted(by_team.items(), key=lambda kv: -kv[1][0])
                ],
            ),
        ],
    )


MESSAGE_SOURCES = ("customer", "agent", "business_app", "bot", "broadcast", "api", "history")


def messages(session: Session, f: Filters) -> Report:
    values = sums(session, f, ["messages"], ["day", "source", "label"])
    per_source: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    per_type: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for (_, day, source, label), (count, _) in values.items():
        per_source[source][day] += count
        per_type[label] += count
        totals[source] += count
    sources = [s for s in MESSAGE_SOURCES if s in totals] + sorted(
        s for s in totals if s not in MESSAGE_SOURCES
    )
    return Report(
        key="messages",
        figures=[Figure("messages", sum(totals.values()))]
        + [Figure(f"source_{s}", totals[s]) for s in sources],
        chart=Chart(
            "stacked",
            [_iso(d) for d in f.days],
            [Series(s, [per_source[s].get(d, 0.0) for d in f.days]) for s in sources],
        ),
        tables=[
            Table(
                "by_source",
                [Column("source", "text"), Column("messages")],
                [[s, totals[s]] for s in sources],
            ),
            Table(
                "by_type",
                [Column("type", "text"), Column("messages")],
                [[t, n] for t, n in sorted(per_type.items(), key=lambda kv: -kv[1])],
            ),
        ],
    )


def contacts(session: Session, f: Filters) -> Report:
    created = sums(session, f, ["contact"], ["day", "source"])
    consent = sums(session, f, ["consent"], ["day", "label"], use_source=False)
    by_source: dict[str, int] = defaultdict(int)
    per_day: dict[dt.date, float] = defaultdict(float)
    for (_, day, source), (count, _) in created.items():
        by_source[source or "unknown"] += count
        per_day[day] += count
    opt: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for (_, day, label), (count, _) in consent.items():
        opt[label][day] += count
    return Report(
        key="contacts",
        figures=[
            Figure("contacts_new", sum(by_source.values())),
            Figure("opted_in", sum(opt["opt_in"].values())),
            Figure("opted_out", sum(opt["opt_out"].values())),
        ],
        chart=Chart(
            "line",
            [_iso(d) for d in f.days],
            [
                Series("contacts_new", [per_day.get(d, 0.0) for d in f.days]),
                Series("opted_in", [opt["opt_in"].get(d, 0.0) for d in f.days]),
                Series("opted_out", [opt["opt_out"].get(d, 0.0) for d in f.days]),
            ],
        ),
        tables=[
            Table(
                "by_source",
                [Column("source", "text"), Column("contacts_new")],
                [[s, n] for s, n in sorted(by_source.items(), key=lambda kv: -kv[1])],
            )
        ],
    )


def assignments(session: Session, f: Filters) -> Report:
    name = names(session, f)
    wait = _one(durations(session, f, "queue_wait"))
    per_agent: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_team: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (_, agent, label), (count, _) in sums(
        session, f, ["assignments"], ["agent_id", "label"]
    ).items():
        per_agent[agent][label] += count
    for (_, team, label), (count, _) in sums(
        session, f, ["assignments"], ["team_id", "label"]
    ).items():
        per_team[team][label] += count
    agents = sorted(
        (a for a in per_agent if a),
        key=lambda a: -per_agent[a]["assigned"] - per_agent[a]["reassigned"],
    )
    return Report(
        key="assignments",
        figures=[
            Figure("assigned", sum(v["assigned"] for v in per_agent.values())),
            Figure("reassigned", sum(v["reassigned"] for v in per_agent.values())),
            Figure("queue_wait_median", wait.median, "seconds"),
            Figure("queue_wait_p90", wait.p90, "seconds"),
        ],
        chart=Chart(
            "bar",
            [name("agent", a) for a in agents],
            [
                Series("assigned", [per_agent[a]["assigned"] for a in agents]),
                Series("reassigned", [per_agent[a]["reassigned"] for a in agents]),
            ],
        ),
        tables=[
            Table(
                "by_agent",
                [Column("agent", "text"), Column("assigned"), Column("reassigned")],
                [
                    [name("agent", a), per_agent[a]["assigned"], per_agent[a]["reassigned"]]
                    for a in agents
                ],
            ),
            Table(
                "by_team",
                [Column("team", "text"), Column("assigned"), Column("reassigned")],
                [
                    [name("team", t) if t else "no_team", v["assigned"], v["reassigned"]]
                    for t, v in sorted(per_team.items())
                ],
            ),
        ],
    )


def leaderboard(session: Session, f: Filters) -> Report:
    """Per agent, and the owner's phone as a row of its own (its answers have no agent)."""
    name = names(session, f)
    resolved = sums(session, f, ["resolved"], ["agent_id"])
    # Averages per person (the sums' rows); medians per agent would read a row per bin.
    first = averages(session, f, "first_response", ["agent_id", "source"], use_source=False)
    reply = averages(session, f, "response_time", ["agent_id", "source"], use_source=False)
    sent = sums(session, f, ["messages"], ["agent_id", "source"], use_source=False)
    csat = sums(session, f, ["csat"], ["agent_id"], use_source=False)
    rows: dict[str, dict[str, Any]] = defaultdict(dict)

    def who(agent: int, source: str) -> str | None:
        if source == BUSINESS_APP:
            return BUSINESS_APP
        return f"agent:{agent}" if agent else None

    for (_, agent), (count, _) in resolved.items():
        if agent:
            rows[f"agent:{agent}"]["resolved"] = count
    for table, key in ((first, "first_response"), (reply, "response_time")):
        merged: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for (agent, source), (count, average) in table.items():
            row = who(agent, source)
            if row and average is not None:
                merged[row][0] += count
                merged[row][1] += count * average
        for row, (n, total) in merged.items():
            rows[row][key] = total / n if n else None
    for (_, agent, source), (count, _) in sent.items():
        row = who(agent, source)
        if row and source in ("agent", BUSINESS_APP):
            rows[row]["messages"] = rows[row].get("messages", 0) + count
    for (_, agent), (count, total) in csat.items():
        if agent and count:
            rows[f"agent:{agent}"]["csat"] = total / count

    def label(row: str) -> str:
        return BUSINESS_APP if row == BUSINESS_APP else name("agent", int(row.split(":")[1]))

    ordered = sorted(rows, key=lambda r: (-(rows[r].get("resolved") or 0), label(r)))
    return Report(
        key="leaderboard",
        figures=[Figure("agents", len([r for r in rows if r != BUSINESS_APP]))],
        chart=Chart(
            "bar",
            [label(r) for r in ordered],
            [Series("resolved", [rows[r].get("resolved", 0) for r in ordered])],
        ),
        tables=[
            Table(
                "leaderboard",
                [
                    Column("agent", "text"),
                    Column("resolved"),
                    Column("first_response", "seconds"),
                    Column("response_time", "seconds"),
                    Column("csat"),
                    Column("messages"),
                ],
                [
                    [
                        label(r),
                        rows[r].get("resolved", 0),
                        rows[r].get("first_response"),
                        rows[r].get("response_time"),
                        rows[r].get("csat"),
                        rows[r].get("messages", 0),
                    ]
                    for r in ordered
                ],
            )
        ],
    )


def users(session: Session, f: Filters) -> Report:
    name = names(session, f)
    values = sums(session, f, ["presence"], ["agent_id", "label"], use_source=False)
    per_agent: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (_, agent, label), (_, total) in values.items():
        per_agent[agent][label] += total
    agents = sorted(per_agent, key=lambda a: name("agent", a))
    statuses = ("online", "away", "offline")
    return Report(
        key="users",
        figures=[Figure("agents", len(agents))],
        chart=Chart(
            "stacked",
            [name("agent", a) for a in agents],
            [Series(s, [per_agent[a][s] / 3600 for a in agents]) for s in statuses],
            unit="hours",
        ),
        tables=[
            Table(
                "by_agent",
                [Column("agent", "text"), *(Column(s, "seconds") for s in statuses)],
                [[name("agent", a), *(per_agent[a][s] for s in statuses)] for a in agents],
            )
        ],
    )


BROADCAST_STATES = ("sent", "delivered", "read", "replied", "failed")


def broadcasts(session: Session, f: Filters) -> Report:
    values = sums(session, f, ["broadcast"], ["source", "label"], use_source=False)
    per_template: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failures: dict[str, int] = defaultdict(int)
    for (_, template, label), (count, _) in values.items():
        state, _, reason = label.partition(":")
        per_template[template][state] += count
        if state == "failed":
            failures[reason or "unknown"] += count
    templates = sorted(per_template)
    total = {s: sum(per_template[t][s] for t in templates) for s in BROADCAST_STATES}
    return Report(
        key="broadcasts",
        figures=[Figure(s, total[s]) for s in BROADCAST_STATES],
        chart=Chart(
            "bar",
            list(BROADCAST_STATES),
            [Series("recipients", [total[s] for s in BROADCAST_STATES])],
        ),
        tables=[
            Table(
                "by_template",
                [Column("template", "text"), *(Column(s) for s in BROADCAST_STATES)],
                [[t, *(per_template[t][s] for s in BROADCAST_STATES)] for t in templates],
            ),
            Table(
                "failures",
                [Column("reason", "text"), Column("recipients")],
                [[r, n] for r, n in sorted(failures.items(), key=lambda kv: -kv[1])],
            ),
        ],
    )


def _rates() -> dict[str, dict[str, float]]:
    text = resources.files("puente.reports").joinpath("data/rates.json").read_text("utf-8")
    data: dict[str, dict[str, float]] = json.loads(text)["rates"]
    return data


def rate(country: str, category: str) -> float:
    """Meta's published price of one billable message (USD), by the recipient's country
    and the template category; "other" for countries not listed."""
    rates = _rates()
    row = rates.get(country) or rates["other"]
    return float(row.get(category, 0.0))


def costs(session: Session, f: Filters) -> Report:
    """Billable and free messages (the status webhooks' pricing, and what the owner's phone
    sent), with the spend estimated from the rate table."""
    name = names(session, f)
    values = sums(
        session, f, ["pricing"], ["day", "channel_id", "source", "label"], use_source=False
    )
    billable: dict[tuple[str, str], int] = defaultdict(int)
    free: dict[str, int] = defaultdict(int)
    per_channel: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    spend_day: dict[dt.date, float] = defaultdict(float)
    for (_, day, channel, category, label), (count, _) in values.items():
        kind, _, country = label.partition(":")
        month = day.strftime("%Y-%m")
        entry = per_channel[(channel, month)]
        if kind == "billable":
            billable[(category, country)] += count
            cost = count * rate(country, category)
            entry[0] += count
            entry[2] += cost
            spend_day[day] += cost
        else:
            free[kind] += count
            entry[1] += count
    spend = sum(spend_day.values())
    return Report(
        key="costs",
        figures=[
            Figure("billable", sum(billable.values())),
            Figure("free", sum(free.values())),
            Figure("spend", spend, "money"),
        ],
        chart=Chart(
            "bar",
            [_iso(d) for d in f.days],
            [Series("spend", [spend_day.get(d, 0.0) for d in f.days])],
            unit="money",
        ),
        tables=[
            Table(
                "billable",
                [
                    Column("category", "text"),
                    Column("country", "text"),
                    Column("messages"),
                    Column("spend", "money"),
                ],
                [
                    [cat, country, n, n * rate(country, cat)]
                    for (cat, country), n in sorted(billable.items(), key=lambda kv: -kv[1])
                ],
            ),
            Table(
                "free",
                [Column("reason", "text"), Column("messages")],
                [[k, n] for k, n in sorted(free.items(), key=lambda kv: -kv[1])],
            ),
            Table(
                "by_number",
                [
                    Column("number", "text"),
                    Column("month", "text"),
                    Column("billable"),
                    Column("free"),
                    Column("spend", "money"),
                ],
                [
                    [name("channel", c), m, int(v[0]), int(v[1]), v[2]]
                    for (c, m), v in sorted(per_channel.items())
                ],
            ),
        ],
    )


def csat(session: Session, f: Filters, *, comments: int = 50) -> Report:
    name = names(session, f)
    by_agent = sums(session, f, ["csat"], ["agent_id", "bucket"], use_source=False)
    by_team = sums(session, f, ["csat"], ["team_id"], use_source=False)
    distribution = [0] * 5
    agents: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
    for (_, agent, score), (count, total) in by_agent.items():
        if 1 <= score <= 5:
            distribution[score - 1] += count
        agents[agent][0] += count
        agents[agent][1] += total
    n = sum(distribution)
    average = sum((i + 1) * c for i, c in enumerate(distribution)) / n if n else None
    satisfied = (distribution[3] + distribution[4]) / n if n else None
    latest = _comments(session, f, comments)
    return Report(
        key="csat",
        figures=[
            Figure("responses", n),
            Figure("average", average),
            Figure("satisfied", satisfied, "percent"),
        ],
        chart=Chart(
            "bar",
            ["1", "2", "3", "4", "5"],
            [Series("responses", [float(c) for c in distribution])],
        ),
        tables=[
            Table(
                "by_agent",
                [Column("agent", "text"), Column("responses"), Column("average")],
                [
                    [
                        name("agent", a) if a else "unassigned",
                        int(v[0]),
                        v[1] / v[0] if v[0] else None,
                    ]
                    for a, v in sorted(agents.items(), key=lambda kv: -kv[1][0])
                ],
            ),
            Table(
                "by_team",
                [Column("team", "text"), Column("responses"), Column("average")],
                [
                    [name("team", t) if t else "no_team", c, tot / c if c else None]
                    for (_, t), (c, tot) in sorted(by_team.items())
                ],
            ),
            Table(
                "comments",
                [
                    Column("date", "date"),
                    Column("score"),
                    Column("agent", "text"),
                    Column("comment", "text"),
                ],
                [
                    [at, score, name("agent", agent) if agent else "", text]
                    for at, score, agent, text in latest
                ],
            ),
        ],
    )


def _comments(session: Session, f: Filters, limit: int) -> list[tuple[str, int, int, str]]:
    s = CsatSurvey
    where: list[ColumnElement[bool]] = [
        s.workspace_id == f.workspace_id,
        s.comment.is_not(None),
        s.answered_at.is_not(None),
    ]
    if f.channel_ids is not None:
        where.append(s.channel_id.in_(f.channel_ids or (-1,)))
    if f.agent_id is not None:
        where.append(s.agent_id == f.agent_id)
    if f.team_id is not None:
        where.append(s.team_id == f.team_id)
    rows = session.execute(
        select(s.answered_at, s.score, s.agent_id, s.comment)
        .where(and_(*where))
        .order_by(s.answered_at.desc())
        .limit(limit)
    )
    return [(a.date().isoformat(), int(sc or 0), int(ag or 0), str(c)) for a, sc, ag, c in rows]


REPORTS: dict[str, Callable[[Session, Filters], Report]] = {
    "conversations": conversations,
    "responses": responses,
    "resolutions": resolutions,
    "messages": messages,
    "contacts": contacts,
    "assignments": assignments,
    "leaderboard": leaderboard,
    "users": users,
    "broadcasts": broadcasts,
    "costs": costs,
    "csat": csat,
}


def report(session: Session, key: str, f: Filters) -> Report:
    return REPORTS[key](session, f)
