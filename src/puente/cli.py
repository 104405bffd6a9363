"""The `puente` command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from puente.accounts.cli import register as register_accounts
from puente.accounts.privacy_cli import register as register_privacy
from puente.automation.kb_cli import kb_cli
from puente.automation.workflows.cli import workflows_cli
from puente.channels.cli import channels_cli
from puente.cli_errors import handled_errors
from puente.config import get_settings
from puente.contacts.cli import contacts_cli
from puente.contacts.merge_cli import merge_command as _merge_command  # noqa: F401 (registers)
from puente.conversations.media_cli import media_cli
from puente.integrations.webhooks.cli import webhooks_cli
from puente.outbound.broadcasts.cli import broadcasts_cli
from puente.outbound.outbox.cli import outbox_cli
from puente.outbound.outbox.cli import send as send_command
from puente.outbound.templates.cli import templates_cli
from puente.portability.cli import register as register_portability
from puente.reports.cli import reports_cli
from puente.sandbox.cli import sandbox_command

if TYPE_CHECKING:
    from puente.runtime import Runtime

app = typer.Typer(help="Puente: a WhatsApp team inbox built for coexistence.", no_args_is_help=True)
workspaces_cli = typer.Typer(help="Workspaces.", no_args_is_help=True)
tokens_cli = typer.Typer(help="REST API tokens.", no_args_is_help=True)
app.add_typer(workspaces_cli, name="workspaces")
app.add_typer(tokens_cli, name="tokens")
app.add_typer(channels_cli, name="channels")
events_cli = typer.Typer(help="Webhook events that failed processing.", no_args_is_help=True)
app.add_typer(events_cli, name="events")
app.add_typer(templates_cli, name="templates")
register_accounts(app, tokens_cli)
register_privacy(app)
register_portability(app)
app.command("sandbox")(sandbox_command)
app.add_typer(outbox_cli, name="outbox")
app.add_typer(broadcasts_cli, name="broadcasts")
app.add_typer(media_cli, name="media")
app.add_typer(contacts_cli, name="contacts")
app.add_typer(reports_cli, name="reports")
app.add_typer(kb_cli, name="kb")
app.add_typer(workflows_cli, name="workflows")
app.add_typer(webhooks_cli, name="webhooks")
app.command("send")(send_command)


def _setup_logging() -> None:
    from puente.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)


def _prepare_database(runtime: Runtime) -> None:
    """Refuse to start on a database whose schema is not current (its pages would fail and
    its workers log errors in a loop); a new SQLite database is migrated here."""
    from puente.db.schema import prepare_schema

    if prepare_schema(runtime.db):
        typer.echo(f"new database: created its schema in {runtime.db.engine.url.database}")


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
    from puente.runtime import Runtime

    _setup_logging()
    settings = get_settings()
    runtime = Runtime.from_settings(settings)
    _prepare_database(runtime)
    application = create_app(settings, runtime.db, run_workers=workers)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # JSON lines: uvicorn's own loggers go through the root logger's JSON handler.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )


@app.command()
def demo(
    port: int = typer.Option(None, help="Puente's port (PUENTE_PORT, default 8000)."),
    sandbox_port: int = typer.Option(8001, envvar="PUENTE_DEMO_SANDBOX_PORT"),
    traffic: bool = typer.Option(
        True, envvar="PUENTE_DEMO_TRAFFIC", help="Customers write now and then."
    ),
    chats: int = typer.Option(200, envvar="PUENTE_DEMO_CHATS", help="History chats to import."),
    messages: int = typer.Option(15, envvar="PUENTE_DEMO_MESSAGES", help="Messages per chat."),
) -> None:
    """Run Puente and the Meta sandbox together, seeded: one coexistence number with six
    months of history, one Cloud API number (SQLite in ./var unless configured)."""
    from puente.demo import DemoOptions, run_demo

    _setup_logging()
    settings = get_settings()
    if port:
        settings = settings.model_copy(
            update={"port": port, "base_url": f"http://{settings.host}:{port}"}
        )
    run_demo(
        settings,
        DemoOptions(
            sandbox_port=sandbox_port, traffic=traffic, chats=chats, messages_per_chat=messages
        ),
    )


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
    from puente.accounts.service import enter_workspace
    from puente.accounts.tokens import do_create_token
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        issued = do_create_token(session, workspace_id=ws.id, name=name, scopes=scope or None)
    typer.echo(issued.secret)


@app.command()
def worker() -> None:
    """Run the background workers (webhook processing and others) without the web server,
    until Ctrl-C."""
    import signal
    import threading

    from puente.runtime import Runtime
    from puente.workers import install_workers

    _setup_logging()
    # Only the workers: the web app's routes and templates are not built here.
    runtime = Runtime.from_settings(get_settings())
    _prepare_database(runtime)
    install_workers(runtime)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime.start_workers()
    typer.echo(f"running {len(runtime.workers)} workers; Ctrl-C to stop")
    while not stop.wait(1.0):
        pass
    runtime.stop_workers()
    runtime.db.dispose()


@events_cli.command("failed")
def events_failed(limit: int = typer.Option(100, help="Show at most this many.")) -> None:
    """List failed webhook events and failed or parked changes, with their reason."""
    from rich.console import Console
    from rich.table import Table

    from puente.ingest.failures import list_failures
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read(unscoped="the installation's failed webhooks") as session:
        failures = list_failures(session, None, limit)
    if not failures:
        typer.echo("no failed webhook events")
        return
    table = Table("ID", "State", "Field", "Phone number ID", "Attempts", "When (UTC)", "Reason")
    for f in failures:
        table.add_row(
            f.ref,
            f.state,
            f.field or "",
            f.phone_number_id or "",
            str(f.attempts),
            f.at.strftime("%Y-%m-%d %H:%M:%S"),
            f.reason or "",
        )
    Console().print(table)


@events_cli.command("retry")
def events_retry(
    ref: str = typer.Argument(None, help="An ID from `puente events failed` (E12, C34)."),
    all_: bool = typer.Option(False, "--all", help="Every failed event and change."),
) -> None:
    """Queue failed webhook events or changes to be processed again."""
    from puente.errors import PuenteError
    from puente.ingest.failures import do_retry_all, do_retry_change, do_retry_event
    from puente.runtime import Runtime

    if all_ == bool(ref):
        raise typer.BadParameter("give one ID (E12, C34) or --all")
    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work(unscoped="the installation's failed webhooks") as session:
            if all_:
                count = do_retry_all(session)
                message = f"queued {count.events} events and {count.changes} changes again"
            elif ref[:1].upper() == "E" and ref[1:].isdigit():
                do_retry_event(session, None, int(ref[1:]))
                message = f"event {ref[1:]} queued again"
            elif ref[:1].upper() == "C" and ref[1:].isdigit():
                do_retry_change(session, None, int(ref[1:]))
                message = f"change {ref[1:]} queued again"
            else:
                raise typer.BadParameter("IDs look like E12 (an event) or C34 (a change)")
    except PuenteError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(message + "; a running worker picks it up")


def main(argv: list[str] | None = None) -> None:
    """The `puente` command: every error it knows ends in one line and an exit status."""
    with handled_errors():
        app(args=argv, prog_name="puente")
