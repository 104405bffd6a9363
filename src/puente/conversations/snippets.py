"""Snippets (canned responses): shared with the workspace or personal, inserted in the
composer with `/shortcut`, with variables such as {{contact.name}} filled in."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, can
from puente.accounts.permissions import Perm
from puente.contacts.models import Contact
from puente.conversations.collab import user_error
from puente.conversations.models import Snippet
from puente.errors import Forbidden, InvalidInput, NotFound

SHORTCUT_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
VARIABLE_RE = re.compile(r"\{\{\s*([a-z_]+)\.([\w\-]+)\s*\}\}", re.IGNORECASE)
MAX_BODY = 4096


def list_snippets(session: Session, actor: Actor, prefix: str = "") -> list[Snippet]:
    """Shared snippets and the actor's own, by shortcut."""
    query = select(Snippet).where(
        Snippet.workspace_id == actor.workspace_id,
        or_(Snippet.owner_id.is_(None), Snippet.owner_id == (actor.user_id or -1)),
    )
    if prefix:
        query = query.where(Snippet.shortcut.startswith(prefix.lower(), autoescape=True))
    return list(session.scalars(query.order_by(Snippet.shortcut, Snippet.id).limit(200)))


def check_snippet(shortcut: str, body: str) -> tuple[str, str]:
    shortcut = shortcut.strip().lstrip("/").lower()
    body = body.strip()
    if not SHORTCUT_RE.match(shortcut):
        raise user_error(
            InvalidInput,
            "A shortcut uses lowercase letters, digits, - and _ (at most 64), e.g. 'hours'.",
        )
    if not body:
        raise user_error(InvalidInput, "Write the snippet's text.")
    if len(body) > MAX_BODY:
        raise user_error(
            InvalidInput, "The snippet is too long (at most %(n)s characters).", n=MAX_BODY
        )
    return shortcut, body


def do_create_snippet(
    session: Session, actor: Actor, *, shortcut: str, body: str, shared: bool
) -> Snippet:
    shortcut, body = check_snippet(shortcut, body)
    if shared and not can(actor, Perm.TEMPLATES):
        raise user_error(Forbidden, "Only supervisors and admins can create shared snippets.")
    owner = None if shared else actor.user_id
    clash = session.scalar(
        select(Snippet.id).where(
            Snippet.workspace_id == actor.workspace_id,
            Snippet.shortcut == shortcut,
            Snippet.owner_id.is_(None) if owner is None else Snippet.owner_id == owner,
        )
    )
    if clash is not None:
        raise user_error(
            InvalidInput, "There is already a snippet /%(shortcut)s.", shortcut=shortcut
        )
    snippet = Snippet(workspace_id=actor.workspace_id, owner_id=owner, shortcut=shortcut, body=body)
    session.add(snippet)
    session.flush()
    _audit(session, actor, snippet, Action.SNIPPET_CREATED)
    return snippet


def _audit(session: Session, actor: Actor, snippet: Snippet, action: str) -> None:
    audit.record(
        session,
        workspace_id=snippet.workspace_id,
        actor=actor,
        action=action,
        target=f"snippet {snippet.id}",
        details={"shortcut": snippet.shortcut, "shared": snippet.owner_id is None},
    )


def access_snippet(session: Session, actor: Actor, snippet_id: int) -> Snippet:
    snippet = session.scalar(
        select(Snippet).where(Snippet.id == snippet_id, Snippet.workspace_id == actor.workspace_id)
    )
    if snippet is None or (snippet.owner_id is not None and snippet.owner_id != actor.user_id):
        raise user_error(NotFound, "No such snippet.")
    return snippet


def do_delete_snippet(session: Session, actor: Actor, snippet: Snippet) -> None:
    if snippet.owner_id is None and not can(actor, Perm.TEMPLATES):
        raise user_error(Forbidden, "Only supervisors and admins can change shared snippets.")
    _audit(session, actor, snippet, Action.SNIPPET_DELETED)
    session.delete(snippet)
    session.flush()


def fill_variables(body: str, *, contact: Contact | None, agent_name: str | None) -> str:
    """Replace {{contact.name}}, {{contact.phone}}, {{contact.<custom field>}} and
    {{agent.name}}; unknown variables are left as typed so the agent sees them."""
    values: dict[str, dict[str, Any]] = {"contact": {}, "agent": {"name": agent_name or ""}}
    if contact is not None:
        values["contact"] = {
            **{str(k).lower(): v for k, v in (contact.custom_fields or {}).items()},
            "name": contact.display_name,
            "first_name": (contact.display_name.split() or [""])[0],
            "phone": contact.phone_e164 or "",
        }

    def sub(m: re.Match[str]) -> str:
        scope, name = m.group(1).lower(), m.group(2).lower()
        value = values.get(scope, {}).get(name)
        return str(value) if value not in (None, "") else m.group(0)

    return VARIABLE_RE.sub(sub, body)
