"""`puente contacts import FILE --workspace W`: the CSV import of the /contacts/import page
from the command line, with a progress bar and the same per-row report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

contacts_cli = typer.Typer(
    help="Contacts: import from CSV; one contact's export, erasure and legal hold.",
    no_args_is_help=True,
)


@contacts_cli.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The CSV file."),
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    report: Path = typer.Option(None, help="Write the per-row report here as JSON."),
) -> None:
    """Create or update contacts from a CSV (phone, name, tags, any custom columns).
    Every rejected row is listed with its line number and reason."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from puente.accounts.service import enter_workspace
    from puente.contacts.csv_import import (
        Outcome,
        decode_upload,
        do_import_contacts,
        parse_import,
    )
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        parsed = parse_import(decode_upload(file.read_bytes()))
        with runtime.db.unit_of_work() as session:
            workspace_id = enter_workspace(session, workspace).id
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), transient=True
        ) as progress:
            task = progress.add_task("import", total=len(parsed.pending))
            # The whole file is one transaction: an interrupted import changes nothing.
            with runtime.db.unit_of_work(scope=workspace_id) as session:
                do_import_contacts(
                    session,
                    workspace_id,
                    parsed,
                    on_progress=lambda n: progress.advance(task, n),
                )
    except PuenteError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        for detail in exc.details if isinstance(exc.details, list) else []:
            typer.echo(f"  {detail}", err=True)
        raise typer.Exit(1) from None
    for row in parsed.rows:
        if row.outcome is Outcome.REJECTED:
            why = row.reason.value if row.reason else "rejected"
            if row.duplicate_of:
                why += f" of line {row.duplicate_of}"
            typer.echo(f"line {row.line}: {row.phone or '(no phone)'}: {why}", err=True)
    typer.echo(
        f"{parsed.count(Outcome.CREATED)} created, {parsed.count(Outcome.UPDATED)} updated, "
        f"{parsed.count(Outcome.REJECTED)} rejected"
    )
    if report is not None:
        report.write_text(json.dumps(parsed.as_dict(), indent=2, ensure_ascii=False))
