"""Account commands of the `puente` CLI: setup, doctor, tokens list/revoke, audit verify,
secrets rotate, users reset-2fa and reset-password."""

from __future__ import annotations

import typer
from sqlalchemy import select

from puente.db.scope import unscoped

audit_cli = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
secrets_cli = typer.Typer(help="Secrets encrypted at rest.", no_args_is_help=True)
users_cli = typer.Typer(help="People's accounts, across workspaces.", no_args_is_help=True)


def register(app: typer.Typer, tokens_cli: typer.Typer) -> None:
    app.command("setup")(setup)
    app.command("doctor")(doctor)
    app.add_typer(audit_cli, name="audit")
    app.add_typer(secrets_cli, name="secrets")
    app.add_typer(users_cli, name="users")
    tokens_cli.command("list")(tokens_list)
    tokens_cli.command("revoke")(tokens_revoke)


def setup(
    workspace: str = typer.Option(..., help="Name of the workspace."),
    email: str = typer.Option(..., help="The owner's email address."),
    password: str = typer.Option(..., help="The owner's password (10+ characters)."),
    name: str = typer.Option("", help="The owner's name."),
    timezone: str = typer.Option("UTC", help="The workspace's time zone."),
) -> None:
    """First run: create the workspace and its owner (refused once anyone exists)."""
    from puente.accounts.service import do_setup
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws, user = do_setup(
                session,
                workspace_name=workspace,
                email=email,
                password=password,
                name=name,
                timezone=timezone,
            )
            typer.echo(f"workspace {ws.slug} created; owner {user.email}")
    except PuenteError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def tokens_list(workspace: str = typer.Option(..., help="Workspace name or slug.")) -> None:
    """List the workspace's API tokens (never the secrets)."""
    from puente.accounts.service import enter_workspace
    from puente.accounts.tokens import list_tokens
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        ws = enter_workspace(session, workspace)
        for t in list_tokens(session, ws.id):
            state = "revoked" if t.revoked_at else "active"
            used = t.last_used_at.isoformat() if t.last_used_at else "never"
            typer.echo(f"{t.id}\t{t.prefix}…\t{t.name}\t{','.join(t.scopes)}\t{state}\t{used}")


def tokens_revoke(
    token_id: int,
    workspace: str = typer.Option(..., help="Workspace name or slug."),
) -> None:
    """Revoke an API token by id."""
    from puente.accounts.service import enter_workspace
    from puente.accounts.tokens import do_revoke_token_audited
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        row = do_revoke_token_audited(session, workspace_id=ws.id, token_id=token_id, actor="cli")
        typer.echo(f"token {row.prefix}… revoked")


@users_cli.command("reset-2fa")
def users_reset_2fa(email: str = typer.Argument(..., help="The person's email address.")) -> None:
    """Turn off someone's two-factor sign-in (lost phone and recovery codes) in every
    workspace; they sign in with their password and enrol again where it is required."""
    from puente.accounts.auth import do_operator_reset_totp
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work(
            unscoped="a person's sign-in spans their workspaces"
        ) as session:
            user = do_operator_reset_totp(session, email)
            typer.echo(f"two-factor sign-in reset for {user.email}; their sessions ended")
    except PuenteError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@users_cli.command("reset-password")
def users_reset_password(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    email: str = typer.Option(..., help="The member's email address."),
) -> None:
    """Print a one-time link (valid one hour) that sets a new password for a member of the
    workspace, owners included; audited in that workspace. For installations without
    SMTP: pass the link on to the person yourself."""
    from puente.accounts.auth import do_operator_issue_reset
    from puente.accounts.service import enter_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.unit_of_work() as session:
        ws = enter_workspace(session, workspace)
        user, token = do_operator_issue_reset(session, ws.id, email)
        link = f"{runtime.settings.base_url.rstrip('/')}/reset/{token}"
    typer.echo(f"password reset link for {user.email} (works once, for one hour):")
    typer.echo(link)


def doctor() -> None:
    """Check the settings production needs (mail, keys, https, dev mail): one line each,
    ok or warn; exits 1 when any is not ready for production."""
    from puente.accounts.doctor import production_checks
    from puente.config import get_settings

    checks = production_checks(get_settings())
    for check in checks:
        typer.echo(check.line())
    unsafe = [c for c in checks if not c.ok]
    if unsafe:
        typer.echo(f"{len(unsafe)} of {len(checks)} checks need attention before going live")
        raise typer.Exit(1)
    typer.echo("ready for production")


@audit_cli.command("verify")
def audit_verify(
    workspace: str = typer.Option(None, help="Only this workspace (name or slug)."),
) -> None:
    """Check the hash chain; exits 1 and names the first bad entry when tampered with."""
    from puente.accounts.audit import verify
    from puente.accounts.service import enter_workspace
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    with runtime.db.read() as session:
        if workspace:
            ws = enter_workspace(session, workspace)
            result = verify(session, ws.id, all_chains=False)
        else:
            with unscoped(session, "verifying every workspace's audit log"):
                result = verify(session)
    for p in result.problems:
        where = f"workspace {p.workspace_id}" if p.workspace_id else "no workspace"
        typer.echo(f"TAMPERED ({where}): {p.message} [{p.kind}]")
    if result.problems:
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {result.checked} entries checked")
    if result.unkeyed:
        typer.echo(
            f"note: {result.unkeyed} older entries were written before the log was keyed; "
            "their chain holds, but it cannot prove they were not rewritten"
        )


@secrets_cli.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt stored secrets with the first key of PUENTE_SECRET_KEY.

    Put the new key first and keep the old ones after it (comma-separated) until this
    command has run; then the old keys can be removed."""
    from puente.accounts.models import User
    from puente.channels.models import Channel
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    box = runtime.secrets
    count = 0
    with runtime.db.unit_of_work(
        unscoped="re-encrypting the secrets of every workspace"
    ) as session:
        for channel in session.scalars(
            select(Channel).where(Channel.access_token_encrypted.is_not(None))
        ):
            assert channel.access_token_encrypted is not None
            channel.access_token_encrypted = box.rotate(channel.access_token_encrypted)
            count += 1
        for user in session.scalars(select(User).where(User.totp_secret_encrypted.is_not(None))):
            assert user.totp_secret_encrypted is not None
            user.totp_secret_encrypted = box.rotate(user.totp_secret_encrypted)
            count += 1
    typer.echo(f"{count} secrets re-encrypted with the newest key")
