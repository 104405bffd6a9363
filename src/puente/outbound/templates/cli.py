"""`puente templates`: list, sync, create (from a JSON file) and delete message templates."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from puente.errors import PuenteError

templates_cli = typer.Typer(help="WhatsApp message templates.", no_args_is_help=True)

WorkspaceOpt = typer.Option(..., "--workspace", "-w", help="Workspace name or slug.")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


@templates_cli.command("list")
def list_cmd(
    workspace: str = WorkspaceOpt,
    status: str = typer.Option(None, help="Only this status, e.g. APPROVED."),
) -> None:
    """List templates with their status (and Meta's reason when rejected or paused)."""
    from puente.accounts.service import enter_workspace
    from puente.outbound.templates.service import list_templates
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        try:
            ws = enter_workspace(session, workspace)
        except PuenteError as exc:
            raise _fail(exc.message) from None
        rows = list_templates(session, ws.id, status=status)
        if not rows:
            typer.echo("no templates")
        for t in rows:
            reason = f"  ({t.status_reason})" if t.status_reason else ""
            typer.echo(f"{t.id:>6}  {t.name}  {t.language}  {t.category}  {t.status}{reason}")


@templates_cli.command("sync")
def sync_cmd(workspace: str = WorkspaceOpt) -> None:
    """Read every template of the workspace's WABAs from Meta now."""
    from puente.accounts.service import enter_workspace
    from puente.outbound.templates.service import do_sync_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = enter_workspace(session, workspace)
            results = do_sync_workspace(session, runtime, ws.id)
    except PuenteError as exc:
        raise _fail(exc.message) from None
    for r in results:
        typer.echo(f"WABA {r.waba_id}: {r.created} new, {r.updated} updated, {r.removed} removed")


@templates_cli.command("create")
def create_cmd(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="JSON body."),
    workspace: str = WorkspaceOpt,
    waba_id: str = typer.Option(None, help="Needed only when the workspace has several WABAs."),
    draft: bool = typer.Option(False, help="Keep it as a local draft; do not submit to Meta."),
) -> None:
    """Check a template against Meta's rules and submit it for review."""
    from puente.accounts.service import enter_workspace
    from puente.outbound.templates.service import do_create_template
    from puente.runtime import Runtime

    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"{file}: not a JSON template ({exc})") from None
    if not isinstance(data, dict):
        raise _fail(f"{file}: the JSON must be an object")
    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = enter_workspace(session, workspace)
            t = do_create_template(
                session, runtime, workspace_id=ws.id, data=data, waba_id=waba_id, submit=not draft
            )
    except PuenteError as exc:
        lines = [exc.message.split(": ", 1)[0] if isinstance(exc.details, list) else exc.message]
        if isinstance(exc.details, list):
            lines += [f"  - {p['field']}: {p['message']}" for p in exc.details]
        raise _fail("\n".join(lines)) from None
    typer.echo(f"template {t.name} ({t.language}) created with id {t.id}: {t.status}")


@templates_cli.command("delete")
def delete_cmd(
    template_id: int = typer.Argument(..., help="The template's id (see `list`)."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Delete one language variant of a template at Meta and in Puente."""
    from puente.accounts.service import enter_workspace
    from puente.outbound.templates.service import access_template, do_delete_template
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = enter_workspace(session, workspace)
            t = access_template(session, ws.id, template_id)
            label = f"{t.name} ({t.language})"
            do_delete_template(session, runtime, t)
    except PuenteError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"template {label} deleted")
