"""The audit log: append-only, hash-chained per workspace, checked by `puente audit verify`.

Each entry's hash is HMAC-SHA256(audit key, previous hash + canonical JSON of the entry),
so editing, deleting or reordering a stored row breaks the chain at that row, and the key
(PUENTE_AUDIT_KEY or a file in the data directory, never in the database) keeps someone
who can write to the database from recomputing the chain after a rewrite. Every workspace's
chain starts with its `workspace.created` entry, so deleting a whole chain shows too.
Entries written before the chain was keyed (plain sha256) still verify, but are reported
as unprovable.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from puente.accounts.models import AuditEntry, Workspace
from puente.db.base import utcnow
from puente.db.scope import unscoped
from puente.db.session import AUDIT_KEYS

GENESIS = "0" * 64


class Action:
    """The names of audited actions; other parts may use their own dotted names too."""

    # Action names, not secrets (ruff S105 misreads the word "token" and "password").

    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN_LOCKED = "auth.locked_out"
    MFA_FAILED = "auth.mfa_failed"
    MFA_ENABLED = "auth.mfa_enabled"
    MFA_DISABLED = "auth.mfa_disabled"
    MFA_RESET = "auth.mfa_reset"  # an admin cleared a member's two-factor (lost phone)
    LOGOUT = "auth.logout"
    PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"  # noqa: S105
    PASSWORD_RESET = "auth.password_reset"  # noqa: S105
    # An admin (web) or the operator (CLI) made a reset link for a member, shown to them.
    PASSWORD_RESET_ISSUED = "auth.password_reset_issued"  # noqa: S105
    PASSWORD_CHANGED = "auth.password_changed"  # noqa: S105
    LINK_REFUSED = "auth.link_refused"
    CSRF_REFUSED = "auth.csrf_refused"
    WORKSPACE_CREATED = "workspace.created"
    INVITATION_SENT = "user.invited"
    INVITATION_ACCEPTED = "user.joined"
    INVITATION_REVOKED = "user.invitation_revoked"
    ROLE_CHANGED = "user.role_changed"
    PERMISSIONS_CHANGED = "user.permissions_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    TEAM_CREATED = "team.created"
    TEAM_DELETED = "team.deleted"
    TEAM_MEMBERS_CHANGED = "team.members_changed"
    TEAM_ROUTING_CHANGED = "team.routing_changed"  # how its conversations are assigned
    TOKEN_CREATED = "token.created"  # noqa: S105
    TOKEN_REVOKED = "token.revoked"  # noqa: S105
    SETTINGS_CHANGED = "settings.changed"
    AUDIT_EXPORTED = "audit.exported"
    CONTACT_EXPORTED = "contact.exported"
    CONTACT_ERASED = "contact.erased"
    LEGAL_HOLD_CHANGED = "contact.legal_hold"
    RETENTION_PURGED = "retention.purged"
    WEBHOOKS_PURGED = "retention.webhooks_purged"
    ACCESS_DENIED = "access.denied"
    PROFILE_CHANGED = "user.profile_changed"
    # What members and API tokens do to the workspace's data (puente.accounts.audit_policy
    # lists which route writes which, and the routes that write nothing, with the reason).
    CONVERSATION_ASSIGNED = "conversation.assigned"
    CONVERSATION_CLOSED = "conversation.closed"
    CONVERSATION_REOPENED = "conversation.reopened"
    CONVERSATION_SNOOZED = "conversation.snoozed"
    CONVERSATION_LABELLED = "conversation.labelled"
    CONVERSATION_UNLABELLED = "conversation.unlabelled"
    BOT_PAUSED = "conversation.bot_paused"
    BOT_RESUMED = "conversation.bot_resumed"
    NOTE_ADDED = "note.added"
    MESSAGE_SENT = "message.sent"
    MESSAGE_CANCELLED = "message.cancelled"
    MESSAGE_RESENT = "message.resent"
    SNIPPET_CREATED = "snippet.created"
    SNIPPET_DELETED = "snippet.deleted"
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_TAGS_CHANGED = "contact.tags_changed"
    CONSENT_RECORDED = "contact.consent_recorded"
    CONTACTS_IMPORTED = "contacts.imported"
    CHANNEL_ONBOARDING_STARTED = "channel.onboarding_started"
    CHANNEL_CONNECTED = "channel.connected"
    CHANNEL_SETTINGS_CHANGED = "channel.settings_changed"
    CHANNEL_SYNC_REQUESTED = "channel.sync_requested"
    MESSAGING_LIMIT_SET = "channel.messaging_limit_set"
    CHAT_LINK_CREATED = "chat_link.created"
    CHAT_LINK_UPDATED = "chat_link.updated"
    CHAT_LINK_DELETED = "chat_link.deleted"
    TEMPLATE_CREATED = "template.created"
    TEMPLATE_SUBMITTED = "template.submitted"
    TEMPLATE_DELETED = "template.deleted"
    TEMPLATES_SYNCED = "templates.synced"
    BROADCAST_CREATED = "broadcast.created"
    BROADCAST_PAUSED = "broadcast.paused"
    BROADCAST_RESUMED = "broadcast.resumed"
    BROADCAST_CANCELLED = "broadcast.cancelled"
    BROADCAST_RETRIED = "broadcast.retried"
    SEGMENT_SAVED = "segment.saved"
    SEGMENT_DELETED = "segment.deleted"
    WEBHOOK_RETRIED = "webhook.retried"
    KB_ENTRY_CREATED = "kb.entry_created"
    KB_ENTRY_UPDATED = "kb.entry_updated"
    KB_ENTRY_DELETED = "kb.entry_deleted"
    BOT_SETTINGS_CHANGED = "kb.bot_settings_changed"
    WORKFLOW_CREATED = "workflow.created"
    WORKFLOW_SAVED = "workflow.saved"  # its draft
    WORKFLOW_PUBLISHED = "workflow.published"
    WORKFLOW_ENABLED = "workflow.enabled"
    WORKFLOW_DISABLED = "workflow.disabled"
    WORKFLOW_DELETED = "workflow.deleted"
    WORKFLOW_RUN_STARTED = "workflow.run_started"  # by a person or a token
    WORKFLOW_RUN_RETRIED = "workflow.run_retried"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated"  # URL, events, number, on/off
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook_endpoint.secret_rotated"  # noqa: S105
    WEBHOOK_TEST_SENT = "webhook_endpoint.test_sent"
    WEBHOOK_DELIVERY_RESENT = "webhook_delivery.resent"  # one, or all failed ones


def _canonical(entry: AuditEntry) -> str:
    body = {
        "workspace_id": entry.workspace_id,
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_user_id": entry.actor_user_id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "ip": entry.ip,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    return hmac.new(key, (prev_hash + _canonical(entry)).encode(), hashlib.sha256).hexdigest()


def _unkeyed_hash(prev_hash: str, entry: AuditEntry) -> str:
    # How entries were hashed before the chain was keyed.
    return hashlib.sha256((prev_hash + _canonical(entry)).encode()).hexdigest()


def _keys(session: Session) -> list[bytes]:
    keys: list[bytes] = session.info.get(AUDIT_KEYS) or []
    if not keys:
        # Never fall back to an unkeyed hash: that entry could be rewritten unnoticed.
        raise RuntimeError("the audit log has no signing key (Runtime.from_settings sets it)")
    return keys


def _lock_chain(session: Session, workspace_id: int | None) -> None:
    # Appends to one chain must be serialised. SQLite's BEGIN IMMEDIATE already holds the
    # write lock; on PostgreSQL a transaction-scoped advisory lock per workspace does it.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"),
            {"a": 0x5A0D17, "b": workspace_id or 0},
        )


def record(
    session: Session,
    *,
    workspace_id: int | None,
    actor: Any,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry. `actor` is an Actor (from the gate), a label string or None (system).

    Never put secrets or, for erasures, personal data into `details`."""
    _lock_chain(session, workspace_id)
    where = (
        AuditEntry.workspace_id.is_(None)
        if workspace_id is None
        else AuditEntry.workspace_id == workspace_id
    )
    # The chain of the workspace the entry names (or the installation's), whatever the
    # session's own scope: a refusal before sign-in is recorded all the same.
    with unscoped(session, "an audit entry names its own workspace"):
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash)
            .where(where)
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    label = actor if isinstance(actor, str) else getattr(actor, "label", None) or "system"
    entry = AuditEntry(
        workspace_id=workspace_id,
        seq=seq,
        at=utcnow(),
        actor_user_id=getattr(actor, "user_id", None),
        actor=label[:200],
        action=action,
        target=target[:200] if target else None,
        details=details or {},
        ip=ip,
        prev_hash=prev,
        hash="",
    )
    entry.hash = entry_hash(_keys(session)[0], prev, entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainProblem:
    workspace_id: int | None
    seq: int
    entry_id: int | None
    kind: str  # "altered" | "removed" | "reordered" | "deleted"
    message: str


@dataclass
class Verification:
    checked: int = 0
    # Entries that verify only with the old, unkeyed hash: intact as far as the chain
    # goes, but someone with database access could have rewritten them.
    unkeyed: int = 0
    problems: list[ChainProblem] = field(default_factory=list)


def _chains(session: Session, workspace_id: int | None, all_chains: bool) -> list[int | None]:
    if not all_chains:
        return [workspace_id]
    rows = set(session.scalars(select(AuditEntry.workspace_id).distinct()).all())
    # A workspace with no chain at all had it deleted: each one starts with its creation.
    rows |= set(session.scalars(select(Workspace.id)).all())
    return sorted(rows, key=lambda w: -1 if w is None else w)


def verify(
    session: Session, workspace_id: int | None = None, *, all_chains: bool = True
) -> Verification:
    """Check every chain (or one). Returns how many entries were checked, how many carry
    only the old unkeyed hash, and the first problem found in each chain."""
    keys = _keys(session)
    result = Verification()
    for ws in _chains(session, workspace_id, all_chains):
        where = AuditEntry.workspace_id.is_(None) if ws is None else AuditEntry.workspace_id == ws
        prev_hash, expected_seq = GENESIS, 1
        keyed_seen = False
        for entry in session.scalars(select(AuditEntry).where(where).order_by(AuditEntry.seq)):
            result.checked += 1
            keyed = _signed_with(keys, entry)
            # Unkeyed entries are accepted only before the first keyed one: an upgrade
            # leaves an old prefix, never a later entry without the key.
            unkeyed = not keyed and not keyed_seen and _unkeyed_ok(entry)
            problem = _check_entry(ws, entry, prev_hash, expected_seq, keyed or unkeyed)
            if problem is not None:
                result.problems.append(problem)
                break
            keyed_seen = keyed_seen or keyed
            result.unkeyed += int(unkeyed)
            prev_hash, expected_seq = entry.hash, entry.seq + 1
        if expected_seq == 1 and ws is not None and all_chains:
            result.problems.append(
                ChainProblem(ws, 1, None, "deleted", "the whole audit log was deleted")
            )
    return result


def _signed_with(keys: list[bytes], entry: AuditEntry) -> bool:
    return any(
        hmac.compare_digest(entry_hash(key, entry.prev_hash, entry), entry.hash) for key in keys
    )


def _unkeyed_ok(entry: AuditEntry) -> bool:
    return hmac.compare_digest(_unkeyed_hash(entry.prev_hash, entry), entry.hash)


def _check_entry(
    ws: int | None, entry: AuditEntry, prev_hash: str, expected_seq: int, hash_ok: bool
) -> ChainProblem | None:
    def problem(kind: str, message: str) -> ChainProblem:
        return ChainProblem(ws, entry.seq, entry.id, kind, message)

    if not hash_ok:
        return problem("altered", f"entry #{entry.seq} (id {entry.id}) was altered")
    if entry.seq != expected_seq:
        return problem("removed", f"entry #{expected_seq} is missing (next found is #{entry.seq})")
    if entry.prev_hash != prev_hash:
        if entry.prev_hash == GENESIS or expected_seq == 1:
            return problem("removed", f"entries before #{entry.seq} were removed")
        return problem(
            "reordered",
            f"entry #{entry.seq} (id {entry.id}) does not follow #{entry.seq - 1}: "
            "entries were reordered or replaced",
        )
    return None


def list_entries(
    session: Session, workspace_id: int, *, limit: int = 200, before_seq: int | None = None
) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))


def count_entries(session: Session, workspace_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.workspace_id == workspace_id)
        )
        or 0
    )


CSV_HEADER = ["seq", "at", "actor", "action", "target", "details", "ip", "hash"]


def export_csv(session: Session, workspace_id: int) -> Iterator[str]:
    """The workspace's log as CSV, oldest first, in chunks for a streaming response."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    query = (
        select(AuditEntry)
        .where(AuditEntry.workspace_id == workspace_id)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=500)
    )
    for n, e in enumerate(session.scalars(query), start=1):
        writer.writerow(
            [
                e.seq,
                e.at.isoformat(),
                e.actor,
                e.action,
                e.target or "",
                json.dumps(e.details, sort_keys=True, ensure_ascii=False),
                e.ip or "",
                e.hash,
            ]
        )
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


DEFERRED_KEY = "puente_audit_deferred"


def record_when_done(session: Session, **entry: Any) -> None:
    """Record an entry in its own transaction once `session`'s unit of work has ended,
    whether it committed or rolled back. For refusals: the refused request rolls back,
    but the attempt must stay in the log. The unit of work's owner calls
    `write_deferred` after closing it (the web's request session does)."""
    # Keep plain values: the actor's rows expire when the refused transaction rolls back.
    entry["actor"] = actor_ref(entry.get("actor"))
    session.info.setdefault(DEFERRED_KEY, []).append(entry)


@dataclass(frozen=True)
class ActorRef:
    label: str
    user_id: int | None


def actor_ref(actor: Any) -> ActorRef:
    """The actor as plain values, to record it from another session or transaction."""
    return ActorRef(
        label=actor if isinstance(actor, str) else getattr(actor, "label", None) or "system",
        user_id=getattr(actor, "user_id", None),
    )


def take_deferred(session: Session) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = session.info.pop(DEFERRED_KEY, [])
    return entries


def write_deferred(db: Any, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        with db.unit_of_work(unscoped="an audit entry names its own workspace") as own:
            record(own, **entry)
