"""`puente broadcasts ...`: create (from tags, a segment, contacts or a CSV file),
list, show progress, pause/resume/cancel/retry failed, export results, set a number's
messaging-limit tier."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

broadcasts_cli = typer.Typer(help="Broadcasts: one template to many people.", no_args_is_help=True)


def _run(workspace: str, fn: Callable[[Any, int], Any]) -> Any:
    from puente.accounts.service import enter_workspace
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = enter_workspace(session, workspace)
            return fn(session, ws.id)
    except PuenteError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        for detail in exc.details if isinstance(exc.details, list) else []:
            typer.echo(f"  {detail}", err=True)
        raise typer.Exit(1) from None


@broadcasts_cli.command("create")
def create(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    template: str = typer.Option(..., help="An approved template's name."),
    language: str = typer.Option("es", help="The template's language code."),
    var: list[str] = typer.Option(None, help='target=value, e.g. "body.1={first_name|amigo}".'),
    tag: list[str] = typer.Option(None, help="Send to contacts with this tag (repeat)."),
    segment: int = typer.Option(None, help="Or a segment id."),
    csv_file: Path = typer.Option(None, "--csv", help="Or a CSV file with a phone column."),
    all_contacts: bool = typer.Option(False, "--all", help="Or every contact."),
    channel: int = typer.Option(None, help="The sending number's channel id."),
    name: str = typer.Option("", help="A name for the broadcast."),
    at: str = typer.Option(None, help="Start time (ISO; without offset: workspace time zone)."),
    dry_run: bool = typer.Option(False, help="Only plan and estimate the cost."),
) -> None:
    """Plan a broadcast and start it (now, or at --at)."""
    from puente.outbound.broadcasts.service import do_create_broadcast

    variables = dict(v.split("=", 1) for v in (var or []) if "=" in v)
    audience: dict[str, Any]
    csv_text = None
    if csv_file is not None:
        audience, csv_text = {"kind": "csv"}, csv_file.read_text("utf-8-sig")
    elif segment is not None:
        audience = {"kind": "segment", "segment_id": segment}
    elif tag:
        audience = {"kind": "tags", "tags": list(tag)}
    elif all_contacts:
        audience = {"kind": "all"}
    else:
        raise typer.BadParameter("give --tag, --segment, --csv or --all")

    def work(session: Any, workspace_id: int) -> dict[str, Any]:
        nested = session.begin_nested()
        b = do_create_broadcast(
            session,
            workspace_id=workspace_id,
            name=name,
            template_name=template,
            language=language,
            variables=variables,
            audience=audience,
            channel_id=channel,
            csv_text=csv_text,
            scheduled_at=at,
            actor="CLI",
            dry_run=dry_run,
        )
        out = {
            "id": None if dry_run else b.id,
            "state": "dry_run" if dry_run else b.state,
            "recipients": b.total,
            "estimate": b.estimate,
            "problems": b.report,
        }
        if dry_run:
            nested.rollback()
        else:
            nested.commit()
        return out

    typer.echo(json.dumps(_run(workspace, work), indent=2, ensure_ascii=False))


@broadcasts_cli.command("list")
def list_(workspace: str = typer.Option(..., help="Workspace name or slug.")) -> None:
    from puente.outbound.broadcasts.service import list_broadcasts, progress

    def work(session: Any, workspace_id: int) -> None:
        for b in list_broadcasts(session, workspace_id):
            p = progress(session, b)
            typer.echo(f"{b.id}\t{b.state}\t{p['percent']}%\t{p['total']}\t{b.name}")

    _run(workspace, work)


@broadcasts_cli.command("show")
def show(
    broadcast_id: int, workspace: str = typer.Option(..., help="Workspace name or slug.")
) -> None:
    """Progress: counts per state."""
    from puente.outbound.broadcasts.service import access_broadcast, progress

    def work(session: Any, workspace_id: int) -> dict[str, Any]:
        return progress(session, access_broadcast(session, workspace_id, broadcast_id))

    typer.echo(json.dumps(_run(workspace, work), indent=2, ensure_ascii=False))


@broadcasts_cli.command("control")
def control(
    broadcast_id: int,
    action: str = typer.Argument(..., help="pause, resume, cancel or retry-failed"),
    workspace: str = typer.Option(..., help="Workspace name or slug."),
) -> None:
    from puente.outbound.broadcasts import service

    actions = {
        "pause": service.do_pause,
        "resume": service.do_resume,
        "cancel": service.do_cancel_broadcast,
        "retry-failed": service.do_retry_failed,
    }
    if action not in actions:
        raise typer.BadParameter(f"action is one of {', '.join(actions)}")

    def work(session: Any, workspace_id: int) -> str:
        b = service.access_broadcast(session, workspace_id, broadcast_id)
        actions[action](session, b, "CLI")
        return str(b.state)

    typer.echo(_run(workspace, work))


@broadcasts_cli.command("export")
def export(
    broadcast_id: int,
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    out: Path = typer.Option(None, help="Write here instead of standard output."),
) -> None:
    from puente.outbound.broadcasts.service import access_broadcast, export_csv

    def work(session: Any, workspace_id: int) -> str:
        return export_csv(session, access_broadcast(session, workspace_id, broadcast_id))

    text = _run(workspace, work)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, "utf-8")


@broadcasts_cli.command("tier")
def tier(
    channel: int,
    value: str = typer.Argument(..., help="250, 2000, 10000, 100000 or unlimited"),
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    portfolio: str = typer.Option(None, help="Business portfolio id shared by numbers."),
) -> None:
    """Set a number's messaging-limit tier."""
    from sqlalchemy import select

    from puente.channels.models import Channel
    from puente.errors import NotFound
    from puente.outbound.broadcasts.tiers import do_set_tier, tier_of

    def work(session: Any, workspace_id: int) -> str:
        row = session.scalar(
            select(Channel).where(Channel.id == channel, Channel.workspace_id == workspace_id)
        )
        if row is None:
            raise NotFound(f"no channel {channel} in this workspace")
        do_set_tier(session, row, value, portfolio)
        return tier_of(row)

    typer.echo(_run(workspace, work))
