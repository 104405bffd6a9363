"""`puente channels onboard` (sandbox signup or Meta's code) and `puente channels status
[--watch]`: each number's connection state and its history import as progress bars."""

from __future__ import annotations

import time
from typing import Any

import typer

from puente.channels.models import OnboardingMethod

PHASES = (("0", "last day"), ("1", "days 1-90"), ("2", "days 90-180"))


def register(channels_cli: typer.Typer) -> None:
    channels_cli.command("onboard")(channel_onboard)
    channels_cli.command("status")(channel_status)


def channel_onboard(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
    method: OnboardingMethod = typer.Option(
        OnboardingMethod.COEXISTENCE, help="coexistence or new_number."
    ),
    phone: str = typer.Option(None, help="Sandbox: the number, with country code."),
    history: bool = typer.Option(True, help="Import up to six months of chats."),
    code: str = typer.Option(None, help="Meta mode: the code from Embedded Signup (30 s)."),
    waba_id: str = typer.Option(None, help="Meta mode: the WABA id from the session info."),
    phone_number_id: str = typer.Option(None, help="Meta mode: the phone number id, if given."),
    timeout: float = typer.Option(300, help="Seconds to wait for the phone's confirmation."),
) -> None:
    """Connect a number: against the sandbox, wait for the code to be confirmed on the
    simulated phone; against Meta, exchange a code from Embedded Signup."""
    from puente.accounts.service import enter_workspace
    from puente.channels import onboarding as ob
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws_id = enter_workspace(session, workspace).id
            if code:
                if not waba_id:
                    raise typer.BadParameter("--waba-id comes with --code")
                signup = ob.SignupResult(method, code, waba_id, phone_number_id)
                row = ob.do_begin_signup_finish(
                    session,
                    runtime.settings,
                    workspace_id=ws_id,
                    signup=signup,
                    import_history=history,
                )
            else:
                if not phone:
                    raise typer.BadParameter("give --phone (sandbox) or --code and --waba-id")
                row = ob.do_start_sandbox_signup(
                    session,
                    runtime.settings,
                    workspace_id=ws_id,
                    method=method,
                    phone=phone,
                    import_history=history,
                )
            onboarding_id, confirm = row.id, row.confirm_code
            number_id = row.phone_number_id
        if code:
            channel_id = ob.connect_from_signup(
                runtime, workspace_id=ws_id, onboarding_id=onboarding_id, signup=signup
            )
            typer.echo(f"connected: channel {channel_id}")
            return
        if method is OnboardingMethod.COEXISTENCE:
            base = runtime.settings.graph_base_url.rstrip("/")
            typer.echo(f"On the phone, open the Business app and enter the code {confirm}")
            typer.echo(f"(simulated phone: {base}/_sandbox/phone/{number_id}/owner)")
        _wait_for(runtime, ws_id, onboarding_id, timeout)
    except ob.OnboardingFailed as exc:
        typer.echo(f"failed: {exc.message}\n{exc.next_step}", err=True)
        raise typer.Exit(1) from None
    except PuenteError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None


def _wait_for(runtime: Any, ws_id: int, onboarding_id: int, timeout: float) -> None:
    from puente.channels import onboarding as ob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ob.advance_sandbox_signup(runtime, ws_id, onboarding_id)
        with runtime.db.read(scope=ws_id) as session:
            row = ob.access_onboarding(session, ws_id, onboarding_id)
            state, channel_id, error = row.state, row.channel_id, row.error
        if state == "connected":
            typer.echo(f"connected: channel {channel_id}")
            return
        if state == "failed":
            message = (error or {}).get("message", "")
            typer.echo(f"failed: {message}\n{(error or {}).get('next_step', '')}", err=True)
            raise typer.Exit(1)
        time.sleep(1.0)
    typer.echo("no confirmation from the phone in time; start again", err=True)
    raise typer.Exit(1)


def _snapshot(runtime: Any, workspace: str | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from puente.accounts.models import Workspace
    from puente.accounts.service import enter_workspace
    from puente.channels.health import access_sync, channel_health
    from puente.channels.models import Channel
    from puente.db.base import utcnow

    now = utcnow()
    out = []
    # Without --workspace: the numbers of every workspace, as the operator asked.
    with runtime.db.read(unscoped=None if workspace else "every workspace's numbers") as session:
        query = select(Channel, Workspace.slug).join(
            Workspace, Workspace.id == Channel.workspace_id
        )
        if workspace:
            query = query.where(Channel.workspace_id == enter_workspace(session, workspace).id)
        for channel, slug in session.execute(query.order_by(Workspace.slug, Channel.id)):
            health = channel_health(channel, access_sync(session, channel), now)
            out.append(
                {
                    "id": channel.id,
                    "slug": slug,
                    "number": channel.display_phone_number,
                    "mode": channel.mode,
                    "health": health,
                }
            )
    return out


def _label(h: Any) -> str:
    label = h.label + (f": {h.detail}" if h.detail else "")
    if h.sending_paused:
        label += " (sending paused)"
    if h.inactivity_warning:
        label += f" - phone inactive {h.inactive_days} days"
    return str(label)


def channel_status(
    workspace: str = typer.Option(None, help="Only this workspace (name or slug)."),
    watch: bool = typer.Option(False, "--watch", help="Follow the history import live."),
    interval: float = typer.Option(1.0, help="Seconds between refreshes with --watch."),
) -> None:
    """Each number's connection state and history import; --watch shows progress bars
    per phase until every import is done (Ctrl-C stops watching)."""
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    rows = _snapshot(runtime, workspace)
    if not rows:
        typer.echo("no channels")
        return
    if watch:
        _watch(runtime, workspace, interval)
        return
    for row in rows:
        h = row["health"]
        history = "-"
        if row["mode"] == "coexistence":
            history = "skipped" if h.history_skipped else f"{h.history_label or '-'} {h.progress} %"
        typer.echo(
            f"{row['id']}\t{row['slug']}\t+{row['number']}\t{row['mode']}\t{_label(h)}\t"
            f"history: {history}\tcontacts: {h.contacts_synced}"
        )


def _watch(runtime: Any, workspace: str | None, interval: float) -> None:
    from rich.progress import BarColumn, Progress, TaskID, TextColumn

    bars: dict[tuple[int, str], TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f} %"),
        TextColumn("{task.fields[note]}"),
    ) as progress:
        try:
            while True:
                active = False
                for row in _snapshot(runtime, workspace):
                    h = row["health"]
                    if row["mode"] != "coexistence" or h.history_skipped:
                        continue
                    done = h.history_state in ("complete", "declined", "failed")
                    active = active or not done
                    note = _label(h) + f" · {h.history_messages} messages"
                    if h.history_state == "declined":
                        note = "history not shared (the owner declined in the app)"
                    for phase, name in (("all", "history"), *PHASES):
                        key = (row["id"], phase)
                        value = h.progress if phase == "all" else h.phase_progress.get(phase, 0)
                        if phase != "all" and h.history_state == "complete":
                            value = 100 if phase in h.phase_progress else value
                        if key not in bars:
                            bars[key] = progress.add_task(
                                f"+{row['number']} {name}", total=100, note=""
                            )
                        progress.update(
                            bars[key], completed=value, note=note if phase == "all" else ""
                        )
                if not active:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
