"""Workspace scoping as a mechanism, not a habit.

Every session says whose data it may touch:

- `WorkspaceScope(workspace_id)`: every ORM query on a `WorkspaceOwned` class (selects,
  joins, relationship loads, ORM updates and deletes) gets `workspace_id = …` added by
  the session itself, through SQLAlchemy's `with_loader_criteria`. The gate may add more
  criteria, such as which conversations the actor's role and teams may see.
- `Unscoped(reason)`: work that truly spans workspaces (the ingest worker before it knows
  the channel, retention, sweeps, the CLI's own look-ups). It is written out at the call
  site, `unscoped="…"`, so every such place is one `grep unscoped=` away.
- Neither: the session may still read tables that belong to no workspace (users, raw
  webhook events), but an ORM query on a workspace-owned class raises `UnscopedQuery`.

Core statements (`sa.text`, `insert(Table)`, `select(table)`) are not ORM queries and are
not rewritten; code using them names its workspace itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ClauseElement, event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from puente.db.base import WorkspaceOwned
from puente.logs import note_workspace

# Session.info key holding the session's scope.
SCOPE = "puente.scope"


@dataclass(frozen=True)
class WorkspaceScope:
    workspace_id: int
    # Further loader criteria (`with_loader_criteria(...)` options) from the gate, e.g. the
    # conversations this actor may see.
    criteria: tuple[Any, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Unscoped:
    reason: str


Scope = WorkspaceScope | Unscoped


class UnscopedQuery(RuntimeError):
    """An ORM query on a workspace-owned table from a session that declared no scope."""


def as_scope(scope: Scope | int | None, unscoped: str | None) -> Scope | None:
    """What `Database.unit_of_work(scope=…, unscoped=…)` was given, as one scope."""
    if scope is not None and unscoped is not None:
        raise ValueError("give a scope or a reason to go unscoped, not both")
    if unscoped is not None:
        if not unscoped.strip():
            raise ValueError("say why the session is unscoped")
        return Unscoped(unscoped)
    if isinstance(scope, int):
        return WorkspaceScope(scope)
    return scope


def set_scope(session: Session, scope: Scope | int | None) -> None:
    session.info[SCOPE] = WorkspaceScope(scope) if isinstance(scope, int) else scope
    if isinstance(session.info[SCOPE], WorkspaceScope):
        # The request's (or job's) log lines name the workspace from here on.
        note_workspace(session.info[SCOPE].workspace_id)


def scope_of(session: Session) -> Scope | None:
    scope: Scope | None = session.info.get(SCOPE)
    return scope


def adopt_workspace(session: Session, workspace_id: int) -> None:
    """Scope a session that declared nothing to `workspace_id` from now on: signing in or
    following an e-mailed link, the workspace is known only once the person's membership
    or the link is found. A session that declared a scope, or none, keeps it."""
    if session.info.get(SCOPE) is None:
        session.info[SCOPE] = WorkspaceScope(workspace_id)
        note_workspace(workspace_id)


@contextmanager
def unscoped(session: Session, reason: str) -> Iterator[Session]:
    """Lift the session's scope for a few look-ups that must see every workspace (finding
    whose sign-in cookie or API token this is), then put it back."""
    before = session.info.get(SCOPE)
    session.info[SCOPE] = Unscoped(reason)
    try:
        yield session
    finally:
        session.info[SCOPE] = before


def _workspace_criteria(workspace_id: int) -> Any:
    # A lambda, so SQLAlchemy caches the compiled statement and binds the id as a parameter.
    return with_loader_criteria(
        WorkspaceOwned,
        lambda cls: cls.workspace_id == workspace_id,
        include_aliases=True,
    )


def _touches_owned(state: ORMExecuteState) -> str | None:
    """The first workspace-owned class or table the statement reads or changes, anywhere
    in it: its entities, joins, subqueries, or a `select_from`."""
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, WorkspaceOwned):
            return mapper.class_.__name__
    statement = state.statement
    if not isinstance(statement, ClauseElement):
        return None
    for table in find_tables(
        statement, include_aliases=True, include_joins=True, include_crud=True
    ):
        if "workspace_id" in table.c:
            return table.name
    return None


def _apply_scope(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    # Lazy and deferred loads follow an object a scoped query already returned; the
    # criteria travel with that query's options (with_loader_criteria propagates).
    if state.is_column_load or state.is_relationship_load:
        return
    scope = state.session.info.get(SCOPE)
    if isinstance(scope, Unscoped):
        return
    if scope is None:
        owned = _touches_owned(state)
        if owned is not None:
            raise UnscopedQuery(
                f"a query on {owned} from a session with no workspace scope: open the "
                "session with scope=<workspace> or unscoped='<why>'"
            )
        return
    state.statement = state.statement.options(
        _workspace_criteria(scope.workspace_id), *scope.criteria
    )


def install(session_factory: Any) -> None:
    """Scope every session the factory makes."""
    event.listen(session_factory, "do_orm_execute", _apply_scope)
