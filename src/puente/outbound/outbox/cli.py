"""`puente send` and `puente outbox ...`: queue a message and look after the outbox."""

from __future__ import annotations

from typing import Any

import typer

outbox_cli = typer.Typer(
    help="The outbox: what is waiting, failed or unknown.", no_args_is_help=True
)


def send(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    to: str = typer.Option(None, help="Phone number in E.164, e.g. +5215512345678."),
    conversation: int = typer.Option(None, help="Or a conversation id."),
    channel: int = typer.Option(None, help="The sending number's channel id."),
    text: str = typer.Option(None, help="Free text (needs an open 24 h window)."),
    template: str = typer.Option(None, help="Or an approved template's name."),
    language: str = typer.Option("es", help="The template's language code."),
    param: list[str] = typer.Option(None, help="Template body parameters, in order (repeat)."),
) -> None:
    """Queue a message; a running worker sends it."""
    from puente.accounts.service import enter_workspace
    from puente.conversations.models import MessageSource
    from puente.errors import PuenteError
    from puente.outbound.outbox.service import do_queue_message
    from puente.runtime import Runtime

    if (text is None) == (template is None):
        raise typer.BadParameter("give exactly one of --text or --template")
    content: dict[str, Any]
    if text is not None:
        message_type, content = "text", {"body": text}
    else:
        message_type = "template"
        content = {"name": template, "language": {"code": language}}
        if param:
            values = [{"type": "text", "text": p} for p in param]
            content["components"] = [{"type": "body", "parameters": values}]
    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = enter_workspace(session, workspace)
            message = do_queue_message(
                session,
                workspace_id=ws.id,
                message_type=message_type,
                content=content,
                conversation_id=conversation,
                to=to,
                channel_id=channel,
                source=MessageSource.API,
            )
            message_id = message.id
    except PuenteError as exc:
        typer.echo(f"not sent: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"message {message_id} queued; follow it with `puente outbox status`")


@outbox_cli.command("status")
def status() -> None:
    """Per number: connection state, throughput and outbox items by state."""
    from rich.console import Console
    from rich.table import Table

    from puente.outbound.outbox.service import outbox_summary
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        lanes = outbox_summary(session)
    table = Table(
        "Channel", "Name", "State", "msg/s", "Queued", "Sending", "Sent", "Failed", "Unknown"
    )
    for lane in lanes:
        c = lane.counts
        table.add_row(
            str(lane.channel_id),
            lane.channel_name,
            lane.connection_state,
            str(lane.throughput_mps),
            str(c.get("queued", 0)),
            str(c.get("sending", 0) - len(lane.unknown)),
            str(c.get("sent", 0)),
            str(c.get("failed", 0)),
            ", ".join(str(i) for i in lane.unknown) or "0",
        )
    Console().print(table)
    if any(lane.unknown for lane in lanes):
        typer.echo(
            "Unknown items were interrupted after they may have reached Meta. Check on the "
            "phone whether the customer got them; if not, `puente outbox resend ID`."
        )


@outbox_cli.command("resend")
def resend(item_id: int) -> None:
    """Queue again a failed item, or one whose sending is unknown (check the phone first)."""
    from puente.errors import PuenteError
    from puente.outbound.models import OutboxItem
    from puente.outbound.outbox.service import do_resend
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            item = session.get(OutboxItem, item_id)
            if item is None:
                typer.echo(f"no outbox item {item_id}", err=True)
                raise typer.Exit(1)
            do_resend(session, workspace_id=item.workspace_id, item_id=item_id)
    except PuenteError as exc:
        typer.echo(f"not resent: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"outbox item {item_id} queued again")
