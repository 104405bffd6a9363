"""`puente sandbox`: run the Meta sandbox standalone on its own port."""

from __future__ import annotations

from pathlib import Path

import typer


def sandbox_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8001, help="Port to listen on."),
    callback_url: str = typer.Option(
        None, help="Webhook callback URL (e.g. Puente's /webhooks/whatsapp)."
    ),
    app_secret: str = typer.Option("sandbox-app-secret", help="App secret used to sign webhooks."),
    verify_token: str = typer.Option(
        "sandbox-verify-token", help="Verify token for the handshake."
    ),
    access_token: str = typer.Option(
        "sandbox-token", help="System user token the Graph API accepts."
    ),
    state: Path = typer.Option(None, help="JSON file to load the state from and save it to."),
    batch_size: int = typer.Option(1, help="Updates per webhook POST (Meta batches up to 1000)."),
) -> None:
    """Run the Meta sandbox: Graph API, signed webhooks, control API and the simulated phone."""
    import uvicorn

    from puente.sandbox import SandboxConfig, create_sandbox_app

    config = SandboxConfig(
        callback_url=callback_url,
        app_secret=app_secret,
        verify_token=verify_token,
        access_token=access_token,
        state_file=state,
        batch_size=batch_size,
        freeze_gc=True,
    )
    app = create_sandbox_app(config)
    base = f"http://{host}:{port}"
    typer.echo(f"Meta sandbox at {base}  (Graph API: {base}/v23.0, token: {access_token})")
    typer.echo(f"Phone page: {base}/_sandbox/phone   Control API: {base}/_sandbox/api/docs")
    # Open phone pages hold event streams; do not let them delay Ctrl+C for long.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
