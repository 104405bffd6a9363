"""The `puente` command."""

from __future__ import annotations

import logging

import typer

from puente.config import get_settings

app = typer.Typer(help="Puente: a WhatsApp team inbox built for coexistence.", no_args_is_help=True)
workspaces_cli = typer.Typer(help="Workspaces.", no_args_is_help=True)
tokens_cli = typer.Typer(help="REST API tokens.", no_args_is_help=True)
app.add_typer(workspaces_cli, name="workspaces")
app.add_typer(tokens_cli, name="tokens")


def _setup_logging() -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from puente.db.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url())
    typer.echo("database is up to date")


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (PUENTE_HOST)."),
    port: int = typer.Option(None, help="Port to listen on (PUENTE_PORT)."),
    workers: bool = typer.Option(True, help="Run background workers in this process."),
) -> None:
    """Run the web server (UI, REST API and webhook endpoint)."""
    import uvicorn

    from puente.app import create_app

    _setup_logging()
    settings = get_settings()
    application = create_app(settings, run_workers=workers)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def demo() -> None:
    """Migrate, seed a demo workspace and serve it (SQLite in ./var unless configured)."""
    from puente.demo import run_demo

    _setup_logging()
    run_demo(get_settings())


@workspaces_cli.command("create")
def workspace_create(name: str, slug: str = typer.Option(None, help="Short unique name.")) -> None:
    """Create a workspace."""
    from puente.accounts.service import do_create_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = do_create_workspace(session, name=name, slug=slug)
        typer.echo(f"workspace {ws.slug} created (id {ws.id})")


@tokens_cli.command("create")
def token_create(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    name: str = typer.Option("cli", help="A label for the token."),
    scope: list[str] = typer.Option(None, help="Scopes (repeat); default all."),
) -> None:
    """Create an API token and print it once."""
    from puente.accounts.service import access_workspace_by_name
    from puente.accounts.tokens import do_create_token
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = access_workspace_by_name(session, workspace)
        issued = do_create_token(session, workspace_id=ws.id, name=name, scopes=scope or None)
    typer.echo(issued.secret)


def main() -> None:
    app()
