"""The permission matrix: what each role may do by default, and how a membership overrides it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from puente.accounts.models import Role


class Perm(enum.StrEnum):
    # Every active member: the inbox itself, their own profile, their notifications.
    INBOX = "inbox.use"
    CONVERSATIONS_REPLY = "conversations.reply"
    CONTACTS_MANAGE = "contacts.manage"
    EXPORT = "data.export"
    BROADCASTS = "broadcasts.manage"
    TEMPLATES = "templates.manage"
    REPORTS = "reports.view"
    # What Puente does by itself: business hours and away messages, routing, bots.
    AUTOMATION = "automation.manage"
    # Users, teams, tokens, channels, security, retention.
    SETTINGS = "settings.manage"
    BILLING = "billing.view"
    AUDIT = "audit.view"
    # Erasing a contact's data or placing it on legal hold.
    PRIVACY = "privacy.manage"
    # Exporting the whole workspace to another installation: owners only, always.
    WORKSPACE_EXPORT = "workspace.export"


class Scope(enum.StrEnum):
    """Which conversations a member sees."""

    ALL = "all"
    TEAM = "team"  # their teams' conversations, unrouted ones, and those assigned to them
    ASSIGNED = "assigned"  # only those assigned to them


SCOPE_KEY = "conversations.scope"

_EVERYONE = {Perm.INBOX, Perm.CONVERSATIONS_REPLY}
_SUPERVISOR = _EVERYONE | {
    Perm.CONTACTS_MANAGE,
    Perm.EXPORT,
    Perm.BROADCASTS,
    Perm.TEMPLATES,
    Perm.REPORTS,
    Perm.AUTOMATION,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset(Perm),
    Role.ADMIN: frozenset(Perm) - {Perm.WORKSPACE_EXPORT},
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.AGENT: frozenset(_EVERYONE | {Perm.CONTACTS_MANAGE}),
}
ROLE_SCOPE: dict[Role, Scope] = {
    Role.OWNER: Scope.ALL,
    Role.ADMIN: Scope.ALL,
    Role.SUPERVISOR: Scope.ALL,
    Role.AGENT: Scope.TEAM,
}
# Who may give which role: nobody below admin manages people; only owners make owners.
ASSIGNABLE_ROLES: dict[Role, tuple[Role, ...]] = {
    Role.OWNER: (Role.OWNER, Role.ADMIN, Role.SUPERVISOR, Role.AGENT),
    Role.ADMIN: (Role.ADMIN, Role.SUPERVISOR, Role.AGENT),
    Role.SUPERVISOR: (),
    Role.AGENT: (),
}


def effective_permissions(role: Role, overrides: Mapping[str, Any]) -> frozenset[Perm]:
    """The role's permissions with the membership's overrides ({"data.export": true}) applied.
    Owners keep everything so a workspace can never lock itself out."""
    perms = set(ROLE_PERMISSIONS[role])
    if role is Role.OWNER:
        return frozenset(perms)
    for key, value in overrides.items():
        try:
            perm = Perm(key)
        except ValueError:
            continue
        if perm in (Perm.INBOX, Perm.WORKSPACE_EXPORT):
            continue
        if value is True:
            perms.add(perm)
        elif value is False:
            perms.discard(perm)
    return frozenset(perms)


def effective_scope(role: Role, overrides: Mapping[str, Any]) -> Scope:
    if role is Role.OWNER:
        return Scope.ALL
    raw = overrides.get(SCOPE_KEY)
    try:
        return Scope(raw) if raw else ROLE_SCOPE[role]
    except ValueError:
        return ROLE_SCOPE[role]


# What an API token needs for a permission-guarded operation.
TOKEN_SCOPE_FOR: dict[Perm, str] = {
    Perm.INBOX: "conversations:read",
    Perm.CONVERSATIONS_REPLY: "messages:send",
    Perm.CONTACTS_MANAGE: "contacts:write",
    Perm.EXPORT: "contacts:read",
    Perm.BROADCASTS: "broadcasts:write",
    Perm.TEMPLATES: "templates:write",
    Perm.REPORTS: "reports:read",
    Perm.AUTOMATION: "automation:write",
    Perm.SETTINGS: "settings:write",
    Perm.BILLING: "settings:read",
    Perm.AUDIT: "audit:read",
    Perm.PRIVACY: "privacy:write",
}
