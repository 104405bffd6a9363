"""The authorization gate: the one place that decides what a person or an API token may
see or do (workspace, role, team, assignment). Web routes, API routes, streams, exports
and conversation queries all ask here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session, with_loader_criteria

from puente.accounts.models import ApiToken, Membership, Role, TeamMember, User
from puente.accounts.permissions import (
    TOKEN_SCOPE_FOR,
    Perm,
    Scope,
    effective_permissions,
    effective_scope,
)
from puente.accounts.tokens import has_scope
from puente.conversations.models import Conversation
from puente.db.scope import WorkspaceScope
from puente.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in member (user + membership + teams) or an API token."""

    workspace_id: int
    user: User | None = None
    membership: Membership | None = None
    team_ids: frozenset[int] = field(default_factory=frozenset)
    token: ApiToken | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def role(self) -> Role | None:
        return Role(self.membership.role) if self.membership is not None else None

    @property
    def label(self) -> str:
        """How the audit log names this actor."""
        if self.user is not None:
            return self.user.email
        if self.token is not None:
            return f"token {self.token.prefix}"
        return "system"

    @property
    def permissions(self) -> frozenset[Perm]:
        if self.membership is not None:
            return effective_permissions(Role(self.membership.role), self.membership.permissions)
        if self.token is not None:
            return frozenset(p for p, s in TOKEN_SCOPE_FOR.items() if has_scope(self.token, s))
        return frozenset()

    @property
    def scope(self) -> Scope:
        if self.membership is not None:
            return effective_scope(Role(self.membership.role), self.membership.permissions)
        if self.token is not None and has_scope(self.token, "conversations:read"):
            return Scope.ALL
        return Scope.ASSIGNED


def load_member_actor(session: Session, user: User, workspace_id: int) -> Actor | None:
    """The actor for a user in a workspace, or None when the user or membership is inactive."""
    if not user.is_active:
        return None
    membership = session.scalar(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user.id
        )
    )
    return member_actor(session, user, membership, workspace_id)


def member_actor(
    session: Session,
    user: User,
    membership: Membership | None,
    workspace_id: int,
    team_ids: frozenset[int] | None = None,
) -> Actor | None:
    """The actor for a user and their membership already loaded (None when inactive);
    their teams are read unless the caller loaded them too."""
    if not user.is_active or membership is None or not membership.is_active:
        return None
    if team_ids is None:
        team_ids = frozenset(
            session.scalars(
                select(TeamMember.team_id).where(
                    TeamMember.workspace_id == workspace_id, TeamMember.user_id == user.id
                )
            )
        )
    return Actor(workspace_id, user=user, membership=membership, team_ids=team_ids)


def token_actor(token: ApiToken) -> Actor:
    return Actor(token.workspace_id, token=token)


def can(actor: Actor, permission: Perm | str) -> bool:
    return Perm(permission) in actor.permissions


def require(actor: Actor, permission: Perm | str) -> None:
    """Raise 403 unless the actor holds `permission`."""
    if not can(actor, permission):
        perm = Perm(permission)
        if actor.token is not None and actor.membership is None:
            scope = TOKEN_SCOPE_FOR[perm]
            raise Forbidden(f"this token lacks the '{scope}' scope", code="missing_scope")
        raise Forbidden(
            f"your role does not allow this ({perm.value})",
            code="permission_denied",
            details={"permission": perm.value},
        )


def can_manage_role(actor: Actor, role: Role) -> bool:
    from puente.accounts.permissions import ASSIGNABLE_ROLES

    return actor.role is not None and role in ASSIGNABLE_ROLES[actor.role]


def _visible(actor: Actor) -> ColumnElement[bool]:
    """The conversations of the actor's workspace this actor may see."""
    if not can(actor, Perm.INBOX):
        return false()
    scope = actor.scope
    if scope is Scope.ALL:
        return true()
    mine = Conversation.assignee_id == actor.user_id if actor.user_id is not None else false()
    if scope is Scope.ASSIGNED:
        return mine
    # Team scope: conversations routed to one of the member's teams, conversations no
    # team owns yet (so somebody can pick them up), and anything assigned to them.
    teams = Conversation.team_id.in_(actor.team_ids) if actor.team_ids else false()
    unrouted = and_(Conversation.team_id.is_(None), Conversation.assignee_id.is_(None))
    return or_(teams, unrouted, mine)


def conversation_scope(actor: Actor) -> ColumnElement[bool]:
    """A SQL filter on Conversation for what this actor may see, workspace included."""
    return and_(Conversation.workspace_id == actor.workspace_id, _visible(actor))


def actor_scope(actor: Actor) -> WorkspaceScope:
    """The scope of a session working for `actor`: their workspace and, for a member who
    may not see every conversation, only the conversations their role and teams allow
    (in every query and join on conversations, page and API alike). An actor without the
    inbox permission is refused by the routes that need it; their scope keeps the
    conversations so pages such as contacts can still say when someone last wrote."""
    if not can(actor, Perm.INBOX) or actor.scope is Scope.ALL:
        return WorkspaceScope(actor.workspace_id)
    visible = with_loader_criteria(Conversation, _visible(actor), include_aliases=True)
    return WorkspaceScope(actor.workspace_id, (visible,))


def can_see_conversation(actor: Actor, conversation: Conversation) -> bool:
    if conversation.workspace_id != actor.workspace_id or not can(actor, Perm.INBOX):
        return False
    scope = actor.scope
    mine = actor.user_id is not None and conversation.assignee_id == actor.user_id
    if scope is Scope.ALL:
        return True
    if scope is Scope.ASSIGNED:
        return mine
    unrouted = conversation.team_id is None and conversation.assignee_id is None
    return mine or unrouted or conversation.team_id in actor.team_ids


def access_conversation(session: Session, actor: Actor, conversation_id: int) -> Conversation:
    """The conversation if the actor may see it; 404 otherwise, so that ids of
    conversations in other teams or workspaces reveal nothing."""
    conversation = session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, conversation_scope(actor))
    )
    if conversation is None:
        raise NotFound("no such conversation")
    return conversation
