"""`puente media`: retry media downloads now. Its own module, so the command line does not
import the web framework the media API needs."""

from __future__ import annotations

import typer
from sqlalchemy import func, select

from puente.conversations.media_worker import MediaDownloader, do_retry
from puente.conversations.models import Media

media_cli = typer.Typer(help="Media files of messages.", no_args_is_help=True)


@media_cli.command("retry")
def retry_command(
    failed: bool = typer.Option(
        False, "--failed", help="Also give downloads that gave up a fresh round of attempts."
    ),
    run: bool = typer.Option(
        False, "--run", help="Download them in this command instead of leaving it to the worker."
    ),
) -> None:
    """Retry media downloads now instead of waiting for their next attempt."""
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work(unscoped="media downloads of every workspace") as session:
        count = do_retry(session, include_failed=failed)
    typer.echo(f"{count} media download(s) due now")
    if not run:
        return
    downloader = MediaDownloader(runtime)
    while downloader.step():
        pass
    with runtime.db.read(unscoped="media downloads of every workspace") as session:
        rows = session.execute(select(Media.state, func.count()).group_by(Media.state)).all()
    typer.echo(", ".join(f"{state}: {n}" for state, n in sorted(rows)) or "no media")
