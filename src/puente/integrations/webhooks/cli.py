"""`puente webhooks list|add|remove|test|deliveries|resend`: a workspace's outgoing webhook
endpoints and their delivery log from the terminal. Refusals are one line on stderr
(`puente.cli_errors`); changes are audited with the actor "cli"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from puente.runtime import Runtime

webhooks_cli = typer.Typer(
    help="Outgoing webhooks: endpoints, test events, the delivery log, resends.",
    no_args_is_help=True,
)

WorkspaceOpt = typer.Option(..., "--workspace", "-w", help="Workspace name or slug.")
ACTOR = "cli"


def _open(workspace: str) -> tuple[Runtime, int]:
    from puente.accounts.service import enter_workspace
    from puente.integrations.webhooks.service import configure
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    configure(
        runtime.db,
        secrets=runtime.secrets,
        allow_private=runtime.settings.webhooks_allow_private,
    )
    with runtime.db.read() as session:
        workspace_id = enter_workspace(session, workspace).id
    return runtime, workspace_id


@webhooks_cli.command("list")
def list_cmd(workspace: str = WorkspaceOpt) -> None:
    """The workspace's endpoints: id, state, URL and events."""
    from puente.integrations.webhooks import service as hooks

    runtime, workspace_id = _open(workspace)
    with runtime.db.read(scope=workspace_id) as session:
        endpoints = hooks.list_endpoints(session)
        if not endpoints:
            typer.echo("no webhook endpoints")
        for e in endpoints:
            state = "on" if e.enabled else f"off ({e.disabled_reason or 'switched off'})"
            number = f" number={e.channel_id}" if e.channel_id else ""
            typer.echo(f"{e.id:>5}  {state:<8} {e.url}  [{', '.join(e.events)}]{number}")


@webhooks_cli.command("add")
def add_cmd(
    url: str = typer.Argument(..., help="Where deliveries are POSTed (http or https)."),
    workspace: str = WorkspaceOpt,
    event: list[str] = typer.Option(
        ..., "--event", "-e", help="An event type to send (repeat for more), e.g. message.created."
    ),
    number: int | None = typer.Option(None, help="Only the events of this number (channel id)."),
    description: str = typer.Option("", help="A note for the team."),
) -> None:
    """Add an endpoint and print its signing secret, shown only this once."""
    from puente.integrations.webhooks import service as hooks

    runtime, workspace_id = _open(workspace)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        endpoint, secret = hooks.create_endpoint(
            session,
            url=url,
            events=event,
            channel_id=number,
            description=description,
            actor=ACTOR,
        )
        endpoint_id = endpoint.id
    typer.echo(f"endpoint {endpoint_id} added")
    typer.echo(f"secret: {secret}")
    typer.echo("keep it now: it is not shown again (rotate it from the API or the web page)")


@webhooks_cli.command("remove")
def remove_cmd(
    endpoint_id: int = typer.Argument(..., help="The endpoint's id."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Delete an endpoint and its delivery log."""
    from puente.integrations.webhooks import service as hooks

    runtime, workspace_id = _open(workspace)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        hooks.delete_endpoint(session, endpoint_id, actor=ACTOR)
    typer.echo(f"endpoint {endpoint_id} removed")


@webhooks_cli.command("test")
def test_cmd(
    endpoint_id: int = typer.Argument(..., help="The endpoint's id."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Send a "webhook.test" event now and print what the receiver answered."""
    from puente.integrations.webhooks import service as hooks
    from puente.integrations.webhooks.worker import deliver_due

    runtime, workspace_id = _open(workspace)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        delivery_id = hooks.send_test(session, endpoint_id, actor=ACTOR).id
    deliver_due(runtime.db, only=[delivery_id])
    with runtime.db.read(scope=workspace_id) as session:
        delivery = hooks.get_delivery(session, delivery_id)
        typer.echo(_line(delivery))
        if delivery.state != "delivered":
            raise typer.Exit(1)


def _line(d: object) -> str:
    from puente.integrations.webhooks.models import WebhookDelivery

    assert isinstance(d, WebhookDelivery)
    answer = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "")
    sequence = f" #{d.sequence}" if d.sequence is not None else ""
    return (
        f"{d.id:>7}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.event_type:<28}{sequence:<6} "
        f"{d.state:<9} tries={d.attempts} {answer}"
    ).rstrip()


@webhooks_cli.command("deliveries")
def deliveries_cmd(
    endpoint_id: int = typer.Argument(..., help="The endpoint's id."),
    workspace: str = WorkspaceOpt,
    state: str | None = typer.Option(None, help="pending, delivered or failed."),
    limit: int = typer.Option(50, min=1, max=500, help="How many, newest first."),
) -> None:
    """The endpoint's delivery log, newest first."""
    from puente.integrations.webhooks import service as hooks

    if state is not None and state not in ("pending", "delivered", "failed"):
        typer.echo(
            f"puente: error: --state must be pending, delivered or failed, not {state!r}", err=True
        )
        raise typer.Exit(2)
    runtime, workspace_id = _open(workspace)
    with runtime.db.read(scope=workspace_id) as session:
        hooks.get_endpoint(session, endpoint_id)
        found = hooks.list_deliveries(session, endpoint_id, state=state, limit=limit)
        if not found:
            typer.echo("no deliveries")
        for delivery in found:
            typer.echo(_line(delivery))


@webhooks_cli.command("resend")
def resend_cmd(
    endpoint_id: int = typer.Argument(..., help="The endpoint's id."),
    delivery_id: int | None = typer.Argument(None, help="One delivery; or use --failed."),
    workspace: str = WorkspaceOpt,
    failed: bool = typer.Option(False, "--failed", help="Every failed delivery of the endpoint."),
) -> None:
    """Queue one delivery, or every failed one, to be sent again (by the workers)."""
    from puente.errors import InvalidInput, NotFound
    from puente.integrations.webhooks import service as hooks

    if (delivery_id is None) == (not failed):
        raise InvalidInput("give one delivery id, or --failed")
    runtime, workspace_id = _open(workspace)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        hooks.get_endpoint(session, endpoint_id)
        if delivery_id is None:
            count = hooks.resend_failed(session, endpoint_id, actor=ACTOR)
            typer.echo(f"{count} failed deliveries queued again")
            return
        if hooks.get_delivery(session, delivery_id).endpoint_id != endpoint_id:
            raise NotFound("No such delivery.")
        hooks.resend(session, delivery_id, actor=ACTOR)
    typer.echo(f"delivery {delivery_id} queued again")
