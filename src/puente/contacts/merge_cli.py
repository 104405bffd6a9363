"""`puente contacts merge KEEP OTHER`, `contacts split MERGE_ID` and `contacts duplicates`:
the merges of the contact page from the command line. The operator is audited as "cli"."""

from __future__ import annotations

import typer

from puente.contacts.cli import contacts_cli

CLI_ACTOR = "cli"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(1)


def _choices(fields: list[str]) -> dict[str, str]:
    choices: dict[str, str] = {}
    for raw in fields:
        name, sep, choice = raw.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--field {raw!r}: write it as NAME=keep or NAME=other")
        choices[name.strip()] = choice.strip()
    return choices


@contacts_cli.command("merge")
def merge_command(
    keep: int = typer.Argument(..., help="The contact that is kept."),
    other: int = typer.Argument(..., help="The contact absorbed into it."),
    field: list[str] = typer.Option(
        [],
        "--field",
        help="Which value wins: name=keep, custom.email=other... (repeatable). A field not "
        "named keeps KEEP's value, or OTHER's when KEEP has none.",
    ),
    workspace: str = typer.Option(None, help="Workspace name or slug (default: KEEP's)."),
) -> None:
    """Merge contact OTHER into KEEP: its conversations, messages, numbers, tags, consent
    and activity move to KEEP, and OTHER disappears until the merge is split."""
    from puente.accounts.privacy_cli import _contact_workspace
    from puente.contacts import merge
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    choices = _choices(field)
    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            ws = _contact_workspace(session, keep, workspace)
            kept, absorbed = merge.access_merge_pair(session, ws, keep, other)
            done = merge.do_merge_contacts(session, kept, absorbed, choices, actor=CLI_ACTOR)
            merge_id, moved = done.id, sum(len(ids) for ids in (done.moved or {}).values())
            conversations = len(done.moved_conversations or [])
    except PuenteError as exc:
        raise _fail(exc.message) from None
    typer.echo(
        f"merged contact {other} into {keep}: merge {merge_id}, {conversations} "
        f"conversation(s) and {moved} row(s) moved (undo: puente contacts split {merge_id})"
    )


@contacts_cli.command("split")
def split_command(
    merge_id: int = typer.Argument(..., help="The merge to undo (shown by `contacts merge`)."),
    workspace: str = typer.Option(None, help="Workspace name or slug."),
) -> None:
    """Undo a merge: the absorbed contact comes back with exactly what moved, while
    nothing new has been written that could belong to either contact."""
    from sqlalchemy import select

    from puente.accounts.service import enter_workspace
    from puente.contacts import merge
    from puente.contacts.models import ContactMerge
    from puente.db.scope import set_scope, unscoped
    from puente.errors import NotFound, PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.unit_of_work() as session:
            if workspace:
                ws = enter_workspace(session, workspace).id
            else:
                with unscoped(session, "finding the workspace of a merge the operator named"):
                    found = session.scalar(
                        select(ContactMerge.workspace_id).where(ContactMerge.id == merge_id)
                    )
                if found is None:
                    raise NotFound(f"no merge {merge_id}")
                ws = found
                set_scope(session, ws)
            row = session.scalar(select(ContactMerge).where(ContactMerge.id == merge_id))
            if row is None:
                raise NotFound(f"no merge {merge_id} in workspace '{workspace}'")
            restored = merge.do_split_merge(session, row, actor=CLI_ACTOR)
            kept_id, restored_id = row.contact_id, restored.id
    except PuenteError as exc:
        reasons = exc.details.get("reasons", []) if isinstance(exc.details, dict) else []
        for reason in reasons[1:]:
            typer.echo(f"  also: {reason}", err=True)
        raise _fail(exc.message) from None
    typer.echo(f"split merge {merge_id}: contact {restored_id} is back beside {kept_id}")


@contacts_cli.command("duplicates")
def duplicates_command(
    workspace: str = typer.Option(..., help="Workspace name or slug."),
) -> None:
    """List contacts that look like the same person (same number written another way,
    same parent BSUID, same e-mail), one group per line, for review."""
    from puente.accounts.service import enter_workspace
    from puente.contacts.duplicates import find_duplicates
    from puente.errors import PuenteError
    from puente.runtime import Runtime

    runtime = Runtime.from_settings()
    try:
        with runtime.db.read() as session:
            ws = enter_workspace(session, workspace).id
            lines = [
                f"{s.reason}\t{s.key}\t"
                + ", ".join(
                    f"{c.id} {c.display_name or c.phone_e164 or ''}".strip() for c in s.contacts
                )
                for s in find_duplicates(session, ws)
            ]
    except PuenteError as exc:
        raise _fail(exc.message) from None
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("no possible duplicates")
