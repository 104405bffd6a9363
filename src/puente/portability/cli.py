"""`puente export` and `puente import`: a workspace to a portable archive and back, with
a progress bar; refusals are one line (the command's error handler prints PuenteErrors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from puente.portability.export import Progress

CLI_ACTOR = "cli"


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("import")(import_cmd)


@contextmanager
def _bar() -> Iterator[Progress]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description:>20}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        tasks: dict[str, object] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total or None)
            bar.update(tasks[what], completed=done, total=total or None)  # type: ignore[arg-type]

        yield report


def export_cmd(
    workspace: str = typer.Option(..., "--workspace", "-w", help="Workspace name or slug."),
    output: Path = typer.Option(
        None, "--output", "-o", help="The archive to write (default: <slug>-<date>.zip here)."
    ),
) -> None:
    """Write a workspace to a portable archive (docs/export.md)."""
    from puente.accounts.service import enter_workspace
    from puente.portability.export import do_export_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        ws_id, slug = ws.id, ws.slug
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = output or Path(f"{slug}-{stamp}.zip")
    with _bar() as report:
        result = do_export_workspace(
            runtime.db, ws_id, runtime.settings.data_dir, out, actor=CLI_ACTOR, progress=report
        )
    typer.echo(
        f"exported {slug} to {result.path}: {result.rows.get('contacts', 0)} contacts, "
        f"{result.rows.get('conversations', 0)} conversations, "
        f"{result.rows.get('messages', 0)} messages, {result.media_files} media files"
    )


def import_cmd(
    archive: Path = typer.Argument(..., help="An archive written by `puente export`."),
    workspace: str = typer.Option(
        ..., "--workspace", "-w", help="The workspace to fill: a new name, or an empty one."
    ),
) -> None:
    """Load an archive into a new or empty workspace (docs/export.md)."""
    from puente.portability.importer import do_import_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with _bar() as report:
        result = do_import_workspace(
            runtime.db,
            archive,
            workspace,
            runtime.settings.data_dir,
            actor=CLI_ACTOR,
            progress=report,
        )
    typer.echo(
        f"imported into {result.slug}: {result.rows.get('contacts', 0)} contacts, "
        f"{result.rows.get('conversations', 0)} conversations, "
        f"{result.rows.get('messages', 0)} messages, {result.media_files} media files; "
        f"{result.users_created} people added without a password; numbers are disconnected"
    )
    for table, count in sorted(result.dropped.items()):
        typer.echo(f"left out {count} {table} rows whose person or record is not in the archive")
