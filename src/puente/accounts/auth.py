"""Signing in (password, then TOTP or a recovery code), invitations and password resets.

Failures are returned, not raised, so that the attempt and its audit entry are committed
together with the refusal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.credentials import (
    check_password_strength,
    do_issue_recovery_codes,
    do_record_attempt,
    do_spend_totp_step,
    do_use_recovery_code,
    hash_password,
    lockout_remaining,
    new_totp_secret,
    random_token,
    sha256_hex,
    totp_step,
    user_totp_secret,
    verify_password,
)
from puente.accounts.gate import Actor
from puente.accounts.models import AuthLink, Membership, RecoveryCode, Role, User, Workspace
from puente.accounts.permissions import ASSIGNABLE_ROLES
from puente.accounts.service import (
    access_member,
    check_manage_member,
    do_create_user,
    first_membership,
    mfa_required_for,
    normalize_email,
)
from puente.accounts.sessions import do_end_user_sessions
from puente.db.base import utcnow
from puente.db.scope import adopt_workspace, unscoped
from puente.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PuenteError,
    TooManyRequests,
)
from puente.secrets import SecretBox

INVITE_LIFETIME = dt.timedelta(days=7)
RESET_LIFETIME = dt.timedelta(hours=1)


class LoginRefused(PuenteError):
    status_code = 401
    code = "login_failed"


@dataclass
class LoginOutcome:
    user: User | None = None
    membership: Membership | None = None
    needs_code: bool = False  # password accepted, TOTP or recovery code still needed
    must_enrol: bool = False  # the workspace requires 2FA and the user has none yet
    error: PuenteError | None = None


def _refuse(message: str) -> LoginOutcome:
    return LoginOutcome(error=LoginRefused(message))


def do_login(session: Session, *, email: str, password: str, ip: str | None) -> LoginOutcome:
    """Check a password. Every outcome is recorded; five failures lock the address."""
    email = email.strip().lower()[:320]
    wait = lockout_remaining(session, email, ip)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() // 60) + 1)
        audit.record(
            session,
            workspace_id=None,
            actor=email,
            action=Action.LOGIN_LOCKED,
            details={"email": email},
            ip=ip,
        )
        return LoginOutcome(
            error=TooManyRequests(
                f"too many failed attempts; try again in {minutes} minutes",
                code="locked_out",
                details={"retry_after_seconds": int(wait.total_seconds())},
            )
        )
    user = session.scalar(select(User).where(User.email == email))
    membership = first_membership(session, user) if user is not None else None
    if membership is not None:
        adopt_workspace(session, membership.workspace_id)
    ok = verify_password(user, password)
    if not ok or user is None or not user.is_active or membership is None:
        do_record_attempt(session, email, ip, succeeded=False)
        audit.record(
            session,
            workspace_id=membership.workspace_id if membership else None,
            actor=email,
            action=Action.LOGIN_FAILED,
            details={"reason": "bad_password" if not ok else "inactive"},
            ip=ip,
        )
        return _refuse("wrong email or password")
    ws = session.get(Workspace, membership.workspace_id)
    assert ws is not None
    if user.totp_enabled:
        return LoginOutcome(user=user, membership=membership, needs_code=True)
    outcome = LoginOutcome(user=user, membership=membership)
    outcome.must_enrol = mfa_required_for(ws, Role(membership.role))
    do_finish_login(session, user, membership, ip)
    return outcome


def do_finish_login(session: Session, user: User, membership: Membership, ip: str | None) -> None:
    do_record_attempt(session, user.email, ip, succeeded=True)
    user.last_login_at = utcnow()
    audit.record(
        session,
        workspace_id=membership.workspace_id,
        actor=user.email,
        action=Action.LOGIN,
        ip=ip,
    )


def do_second_factor(
    session: Session, box: SecretBox, *, user: User, code: str, ip: str | None
) -> LoginOutcome:
    """Check the TOTP code (or a recovery code) after the password step."""
    membership = first_membership(session, user)
    if membership is None or not user.is_active:
        return _refuse("this account is not active")
    adopt_workspace(session, membership.workspace_id)
    wait = lockout_remaining(session, user.email, ip)
    if wait is not None:
        return LoginOutcome(error=TooManyRequests("too many failed attempts; try again later"))
    secret = user_totp_secret(box, user)
    code = code.strip()
    step = totp_step(secret, code) if secret is not None else None
    ok = step is not None and do_spend_totp_step(session, user, step)
    replayed = step is not None and not ok
    used_recovery = False
    if not ok and "-" in code:
        ok = used_recovery = do_use_recovery_code(session, user, code)
    if not ok:
        do_record_attempt(session, user.email, ip, succeeded=False)
        audit.record(
            session,
            workspace_id=membership.workspace_id,
            actor=user.email,
            action=Action.MFA_FAILED,
            details={"reason": "code_reused"} if replayed else {},
            ip=ip,
        )
        if replayed:
            return _refuse("that code was used already; wait for the next code in your app")
        return _refuse("that code is not right; use the current code from your app")
    do_finish_login(session, user, membership, ip)
    if used_recovery:
        audit.record(
            session,
            workspace_id=membership.workspace_id,
            actor=user.email,
            action="auth.recovery_code_used",
            ip=ip,
        )
    return LoginOutcome(user=user, membership=membership)


# --- Two-factor enrolment ------------------------------------------------------------------


def do_start_totp(session: Session, box: SecretBox, user: User) -> str:
    """A new secret, stored (encrypted) but not trusted until confirmed with a code."""
    if user.totp_enabled:
        raise Conflict("two-factor sign-in is already on; turn it off first")
    secret = new_totp_secret()
    user.totp_secret_encrypted = box.encrypt(secret)
    session.flush()
    return secret


def do_confirm_totp(
    session: Session,
    box: SecretBox,
    user: User,
    workspace_id: int,
    code: str,
    ip: str | None,
) -> list[str]:
    secret = user_totp_secret(box, user)
    if secret is None or user.totp_enabled:
        raise Conflict("start two-factor set-up first")
    step = totp_step(secret, code)
    if step is None:
        raise InvalidInput("that code is not right; check your phone's clock and try again")
    # Spent like a sign-in's code: the code shown while enrolling cannot sign in again.
    do_spend_totp_step(session, user, step)
    user.totp_enabled = True
    codes = do_issue_recovery_codes(session, user)
    audit.record(
        session, workspace_id=workspace_id, actor=user.email, action=Action.MFA_ENABLED, ip=ip
    )
    return codes


def do_disable_totp(
    session: Session,
    box: SecretBox,
    user: User,
    workspace_id: int,
    code: str,
    ip: str | None,
) -> None:
    """Turn two-factor sign-in off with a current code or, phone lost, a recovery code."""
    secret = user_totp_secret(box, user)
    if not user.totp_enabled or secret is None:
        raise Conflict("two-factor sign-in is not on")
    code = code.strip()
    used_recovery = False
    step = totp_step(secret, code)
    if step is None or not do_spend_totp_step(session, user, step):
        if "-" not in code or not do_use_recovery_code(session, user, code):
            raise InvalidInput("that code is not right")
        used_recovery = True
    _clear_totp(session, user)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=user.email,
        action=Action.MFA_DISABLED,
        details={"with": "recovery_code" if used_recovery else "totp"},
        ip=ip,
    )
    session.flush()


def _clear_totp(session: Session, user: User) -> None:
    user.totp_enabled = False
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    # Left-over recovery codes would be useless; enrolling again issues new ones.
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def do_reset_member_totp(
    session: Session, actor: Actor, user_id: int, *, ip: str | None = None
) -> User:
    """An admin clears another member's two-factor sign-in (they lost their phone and
    their recovery codes). Their sessions end; if the workspace requires two-factor they
    must enrol again right after signing in. Someone who also belongs to another
    workspace is refused: that workspace relies on their second factor too."""
    user, membership = access_member(session, actor, user_id)
    check_manage_member(actor, membership, None)
    if user.id == actor.user_id:
        raise Conflict(
            "use your profile to turn off your own two-factor sign-in", code="self_reset"
        )
    if not user.totp_enabled:
        raise Conflict("this person does not use two-factor sign-in", code="mfa_off")
    with unscoped(session, "whether another workspace relies on this person"):
        elsewhere = session.scalar(
            select(Membership.id).where(
                Membership.user_id == user.id, Membership.workspace_id != actor.workspace_id
            )
        )
    if elsewhere is not None:
        raise Conflict(
            "this person also belongs to another workspace; the operator resets their "
            "two-factor sign-in with `puente users reset-2fa`",
            code="other_workspaces",
        )
    _clear_totp(session, user)
    do_end_user_sessions(session, user.id)
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.MFA_RESET,
        target=f"user {user.email}",
        ip=ip,
    )
    session.flush()
    return user


def do_operator_reset_totp(session: Session, email: str) -> User:
    """The operator (CLI) clears a person's two-factor sign-in in every workspace, each of
    which gets an audit entry."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"no user {email}")
    if not user.totp_enabled:
        raise Conflict(f"{user.email} does not use two-factor sign-in", code="mfa_off")
    _clear_totp(session, user)
    do_end_user_sessions(session, user.id)
    for workspace_id in session.scalars(
        select(Membership.workspace_id).where(Membership.user_id == user.id)
    ):
        audit.record(
            session,
            workspace_id=workspace_id,
            actor="cli",
            action=Action.MFA_RESET,
            target=f"user {user.email}",
        )
    session.flush()
    return user


# --- Single-use links ----------------------------------------------------------------------


def _new_link(session: Session, **fields: object) -> str:
    token = random_token()
    session.add(AuthLink(token_hash=sha256_hex(token), **fields))
    session.flush()
    return token


def access_link(session: Session, kind: str, token: str) -> AuthLink:
    """The link for a token, refusing unknown, used and expired ones with a clear message."""
    with unscoped(session, "a link is found by its secret, before its workspace"):
        link = session.scalar(
            select(AuthLink).where(AuthLink.token_hash == sha256_hex(token), AuthLink.kind == kind)
        )
    if link is not None:
        adopt_workspace(session, link.workspace_id)
    # Each message written out whole, so the catalogue has it (scripts/i18n.py).
    invite = kind == "invite"
    if link is None:
        if invite:
            raise NotFound("this invitation is not valid", code="link_invalid")
        raise NotFound("this password reset link is not valid", code="link_invalid")
    if link.used_at is not None:
        if invite:
            raise Conflict("this invitation has been used already", code="link_used")
        raise Conflict("this password reset link has been used already", code="link_used")
    if link.expires_at <= utcnow():
        if invite:
            raise InvalidInput(
                "this invitation has expired; ask for a new one", code="link_expired"
            )
        raise InvalidInput(
            "this password reset link has expired; ask for a new one", code="link_expired"
        )
    return link


def _spend_link(session: Session, link: AuthLink) -> None:
    # Conditional update: of two simultaneous uses, only one wins.
    result = session.execute(
        update(AuthLink)
        .where(AuthLink.id == link.id, AuthLink.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if not getattr(result, "rowcount", 0):
        raise Conflict("this link has been used already", code="link_used")


def do_invite(
    session: Session,
    *,
    workspace_id: int,
    email: str,
    role: Role,
    invited_by: User,
    actor: object,
    ip: str | None,
) -> str:
    """Create an invitation; returns the token for the emailed link."""
    email = normalize_email(email)
    existing = session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace_id, User.email == email)
    )
    if existing is not None:
        raise Conflict("this person is already a member")
    token = _new_link(
        session,
        kind="invite",
        workspace_id=workspace_id,
        email=email,
        role=role.value,
        created_by_id=invited_by.id,
        expires_at=utcnow() + INVITE_LIFETIME,
    )
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=Action.INVITATION_SENT,
        target=f"user {email}",
        details={"role": role.value},
        ip=ip,
    )
    return token


def list_pending_invitations(session: Session, workspace_id: int) -> list[AuthLink]:
    """Invitations not yet accepted, newest first; expired ones too, so they can be sent again."""
    return list(
        session.scalars(
            select(AuthLink)
            .where(
                AuthLink.workspace_id == workspace_id,
                AuthLink.kind == "invite",
                AuthLink.used_at.is_(None),
            )
            .order_by(AuthLink.created_at.desc(), AuthLink.id.desc())
        )
    )


def access_pending_invitation(session: Session, actor: Actor, link_id: int) -> AuthLink:
    """A pending invitation of the actor's workspace, for a role the actor may give."""
    link = session.scalar(
        select(AuthLink).where(
            AuthLink.id == link_id,
            AuthLink.workspace_id == actor.workspace_id,
            AuthLink.kind == "invite",
            AuthLink.used_at.is_(None),
        )
    )
    if link is None:
        raise NotFound("this invitation is no longer pending", code="invitation_not_found")
    role = Role(link.role or Role.AGENT.value)
    if actor.role is None or role not in ASSIGNABLE_ROLES[actor.role]:
        raise Forbidden("you cannot invite someone with this role")
    return link


def do_revoke_invitation(session: Session, actor: Actor, link_id: int, *, ip: str | None) -> str:
    """Withdraw an invitation: its link stops working. Returns the invited address."""
    link = access_pending_invitation(session, actor, link_id)
    email = link.email
    session.delete(link)
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.INVITATION_REVOKED,
        target=f"user {email}",
        ip=ip,
    )
    session.flush()
    return email


def do_resend_invitation(
    session: Session, actor: Actor, link_id: int, *, invited_by: User, ip: str | None
) -> tuple[AuthLink, str]:
    """A new link (and a new week) for a pending invitation; the old link stops working.
    Returns the new invitation and its token for the e-mail."""
    old = access_pending_invitation(session, actor, link_id)
    email, role = old.email, old.role
    session.delete(old)
    session.flush()
    token = _new_link(
        session,
        kind="invite",
        workspace_id=actor.workspace_id,
        email=email,
        role=role,
        created_by_id=invited_by.id,
        expires_at=utcnow() + INVITE_LIFETIME,
    )
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.INVITATION_SENT,
        target=f"user {email}",
        details={"role": role, "resent": True},
        ip=ip,
    )
    link = session.scalar(select(AuthLink).where(AuthLink.token_hash == sha256_hex(token)))
    assert link is not None
    return link, token


def do_accept_invitation(
    session: Session, *, token: str, name: str, password: str, ip: str | None
) -> tuple[User, int]:
    """Join the workspace; returns the user and the workspace id. Someone who already has
    an account (in another workspace) proves it with their current password."""
    link = access_link(session, "invite", token)
    check_password_strength(password)
    ws = session.get(Workspace, link.workspace_id)
    assert ws is not None
    _spend_link(session, link)
    role = Role(link.role or Role.AGENT.value)
    user = session.scalar(select(User).where(User.email == link.email))
    if user is None:
        user, _ = do_create_user(
            session, workspace=ws, email=link.email, password=password, name=name, role=role
        )
    else:
        if not verify_password(user, password):
            raise InvalidInput("you already have an account: enter its current password")
        session.add(Membership(workspace_id=ws.id, user_id=user.id, role=role.value))
        session.flush()
    audit.record(
        session,
        workspace_id=ws.id,
        actor=user.email,
        action=Action.INVITATION_ACCEPTED,
        target=f"user {user.email}",
        details={"role": role.value},
        ip=ip,
    )
    return user, ws.id


def do_request_reset(session: Session, *, email: str, ip: str | None) -> tuple[User, str] | None:
    """A reset token for a known, active address; None otherwise (the page says the same
    either way, so it cannot be used to find out who has an account)."""
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    membership = first_membership(session, user) if user is not None else None
    if user is None or not user.is_active or membership is None:
        return None
    token = _issue_reset_link(session, user, membership.workspace_id, created_by_id=None)
    audit.record(
        session,
        workspace_id=membership.workspace_id,
        actor=email,
        action=Action.PASSWORD_RESET_REQUESTED,
        ip=ip,
    )
    return user, token


def do_issue_member_reset(
    session: Session, actor: Actor, user_id: int, *, ip: str | None = None
) -> tuple[User, str]:
    """An admin makes a password reset link for a member of their workspace (returns the
    member and the token; the link is shown once to the admin, or mailed with SMTP).
    Never for an owner, for oneself, or for someone who also belongs to another
    workspace: holding the link means holding the account, and those accounts are not the
    admin's to hold. The operator resets those with `puente users reset-password`."""
    user, membership = access_member(session, actor, user_id)
    check_manage_member(actor, membership, None)
    if user.id == actor.user_id:
        raise Conflict("use your profile to change your own password", code="self_reset")
    with unscoped(session, "whether another workspace relies on this person"):
        memberships = session.execute(
            select(Membership.workspace_id, Membership.role).where(Membership.user_id == user.id)
        ).all()
    if any(role == Role.OWNER.value for _ws, role in memberships):
        raise Forbidden(
            "an owner's password cannot be reset here; owners use Forgot password, or the "
            "operator runs `puente users reset-password`",
            code="owner_reset",
        )
    if any(ws != actor.workspace_id for ws, _role in memberships):
        raise Conflict(
            "this person also belongs to another workspace; the operator resets their "
            "password with `puente users reset-password`",
            code="other_workspaces",
        )
    if not user.is_active or not membership.is_active:
        raise Conflict("reactivate this person first", code="inactive")
    token = _issue_reset_link(session, user, actor.workspace_id, created_by_id=actor.user_id)
    audit.record(
        session,
        workspace_id=actor.workspace_id,
        actor=actor,
        action=Action.PASSWORD_RESET_ISSUED,
        target=f"user {user.email}",
        ip=ip,
    )
    return user, token


def do_operator_issue_reset(session: Session, workspace_id: int, email: str) -> tuple[User, str]:
    """The operator (CLI) makes a reset link for a member of a workspace, owners included:
    whoever runs the server holds its database already. Audited in that workspace."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    membership = (
        session.scalar(
            select(Membership).where(
                Membership.user_id == user.id, Membership.workspace_id == workspace_id
            )
        )
        if user is not None
        else None
    )
    if user is None or membership is None:
        raise NotFound(f"no member {email} in this workspace")
    if not user.is_active or not membership.is_active:
        raise Conflict(f"{user.email} is deactivated; reactivate them first", code="inactive")
    token = _issue_reset_link(session, user, workspace_id, created_by_id=None)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor="cli",
        action=Action.PASSWORD_RESET_ISSUED,
        target=f"user {user.email}",
    )
    return user, token


def _issue_reset_link(
    session: Session, user: User, workspace_id: int, *, created_by_id: int | None
) -> str:
    return _new_link(
        session,
        kind="reset",
        workspace_id=workspace_id,
        email=user.email,
        user_id=user.id,
        created_by_id=created_by_id,
        expires_at=utcnow() + RESET_LIFETIME,
    )


def do_reset_password(session: Session, *, token: str, password: str, ip: str | None) -> User:
    link = access_link(session, "reset", token)
    check_password_strength(password)
    user = session.get(User, link.user_id) if link.user_id else None
    if user is None or not user.is_active:
        raise NotFound("this password reset link is not valid", code="link_invalid")
    _spend_link(session, link)
    user.password_hash = hash_password(password)
    # A new password ends every session, including any an intruder held.
    do_end_user_sessions(session, user.id)
    audit.record(
        session,
        workspace_id=link.workspace_id,
        actor=user.email,
        action=Action.PASSWORD_RESET,
        ip=ip,
    )
    return user


def do_change_password(
    session: Session,
    user: User,
    workspace_id: int,
    *,
    current: str,
    new: str,
    again: str,
    keep_session: str | None,
    ip: str | None,
) -> None:
    """Change one's own password. Every other session ends: one of them may be the reason."""
    if not verify_password(user, current):
        raise InvalidInput("the current password is not right", code="wrong_password")
    if new != again:
        raise InvalidInput("the two new passwords are not the same", code="password_mismatch")
    check_password_strength(new)
    user.password_hash = hash_password(new)
    do_end_user_sessions(session, user.id, keep=keep_session)
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=user.email,
        action=Action.PASSWORD_CHANGED,
        ip=ip,
    )
    session.flush()
