"""Operations on workspaces and people."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.errors import Conflict, InvalidInput, NotFound


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "workspace"


def do_create_workspace(
    session: Session, *, name: str, slug: str | None = None, timezone: str = "UTC"
) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidInput("a workspace needs a name")
    slug = slugify(slug or name)
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise Conflict(f"a workspace called '{slug}' exists already")
    ws = Workspace(name=name, slug=slug, timezone=timezone, settings={})
    session.add(ws)
    session.flush()
    return ws


def access_workspace_by_name(session: Session, name_or_slug: str) -> Workspace:
    ws = session.scalar(
        select(Workspace).where(
            or_(Workspace.slug == name_or_slug, func.lower(Workspace.name) == name_or_slug.lower())
        )
    )
    if ws is None:
        raise NotFound(f"no workspace called '{name_or_slug}'")
    return ws
