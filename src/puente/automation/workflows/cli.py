"""`puente workflows list|export|import|publish|enable|disable|runs`: a workspace's
workflows from the terminal, and their files (JSON) to keep, review or move to another
workspace or installation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

workflows_cli = typer.Typer(
    help="Workflows: list, export and import (JSON), publish, switch on and off, runs.",
    no_args_is_help=True,
)

WorkspaceOpt = typer.Option(..., "--workspace", "-w", help="Workspace name or slug.")
USER_ERROR = 2
# The audit log's name for whoever runs the command (the broadcast commands' too).
ACTOR = "CLI"

T = TypeVar("T")


@contextmanager
def _workspace(workspace: str, *, write: bool) -> Iterator[tuple[Session, int]]:
    """A unit of work (or a read) scoped to the named workspace."""
    from puente.accounts.service import enter_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() if write else runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        yield session, ws.id


def _on_workflow(workspace: str, workflow_id: int, change: Callable[[Session, Any], T]) -> T:
    from puente.automation.workflows.service import access_workflow

    with _workspace(workspace, write=True) as (session, workspace_id):
        return change(session, access_workflow(session, workspace_id, workflow_id))


@workflows_cli.command("list")
def list_cmd(workspace: str = WorkspaceOpt) -> None:
    """Each workflow: id, on or off, published version, trigger, runs going and failed."""
    from puente.automation.workflows.service import list_workflows

    with _workspace(workspace, write=False) as (session, workspace_id):
        views = list_workflows(session, workspace_id)
        rows = [
            (
                str(v.workflow.id),
                "on" if v.workflow.enabled else "off",
                f"v{v.version_number}" if v.version_number else "draft",
                v.workflow.trigger_type or "-",
                f"{v.active_runs} going, {v.failed_runs} failed",
                v.workflow.name
                + (" (draft changed)" if v.version_number and v.draft_changed else ""),
            )
            for v in views
        ]
    if not rows:
        typer.echo("no workflows")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[5]]))


@workflows_cli.command("export")
def export_cmd(
    workflow_id: int = typer.Argument(..., help="The workflow's id (see `list`)."),
    workspace: str = WorkspaceOpt,
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False, help="Default: stdout."),
    published: bool = typer.Option(False, help="The published version instead of the draft."),
) -> None:
    """Write the workflow as a file (JSON) that `import` takes."""
    from puente.automation.workflows.service import access_workflow, export_workflow

    with _workspace(workspace, write=False) as (session, workspace_id):
        workflow = access_workflow(session, workspace_id, workflow_id)
        document = export_workflow(session, workflow, published=published)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"workflow {workflow_id} written to {output}", err=True)


@workflows_cli.command("import")
def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A workflow file (JSON)."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Add the file's workflow as a new draft: publish it here to check its agents, teams
    and templates against this workspace. A field Puente does not know, or another
    format version, is refused and nothing changes."""
    from puente.automation.workflows.service import do_import_workflow, parse_workflow_file

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        typer.echo(f"puente: error: {file}: not JSON ({exc})", err=True)
        raise typer.Exit(USER_ERROR) from None
    parse_workflow_file(data)  # a bad file is refused before the database is opened
    with _workspace(workspace, write=True) as (session, workspace_id):
        workflow = do_import_workflow(session, workspace_id, data, ACTOR)
        workflow_id, name = workflow.id, workflow.name
    typer.echo(f"workflow {workflow_id} “{name}” imported as a draft")


@workflows_cli.command("publish")
def publish_cmd(
    workflow_id: int = typer.Argument(..., help="The workflow's id."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Check the draft and publish it as the next version; each problem is named."""
    from puente.automation.workflows.service import PublishRefused, do_publish

    try:
        number = _on_workflow(workspace, workflow_id, lambda s, w: do_publish(s, w, ACTOR).number)
    except PublishRefused as exc:
        typer.echo("puente: error: the workflow cannot be published:", err=True)
        for detail in exc.details if isinstance(exc.details, list) else []:
            typer.echo(f"  {detail['field']}: {detail['message']}", err=True)
        raise typer.Exit(USER_ERROR) from None
    typer.echo(f"workflow {workflow_id} published as version {number}")


@workflows_cli.command("enable")
def enable_cmd(
    workflow_id: int = typer.Argument(..., help="The workflow's id."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Switch the workflow on (it needs a published version)."""
    from puente.automation.workflows.service import do_set_enabled

    _on_workflow(workspace, workflow_id, lambda s, w: do_set_enabled(s, w, True, ACTOR))
    typer.echo(f"workflow {workflow_id} is on")


@workflows_cli.command("disable")
def disable_cmd(
    workflow_id: int = typer.Argument(..., help="The workflow's id."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Switch the workflow off; its runs still going are stopped."""
    from puente.automation.workflows.service import do_set_enabled

    _on_workflow(workspace, workflow_id, lambda s, w: do_set_enabled(s, w, False, ACTOR))
    typer.echo(f"workflow {workflow_id} is off")


@workflows_cli.command("runs")
def runs_cmd(
    workflow_id: int = typer.Argument(..., help="The workflow's id."),
    workspace: str = WorkspaceOpt,
    status: str = typer.Option(
        None, help="Only runs in this state: ready, waiting, asking, done, failed, stopped."
    ),
    limit: int = typer.Option(50, min=1, max=1000, help="Show at most this many."),
) -> None:
    """The workflow's runs, newest first, with why a run failed or stopped."""
    from puente.automation.workflows.models import RunStatus, english
    from puente.automation.workflows.service import access_workflow, runs_of
    from puente.errors import InvalidInput

    if status is not None and status not in set(RunStatus):
        raise InvalidInput(f"unknown status {status!r} (use {', '.join(RunStatus)})")
    with _workspace(workspace, write=False) as (session, workspace_id):
        workflow = access_workflow(session, workspace_id, workflow_id)
        runs = runs_of(session, workspace_id, workflow_id=workflow.id, status=status, limit=limit)
        lines = [
            "  ".join(
                [
                    f"run {run.id}",
                    run.status.ljust(7),
                    run.created_at.strftime("%Y-%m-%d %H:%M"),
                    f"contact {run.contact_id}" if run.contact_id else "no contact",
                    f"step {run.step_id}" if run.step_id else "",
                    ("test " if run.test else "") + english(run.error, run.error_params),
                ]
            ).rstrip()
            for run in runs
        ]
    typer.echo("\n".join(lines) if lines else "no runs")
