"""`puente kb export|import`: the knowledge base's entries as a JSON file, to keep, move
to another workspace or installation, or edit in bulk and bring back."""

from __future__ import annotations

import json
from pathlib import Path

import typer

kb_cli = typer.Typer(
    help="The knowledge-base bot's entries: export and import (JSON).", no_args_is_help=True
)

WorkspaceOpt = typer.Option(..., "--workspace", "-w", help="Workspace name or slug.")
USER_ERROR = 2


@kb_cli.command("export")
def export_cmd(
    workspace: str = WorkspaceOpt,
    file: Path = typer.Option(None, "--file", "-f", dir_okay=False, help="Default: stdout."),
) -> None:
    """Write every entry (language, phrasings, answer, enabled) as JSON."""
    from puente.accounts.service import enter_workspace
    from puente.automation.kb import export_entries
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        data = export_entries(session, ws.id)
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if file is None:
        typer.echo(text, nl=False)
        return
    file.write_text(text, encoding="utf-8")
    typer.echo(f"{len(data['entries'])} entries written to {file}", err=True)


@kb_cli.command("import")
def import_cmd(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="JSON."),
    workspace: str = WorkspaceOpt,
    replace: bool = typer.Option(False, help="Delete every entry first."),
) -> None:
    """Add the file's entries (an entry with the same language and phrasings is updated
    instead). The whole file is checked first: one bad entry and nothing changes."""
    from puente.accounts.service import enter_workspace
    from puente.automation.kb import check_import, do_import_entries
    from puente.errors import InvalidInput
    from puente.runtime import Runtime

    try:
        entries = check_import(json.loads(file.read_text(encoding="utf-8")))
    except ValueError as exc:
        typer.echo(f"puente: error: {file}: not JSON ({exc})", err=True)
        raise typer.Exit(USER_ERROR) from None
    except InvalidInput as exc:
        where = exc.details[0]["field"] if isinstance(exc.details, list) else ""
        typer.echo(f"puente: error: {file}: {where}: {exc.message}", err=True)
        raise typer.Exit(USER_ERROR) from None
    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        added, updated = do_import_entries(session, ws.id, entries, replace=replace)
    typer.echo(f"{added} entries added, {updated} updated")
