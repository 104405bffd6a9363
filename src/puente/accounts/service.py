"""Operations on workspaces and people: first-run set-up, users, roles, teams and profiles."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.credentials import check_password_strength, hash_password
from puente.accounts.gate import Actor, can_manage_role, require
from puente.accounts.models import Membership, Role, Team, TeamMember, User, Workspace
from puente.accounts.permissions import SCOPE_KEY, Perm, Scope
from puente.accounts.sessions import do_end_user_sessions
from puente.db.base import utcnow
from puente.db.scope import scope_of, set_scope, unscoped
from puente.errors import Conflict, Forbidden, InvalidInput, NotFound
from puente.reports import facts

LANGUAGES = ("en", "es")
AVAILABILITY = ("online", "away", "offline")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "workspace"


def do_create_workspace(
    session: Session,
    *,
    name: str,
    slug: str | None = None,
    timezone: str = "UTC",
    actor: str = "system",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> Workspace:
    """A new workspace, whose audit log starts with its creation (`puente audit verify`
    takes a workspace without that first entry for one whose log was deleted)."""
    name = name.strip()
    if not name:
        raise InvalidInput("a workspace needs a name")
    slug = slugify(slug or name)
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise Conflict(f"a workspace called '{slug}' exists already")
    ws = Workspace(name=name, slug=slug, timezone=timezone, settings={})
    session.add(ws)
    session.flush()
    if scope_of(session) is None:
        # Whoever creates a workspace goes on working in it (set-up, sign-up, the demo);
        # a session that declared a scope or none keeps it.
        set_scope(session, ws.id)
    audit.record(
        session,
        workspace_id=ws.id,
        actor=actor,
        action=Action.WORKSPACE_CREATED,
        target=f"workspace {ws.slug}",
        details=details,
        ip=ip,
    )
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


def enter_workspace(session: Session, name_or_slug: str) -> Workspace:
    """The command line's way into a workspace: find it by name or slug, and scope the
    session to it, so everything the command does next stays inside it."""
    ws = access_workspace_by_name(session, name_or_slug)
    set_scope(session, ws.id)
    return ws


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidInput("enter a valid email address")
    return email


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone '{name}'") from exc
    return name


def needs_setup(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(User)) == 0


def do_create_user(
    session: Session,
    *,
    workspace: Workspace,
    email: str,
    password: str,
    name: str,
    role: Role,
    locale: str | None = None,
) -> tuple[User, Membership]:
    email = normalize_email(email)
    check_password_strength(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("a user with this email exists already")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        password_hash=hash_password(password),
        locale=locale if locale in LANGUAGES else None,
        timezone=workspace.timezone,
    )
    session.add(user)
    session.flush()
    membership = Membership(workspace_id=workspace.id, user_id=user.id, role=role.value)
    session.add(membership)
    session.flush()
    return user, membership


def do_setup(
    session: Session,
    *,
    workspace_name: str,
    email: str,
    password: str,
    name: str = "",
    timezone: str = "UTC",
    locale: str | None = None,
    ip: str | None = None,
) -> tuple[Workspace, User]:
    """First run: the workspace and its owner. Refused once any user exists."""
    if not needs_setup(session):
        raise Conflict("Puente is already set up; sign in instead", code="already_set_up")
    check_password_strength(password)
    ws = do_create_workspace(
        session,
        name=workspace_name,
        timezone=check_timezone(timezone),
        actor=normalize_email(email),
        details={"owner": normalize_email(email)},
        ip=ip,
    )
    user, _ = do_create_user(
        session,
        workspace=ws,
        email=email,
        password=password,
        name=name,
        role=Role.OWNER,
        locale=locale,
    )
    return ws, user


def first_membership(session: Session, user: User) -> Membership | None:
    """The workspace a person signs in to: their first active membership."""
    with unscoped(session, "a person's memberships span workspaces"):
        return session.scalar(
            select(Membership)
            .where(Membership.user_id == user.id, Membership.is_active.is_(True))
            .order_by(Membership.id)
            .limit(1)
        )


# --- Members -----------------------------------------------------------------------------


def list_members(session: Session, workspace_id: int) -> list[tuple[User, Membership]]:
    rows = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.name, User.id)
    ).all()
    return [(u, m) for u, m in rows]


def access_member(session: Session, actor: Actor, user_id: int) -> tuple[User, Membership]:
    row = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == actor.workspace_id, User.id == user_id)
    ).first()
    if row is None:
        raise NotFound("no such user in this workspace")
    return row[0], row[1]


def _active_owner_count(session: Session, workspace_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.workspace_id == workspace_id,
                Membership.role == Role.OWNER.value,
                Membership.is_active.is_(True),
                User.is_active.is_(True),
            )
        )
        or 0
    )


def check_manage_member(actor: Actor, membership: Membership, new_role: Role | None) -> None:
    require(actor, Perm.SETTINGS)
    if not can_manage_role(actor, Role(membership.role)):
        raise Forbidden("you cannot change a member with this role", code="role_too_high")
    if new_role is not None and not can_manage_role(actor, new_role):
        raise Forbidden(f"you cannot give the {new_role.value} role", code="role_too_high")


def do_change_role(
    session: Session, actor: Actor, user_id: int, role: Role, *, ip: str | None = None
) -> Membership:
    user, membership = access_member(session, actor, user_id)
    check_manage_member(actor, membership, role)
    old = membership.role
    if old == role.value:
        return membership
    if old == Role.OWNER.value and _active_owner_count(session, actor.workspace_id) <= 1:
        raise Conflict("the workspace needs at least one owner", code="last_owner")
    membership.role = role.value
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.ROLE_CHANGED,
        target=f"user {user.email}",
        details={"from": old, "to": role.value},
        ip=ip,
    )
    session.flush()
    return membership


def do_set_member_permissions(
    session: Session,
    actor: Actor,
    user_id: int,
    *,
    scope: Scope | None,
    grants: dict[str, bool],
    ip: str | None = None,
) -> Membership:
    """Override the role's defaults for one member (conversation scope, single permissions)."""
    user, membership = access_member(session, actor, user_id)
    check_manage_member(actor, membership, None)
    overrides: dict[str, object] = {}
    if scope is not None:
        overrides[SCOPE_KEY] = scope.value
    for key, value in grants.items():
        overrides[Perm(key).value] = bool(value)
    old = dict(membership.permissions)
    membership.permissions = overrides
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.PERMISSIONS_CHANGED,
        target=f"user {user.email}",
        details={"from": old, "to": overrides},
        ip=ip,
    )
    session.flush()
    return membership


def do_set_member_active(
    session: Session, actor: Actor, user_id: int, *, active: bool, ip: str | None = None
) -> Membership:
    """Deactivate (or reactivate) a member. Their messages, notes and audit entries stay;
    their sessions end at once and they can no longer sign in to this workspace."""
    user, membership = access_member(session, actor, user_id)
    check_manage_member(actor, membership, None)
    if membership.is_active == active:
        return membership
    if not active:
        if user.id == actor.user_id:
            raise Conflict("you cannot deactivate yourself", code="self_deactivation")
        if (
            membership.role == Role.OWNER.value
            and _active_owner_count(session, actor.workspace_id) <= 1
        ):
            raise Conflict("the workspace needs at least one owner", code="last_owner")
        do_end_user_sessions(session, user.id)
    membership.is_active = active
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.USER_REACTIVATED if active else Action.USER_DEACTIVATED,
        target=f"user {user.email}",
        ip=ip,
    )
    session.flush()
    return membership


# --- Profile -----------------------------------------------------------------------------


def _count_presence(session: Session, user: User, new: str) -> None:
    """For the Users report: how long the person was in the status they leave, counted in
    each workspace they belong to."""
    now = utcnow()
    since = user.availability_since
    user.availability_since = now
    if since is None or now <= since:
        return
    with unscoped(session, "a person's presence counts in each of their workspaces"):
        workspaces = session.scalars(
            select(Membership.workspace_id).where(
                Membership.user_id == user.id, Membership.is_active.is_(True)
            )
        ).all()
    seconds = (now - since).total_seconds()
    for workspace_id in workspaces:
        facts.record(
            session,
            facts.Fact(
                kind=facts.Kind.PRESENCE,
                workspace_id=workspace_id,
                at=now,
                agent_id=user.id,
                label=user.availability,
                seconds=seconds,
            ),
        )


def do_update_profile(
    session: Session,
    user: User,
    *,
    name: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    availability: str | None = None,
    actor: Actor | None = None,
) -> User:
    """Change a member's own profile. Saved from the profile page (`actor`), it is
    audited, naming the fields whose value changed; the quick language and availability
    switches are preferences, not audited."""
    before = {"name": user.name, "locale": user.locale, "timezone": user.timezone}
    if name is not None:
        if not name.strip():
            raise InvalidInput("your name cannot be empty")
        user.name = name.strip()[:200]
    if locale is not None:
        if locale not in LANGUAGES:
            raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
        user.locale = locale
    if timezone is not None:
        user.timezone = check_timezone(timezone)
    if availability is not None:
        if availability not in AVAILABILITY:
            raise InvalidInput(f"availability must be one of {', '.join(AVAILABILITY)}")
        if availability != user.availability:
            _count_presence(session, user, availability)
        user.availability = availability
    session.flush()
    changed = [field for field, value in before.items() if getattr(user, field) != value]
    if actor is not None and changed:
        audit.record(
            session,
            workspace_id=actor.workspace_id,
            actor=actor,
            action=Action.PROFILE_CHANGED,
            target=f"user {user.email}",
            details={"fields": changed},
        )
    return user


# --- Teams -------------------------------------------------------------------------------


def list_teams(session: Session, workspace_id: int) -> list[tuple[Team, list[int]]]:
    teams = session.scalars(
        select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)
    ).all()
    members = session.execute(
        select(TeamMember.team_id, TeamMember.user_id).where(
            TeamMember.workspace_id == workspace_id
        )
    ).all()
    by_team: dict[int, list[int]] = {}
    for team_id, user_id in members:
        by_team.setdefault(team_id, []).append(user_id)
    return [(t, by_team.get(t.id, [])) for t in teams]


def access_team(session: Session, actor: Actor, team_id: int) -> Team:
    team = session.scalar(
        select(Team).where(Team.id == team_id, Team.workspace_id == actor.workspace_id)
    )
    if team is None:
        raise NotFound("no such team")
    return team


def do_create_team(session: Session, actor: Actor, name: str, *, ip: str | None = None) -> Team:
    require(actor, Perm.SETTINGS)
    name = name.strip()
    if not name:
        raise InvalidInput("a team needs a name")
    exists = session.scalar(
        select(Team.id).where(Team.workspace_id == actor.workspace_id, Team.name == name)
    )
    if exists is not None:
        raise Conflict(f"a team called '{name}' exists already")
    team = Team(workspace_id=actor.workspace_id, name=name[:120])
    session.add(team)
    session.flush()
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.TEAM_CREATED,
        target=f"team {team.name}",
        ip=ip,
    )
    return team


def do_set_team_members(
    session: Session, actor: Actor, team_id: int, user_ids: list[int], *, ip: str | None = None
) -> Team:
    require(actor, Perm.SETTINGS)
    team = access_team(session, actor, team_id)
    valid = set(
        session.scalars(
            select(Membership.user_id).where(
                Membership.workspace_id == actor.workspace_id, Membership.user_id.in_(user_ids)
            )
        )
    )
    if set(user_ids) - valid:
        raise InvalidInput("some of these people are not members of this workspace")
    session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    session.add_all(
        TeamMember(workspace_id=actor.workspace_id, team_id=team.id, user_id=u)
        for u in sorted(valid)
    )
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.TEAM_MEMBERS_CHANGED,
        target=f"team {team.name}",
        details={"user_ids": sorted(valid)},
        ip=ip,
    )
    session.flush()
    return team


def do_delete_team(session: Session, actor: Actor, team_id: int, *, ip: str | None = None) -> None:
    require(actor, Perm.SETTINGS)
    team = access_team(session, actor, team_id)
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.TEAM_DELETED,
        target=f"team {team.name}",
        ip=ip,
    )
    session.delete(team)
    session.flush()


# --- Workspace security settings ------------------------------------------------------------

MFA_POLICIES = ("none", "admins", "everyone")


def mfa_policy(ws: Workspace) -> str:
    value = (ws.settings or {}).get("require_2fa", "none")
    return value if value in MFA_POLICIES else "none"


def retention_days(ws: Workspace) -> int | None:
    value = (ws.settings or {}).get("retention_days")
    return int(value) if isinstance(value, int) and value > 0 else None


def mfa_required_for(ws: Workspace, role: Role) -> bool:
    policy = mfa_policy(ws)
    if policy == "everyone":
        return True
    return policy == "admins" and role in (Role.OWNER, Role.ADMIN)


def do_update_security_settings(
    session: Session,
    actor: Actor,
    *,
    require_2fa: str,
    retention: int | None,
    ip: str | None = None,
) -> Workspace:
    require(actor, Perm.SETTINGS)
    if require_2fa not in MFA_POLICIES:
        raise InvalidInput(f"two-factor policy must be one of {', '.join(MFA_POLICIES)}")
    if retention is not None and not (1 <= retention <= 36500):
        raise InvalidInput("retention must be between 1 and 36500 days, or empty for none")
    ws = session.get(Workspace, actor.workspace_id)
    assert ws is not None
    old = {"require_2fa": mfa_policy(ws), "retention_days": retention_days(ws)}
    new = {"require_2fa": require_2fa, "retention_days": retention}
    if old == new:
        return ws
    ws.settings = {**(ws.settings or {}), **new}
    audit.record(
        session,
        workspace_id=ws.id,
        actor=actor,
        action=Action.SETTINGS_CHANGED,
        target="security settings",
        details={"from": old, "to": new},
        ip=ip,
    )
    session.flush()
    return ws
