"""Data-protection commands of the `puente` CLI: `retention run`, `contacts export`,
`contacts erase` and `contacts legal-hold`. The operator is audited as "cli"."""

from __future__ import annotations

from pathlib import Path

import typer

# One `puente contacts` group holds the CSV import and these per-contact commands.
from puente.contacts.cli import contacts_cli

retention_cli = typer.Typer(help="Retention: purge old messages and media.", no_args_is_help=True)
CLI_ACTOR = "cli"


def register(app: typer.Typer) -> None:
    app.add_typer(retention_cli, name="retention")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _contact_workspace(session: object, contact_id: int, workspace: str | None) -> int:
    """The workspace of a contact (ids are unique across workspaces); with --workspace,
    a contact of another workspace is not found."""
    from sqlalchemy.orm import Session

    from puente.accounts.service import enter_workspace
    from puente.contacts.models import Contact
    from puente.db.scope import set_scope, unscoped
    from puente.errors import NotFound

    assert isinstance(session, Session)
    if workspace:
        ws = enter_workspace(session, workspace)
        if session.get(Contact, contact_id) is None:
            raise NotFound(f"no contact {contact_id} in workspace '{workspace}'")
        return ws.id
    with unscoped(session, "finding the workspace of a contact the operator named"):
        contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    set_scope(session, contact.workspace_id)
    return contact.workspace_id


@retention_cli.command("run")
def retention_run(
    workspace: str = typer.Option(None, help="Only this workspace (name or slug)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
) -> None:
    """Delete messages (with their media rows and unshared files) older than each
    workspace's retention period, except for contacts under legal hold; then processed
    raw webhook bodies older than PUENTE_WEBHOOK_RETENTION_DAYS (installation-wide)."""
    from rich.progress import Progress, TaskID

    from puente.accounts.privacy import (
        PurgeCounts,
        PurgeReport,
        run_retention,
        run_webhook_retention,
    )
    from puente.accounts.service import enter_workspace
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    only: list[int] | None = None
    try:
        if workspace:
            with runtime.db.read() as session:
                only = [enter_workspace(session, workspace).id]
    except PuenteError as exc:
        raise _fail(exc.message) from None

    with Progress(transient=False) as progress:
        task: list[TaskID] = []

        def on_start(report: PurgeReport, due: int) -> None:
            verb = "would purge" if report.dry_run else "purging"
            task[:] = [progress.add_task(f"{report.workspace_name}: {verb}", total=due or 1)]
            if report.dry_run or not due:
                progress.update(task[0], completed=due or 1)

        def on_progress(step: PurgeCounts) -> None:
            if task:
                progress.advance(task[0], step.messages)

        reports = run_retention(
            runtime.db,
            runtime.settings.data_dir / "media",
            only,
            dry_run=dry_run,
            on_start=on_start,
            on_progress=on_progress,
        )
    if not reports:
        typer.echo("no workspace has a retention period (set it in /settings/security)")
    for r in reports:
        c = r.counts
        verb = "would delete" if dry_run else "deleted"
        typer.echo(
            f"{r.workspace_name} (keeps {r.days} days): {verb} {c.messages} messages, "
            f"{c.media_rows} media rows, {c.media_files} files, {c.status_events} status events"
        )
    if workspace:
        return  # raw webhook bodies belong to no workspace: only a full run prunes them
    days = runtime.settings.webhook_retention_days
    pruned = run_webhook_retention(runtime.db, days, dry_run=dry_run)
    if pruned is None:
        typer.echo("raw webhook events: kept forever (PUENTE_WEBHOOK_RETENTION_DAYS=0)")
    else:
        verb = "would delete" if dry_run else "deleted"
        typer.echo(
            f"raw webhook events (keeps {days} days): {verb} {pruned.events} processed "
            f"events, {pruned.changes} processed changes"
        )


@contacts_cli.command("export")
def contacts_export(
    contact_id: int = typer.Argument(..., help="The contact's id."),
    output: Path = typer.Option(..., "-o", "--output", help="The zip file to write."),
    workspace: str = typer.Option(None, help="Check the contact belongs to this workspace."),
) -> None:
    """Write everything about one contact to a zip: JSON files and media."""
    from puente.accounts.privacy_export import do_export_contact
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    partial = output.with_name(output.name + ".part")
    try:
        with runtime.db.unit_of_work() as session, partial.open("wb") as out:
            ws_id = _contact_workspace(session, contact_id, workspace)
            counts = do_export_contact(
                session, CLI_ACTOR, ws_id, contact_id, runtime.settings.data_dir / "media", out
            )
    except PuenteError as exc:
        partial.unlink(missing_ok=True)
        raise _fail(exc.message) from None
    partial.replace(output)
    typer.echo(
        f"wrote {output}: {counts.conversations} conversations, {counts.messages} messages, "
        f"{counts.media_files} media files"
    )


@contacts_cli.command("erase")
def contacts_erase(
    contact_id: int = typer.Argument(..., help="The contact's id."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
    workspace: str = typer.Option(None, help="Check the contact belongs to this workspace."),
) -> None:
    """Erase a contact and everything about it (refused under legal hold)."""
    from puente.accounts.privacy import do_erase_contact
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    if not yes:
        raise _fail("erasing cannot be undone; run again with --yes")
    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws_id = _contact_workspace(session, contact_id, workspace)
            counts = do_erase_contact(
                session, CLI_ACTOR, ws_id, contact_id, runtime.settings.data_dir / "media"
            )
    except PuenteError as exc:
        raise _fail(exc.message) from None
    typer.echo(
        f"contact {contact_id} erased: {counts.conversations} conversations, "
        f"{counts.messages} messages, {counts.media_files} media files"
    )


@contacts_cli.command("legal-hold")
def contacts_legal_hold(
    contact_id: int = typer.Argument(..., help="The contact's id."),
    off: bool = typer.Option(False, "--off", help="Lift the hold instead of placing it."),
    workspace: str = typer.Option(None, help="Check the contact belongs to this workspace."),
) -> None:
    """Place a contact under legal hold (retention skips it, erasure is refused), or
    lift it with --off."""
    from puente.accounts.privacy import do_set_legal_hold
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws_id = _contact_workspace(session, contact_id, workspace)
            do_set_legal_hold(session, CLI_ACTOR, ws_id, contact_id, not off)
    except PuenteError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"contact {contact_id}: legal hold {'lifted' if off else 'placed'}")
