"""`puente channels link add|list|qr`: a number's chat links from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

link_cli = typer.Typer(help="Chat links (wa.me) and their QR codes.", no_args_is_help=True)


def register(channels_cli: typer.Typer) -> None:
    channels_cli.add_typer(link_cli, name="link")


WORKSPACE = typer.Option(..., help="Workspace name or slug.")
CHANNEL = typer.Option(..., "--channel", help="The number's channel id (puente channels list).")


@link_cli.command("add")
def link_add(
    workspace: str = WORKSPACE,
    channel: int = CHANNEL,
    name: str = typer.Option(..., help="A name for the team (where the link or code goes)."),
    text: str = typer.Option("", help="The message the chat opens with; the reference follows."),
) -> None:
    """Create a chat link and print it."""
    from puente.accounts.service import enter_workspace
    from puente.channels import chat_links as cl
    from puente.channels.service import access_channel
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        number = access_channel(session, ws.id, channel)
        link = cl.do_create_link(session, number, name=name, text=text, actor="cli")
        typer.echo(f"chat link {link.id} ({link.code}): {cl.url_of(number, link)}")


@link_cli.command("list")
def link_list(workspace: str = WORKSPACE, channel: int = CHANNEL) -> None:
    """The number's chat links: id, reference, conversations started, name, link."""
    from puente.accounts.service import enter_workspace
    from puente.channels import chat_links as cl
    from puente.channels.service import access_channel
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        views = cl.list_links(session, access_channel(session, ws.id, channel))
        lines = [
            f"{v.link.id}\t{v.link.code}\t{v.conversations}\t{v.link.name}\t{v.url}" for v in views
        ]
    typer.echo("\n".join(lines) if lines else "no chat links")


@link_cli.command("qr")
def link_qr(
    link_id: int = typer.Argument(..., help="The chat link's id."),
    workspace: str = WORKSPACE,
    channel: int = CHANNEL,
    output: Path = typer.Option(..., "--output", "-o", help="A .svg or .png file to write."),
    scale: int = typer.Option(10, min=1, max=40, help="Pixels (or SVG units) per module."),
) -> None:
    """Write the link's QR code to a file, SVG or PNG by its extension."""
    from puente.accounts.service import enter_workspace
    from puente.channels import chat_links as cl
    from puente.channels.service import access_channel
    from puente.errors import InvalidInput
    from puente.runtime import Runtime

    kind = output.suffix.lower()
    if kind not in (".svg", ".png"):
        raise InvalidInput("the output file must end in .svg or .png")
    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        number = access_channel(session, ws.id, channel)
        link = cl.access_link(session, number, link_id)
        url = cl.url_of(number, link)
        name = link.name
    data = (
        cl.qr_svg(url, scale=scale, title=name) if kind == ".svg" else cl.qr_png(url, scale=scale)
    )
    output.write_bytes(data)
    typer.echo(f"{output}: QR code of {url}")
