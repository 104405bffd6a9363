"""REST API for reports: every report the web pages show, as JSON (figures, chart, tables)
or one table as CSV, with the same date ranges, filters and refusals; and the dashboard.
Thin: what is counted lives in `puente.reports.queries`, who sees what in
`puente.reports.access`, ranges in `puente.reports.ranges`."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from puente.accounts.models import Workspace
from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.errors import NotFound
from puente.reports.access import Asked, access_report, reports_for
from puente.reports.dashboard import dashboard
from puente.reports.queries import Report, Table, report
from puente.reports.ranges import PRESETS, DateRange, resolve_range

router = APIRouter(tags=["reports"])

ReadCaller = Annotated[ApiCaller, scoped("reports:read")]
Key = Annotated[
    str,
    Path(
        description="conversations, responses, resolutions, messages, "
        "contacts, assignments, leaderboard, users, broadcasts, costs or csat"
    ),
]
Preset = Annotated[
    str | None,
    Query(
        description=f"one of {', '.join(PRESETS)}; wins over start and end; "
        "neither: the last 7 days"
    ),
]
Day = Annotated[str | None, Query(description="a local day, YYYY-MM-DD (with the other end)")]
Zone = Annotated[
    str | None,
    Query(description="the IANA time zone presets are computed in; the workspace's if left out"),
]
Id = Annotated[int | None, Query(ge=1, le=2**62)]


class FigureOut(BaseModel):
    key: str
    value: float | None
    kind: str  # number | seconds | percent | money


class SeriesOut(BaseModel):
    key: str
    values: list[float | None]


class ChartOut(BaseModel):
    kind: str
    unit: str
    labels: list[str]
    series: list[SeriesOut]


class ColumnOut(BaseModel):
    key: str
    kind: str


class TableOut(BaseModel):
    key: str
    columns: list[ColumnOut]
    rows: list[list[Any]]


class ReportOut(BaseModel):
    key: str
    start: dt.date
    end: dt.date
    timezone: str
    figures: list[FigureOut]
    chart: ChartOut
    tables: list[TableOut]


class ReportsOut(BaseModel):
    reports: list[str]


def _out(found: Report, dates: DateRange) -> ReportOut:
    return ReportOut(
        key=found.key,
        start=dates.start,
        end=dates.end,
        timezone=dates.timezone,
        figures=[FigureOut(key=f.key, value=f.value, kind=f.kind) for f in found.figures],
        chart=ChartOut(
            kind=found.chart.kind,
            unit=found.chart.unit,
            labels=found.chart.labels,
            series=[SeriesOut(key=s.key, values=list(s.values)) for s in found.chart.series],
        ),
        tables=[
            TableOut(
                key=t.key,
                columns=[ColumnOut(key=c.key, kind=c.kind) for c in t.columns],
                rows=t.rows,
            )
            for t in found.tables
        ],
    )


def read_report(
    key: Key,
    caller: ReadCaller,
    session: SessionDep,
    preset: Preset = None,
    start: Day = None,
    end: Day = None,
    timezone: Zone = None,
    channel_id: Id = None,
    team_id: Id = None,
    agent_id: Id = None,
    source: Annotated[str | None, Query(max_length=40)] = None,
) -> tuple[Report, DateRange]:
    """The report asked for, with its range: the query parameters both routes take."""
    workspace = session.get(Workspace, caller.workspace_id)
    assert workspace is not None
    dates = resolve_range(
        timezone=timezone or workspace.timezone or "UTC", preset=preset, start=start, end=end
    )
    asked = Asked(channel_id=channel_id, team_id=team_id, agent_id=agent_id, source=source)
    filters = access_report(session, caller.actor, key, dates, asked)
    return report(session, key, filters), dates


ReadReport = Annotated[tuple[Report, DateRange], Depends(read_report)]


@router.get("/reports", response_model=ReportsOut, summary="The reports this token may read")
def list_reports(caller: ReadCaller) -> ReportsOut:
    return ReportsOut(reports=reports_for(caller.actor))


@router.get(
    "/reports/{key}",
    response_model=ReportOut,
    summary="One report: headline figures, its chart's series and its tables",
    responses=error_responses(403, 404),
)
def get_report(found: ReadReport) -> ReportOut:
    """Durations are in seconds; medians and the 90th percentile come from 10 % bins
    (within 5 %); days are the workspace's (docs/reports.md)."""
    return _out(*found)


def _csv(table: Table) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/reports/{key}/tables/{table}.csv",
    summary="One table of a report as CSV (column keys as the header, durations in seconds)",
    responses=error_responses(403, 404),
    response_class=StreamingResponse,
)
def get_report_table_csv(
    key: Key, table: Annotated[str, Path(max_length=40)], read: ReadReport
) -> StreamingResponse:
    found, dates = read
    chosen = next((t for t in found.tables if t.key == table), None)
    if chosen is None:
        raise NotFound(
            f"report {key} has no table {table!r}; it has " + ", ".join(t.key for t in found.tables)
        )
    filename = f"{key}-{table}-{dates.start.isoformat()}-{dates.end.isoformat()}.csv"
    return StreamingResponse(
        _csv(chosen),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class WaitingOut(BaseModel):
    conversation_id: int
    contact_name: str
    contact_phone: str | None
    channel_name: str
    status: str
    waiting_since: dt.datetime
    assignee_name: str | None
    team_name: str | None


class ComparisonOut(BaseModel):
    key: str
    today: float | None
    last_week: float | None
    kind: str


class DashboardOut(BaseModel):
    open: int
    unassigned: int
    pending: int
    longest_waiting: list[WaitingOut]
    agents: dict[str, list[str]]
    today: list[ComparisonOut]
    day: dt.date
    last_week_day: dt.date
    last_week_until: dt.datetime


@router.get(
    "/dashboard",
    response_model=DashboardOut,
    summary="What is open and waiting now, who is online, today against last week",
)
def get_dashboard(caller: ReadCaller, session: SessionDep) -> DashboardOut:
    """Today is compared with the same weekday last week up to the same time of day."""
    board = dashboard(session, caller.actor)
    return DashboardOut(
        open=board.open,
        unassigned=board.unassigned,
        pending=board.pending,
        longest_waiting=[WaitingOut(**vars(w)) for w in board.longest_waiting],
        agents=board.agents,
        today=[
            ComparisonOut(key=c.key, today=c.today, last_week=c.last_week, kind=c.kind)
            for c in board.today
        ],
        day=board.day,
        last_week_day=board.last_week_day,
        last_week_until=board.last_week_until,
    )
