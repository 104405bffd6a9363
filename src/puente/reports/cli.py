"""`puente reports rebuild|show`: sum a workspace's rollups again from its facts (after a
fix, a restored backup, or a change of time zone or business hours), and print a report
in the terminal."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import typer

reports_cli = typer.Typer(
    help="Reports: rebuild the daily rollups, print a report.", no_args_is_help=True
)

WorkspaceOpt = typer.Option(..., "--workspace", "-w", help="Workspace name or slug.")
USER_ERROR = 2


def _day(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        typer.echo(f"refused: {name} must be a date like 2026-12-01, not {value!r}", err=True)
        raise typer.Exit(USER_ERROR) from None


@reports_cli.command("rebuild")
def rebuild_cmd(
    workspace: str = WorkspaceOpt,
    since: str = typer.Option(
        None, help="First local day to rebuild (YYYY-MM-DD); all if left out."
    ),
) -> None:
    """Sum the daily rollups again from the raw facts, from --since on (or all of them).
    One transaction: interrupted, it changes nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from puente.accounts.service import enter_workspace
    from puente.reports.rollup import rebuild
    from puente.runtime import Runtime

    first = _day(since, "--since")
    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        workspace_id = enter_workspace(session, workspace).id
    with Progress(
        TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as progress:
        task = progress.add_task("rebuild", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        with runtime.db.unit_of_work(scope=workspace_id) as session:
            read = rebuild(session, workspace_id, first, progress=advance)
    where = f" from {first.isoformat()}" if first else ""
    typer.echo(f"rebuilt the rollups{where} from {read:,} facts")


@reports_cli.command("show")
def show_cmd(
    key: str = typer.Argument(
        ...,
        help="conversations, responses, resolutions, messages, contacts, assignments, leaderboard, users, broadcasts, costs or csat.",
    ),
    workspace: str = WorkspaceOpt,
    start: str = typer.Option(None, help="First local day (YYYY-MM-DD); 30 days ago if left out."),
    end: str = typer.Option(None, help="Last local day (YYYY-MM-DD); today if left out."),
) -> None:
    """Print a report's figures and tables."""
    from puente.accounts.service import enter_workspace
    from puente.reports.queries import REPORTS, Filters, report
    from puente.runtime import Runtime

    if key not in REPORTS:
        typer.echo(f"refused: no report {key!r}; one of {', '.join(REPORTS)}", err=True)
        raise typer.Exit(USER_ERROR)
    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        today = dt.datetime.now(zoneinfo.ZoneInfo(ws.timezone or "UTC")).date()
        last = _day(end, "--end") or today
        first = _day(start, "--start") or last - dt.timedelta(days=29)
        if first > last:
            typer.echo("refused: --start is after --end", err=True)
            raise typer.Exit(USER_ERROR)
        found = report(session, key, Filters(ws.id, first, last))
    for figure in found.figures:
        typer.echo(f"{figure.key}: {_shown(figure.value)}")
    for table in found.tables:
        typer.echo(f"\n{table.key}")
        typer.echo("\t".join(c.key for c in table.columns))
        for row in table.rows:
            typer.echo("\t".join(_shown(v) for v in row))


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)
