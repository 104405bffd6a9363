"""`puente channels`: connect a number by hand and list the connected ones."""

from __future__ import annotations

import typer

from puente.channels.chat_links_cli import register as register_links
from puente.channels.models import ChannelMode
from puente.channels.onboarding_cli import register as register_onboarding

channels_cli = typer.Typer(help="WhatsApp numbers (channels).", no_args_is_help=True)


@channels_cli.command("add")
def channel_add(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    phone_number_id: str = typer.Option(..., help="Phone number id from WhatsApp > API Setup."),
    waba_id: str = typer.Option(..., help="WhatsApp Business Account id."),
    display_phone: str = typer.Option(..., help="The number with country code, any format."),
    token: str = typer.Option(
        ...,
        help="System-user access token (stored encrypted).",
        envvar="PUENTE_CHANNEL_TOKEN",
        prompt=True,
        hide_input=True,
    ),
    mode: ChannelMode = typer.Option(ChannelMode.COEXISTENCE, help="coexistence or cloud_api."),
    name: str = typer.Option(None, help="A label agents see; defaults to the number."),
) -> None:
    """Connect a number with ids and a token copied from Meta's dashboard."""
    from puente.accounts.service import enter_workspace
    from puente.channels.service import NewChannel, do_create_channel
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        channel = do_create_channel(
            session,
            runtime.settings,
            runtime.secrets,
            workspace_id=ws.id,
            new=NewChannel(
                phone_number_id=phone_number_id,
                waba_id=waba_id,
                display_phone_number=display_phone,
                access_token=token,
                name=name,
                mode=mode,
            ),
        )
        typer.echo(
            f"channel {channel.id} connected: +{channel.display_phone_number} "
            f"({channel.mode}, {channel.throughput_mps} msg/s)"
        )


@channels_cli.command("list")
def channel_list(
    workspace: str = typer.Option(None, help="Only this workspace (name or slug)."),
) -> None:
    """List connected numbers and their connection state."""
    from sqlalchemy import select

    from puente.accounts.models import Workspace
    from puente.accounts.service import enter_workspace
    from puente.channels.models import Channel
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    # Without --workspace: the numbers of every workspace, as the operator asked.
    with runtime.db.read(unscoped=None if workspace else "every workspace's numbers") as session:
        query = (
            select(Channel, Workspace.slug)
            .join(Workspace, Workspace.id == Channel.workspace_id)
            .order_by(Workspace.slug, Channel.id)
        )
        if workspace:
            ws = enter_workspace(session, workspace)
            query = query.where(Channel.workspace_id == ws.id)
        lines = [
            f"{channel.id}\t{slug}\t+{channel.display_phone_number}\t{channel.phone_number_id}\t"
            f"{channel.mode}\t{channel.connection_state}\t{channel.name}"
            for channel, slug in session.execute(query)
        ]
    typer.echo("\n".join(lines) if lines else "no channels")


register_onboarding(channels_cli)
register_links(channels_cli)
