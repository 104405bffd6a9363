"""What agents do to a conversation together: assign, transfer, close, reopen, snooze,
private notes with @mentions, labels, pausing the bot, unread markers, notifications.

Every change is checked against what the agent saw (`expected_*`), so two agents acting
at once each get a clear answer instead of silently overwriting each other. Changes are
recorded in the conversation's timeline and published after commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.gate import Actor, can_see_conversation
from puente.accounts.models import Membership, Team, User
from puente.conversations import notifications
from puente.conversations.events import conversation_assigned, conversation_updated
from puente.conversations.models import (
    ComposerSubmission,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Mention,
    Message,
    Note,
    Notification,
)
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound, PuenteError
from puente.events import ConversationOpened, NoteAdded, publish
from puente.reports import facts

MAX_NOTE = 4000
MAX_LABEL = 40
MAX_LABELS = 20
CLOSING_NOTE_SETTING = "closing_note_required"
# "@ana" or "@ana.perez": the part of a member's email before the "@", or a first name.
MENTION_RE = re.compile(r"(?<![\w@])@([\w][\w.\-]{0,63})", re.UNICODE)


def user_error(kind: type[PuenteError], template: str, **params: Any) -> PuenteError:
    """An error whose message the web layer can translate: the msgid travels in details."""
    return kind(
        template % params if params else template, details={"template": template, "params": params}
    )


# -- members -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    handle: str  # what follows "@" in a note
    availability: str


def members_query(workspace_id: int) -> Select[tuple[int, str, str, str]]:
    """Active members of the workspace (id, name, email, availability), by name."""
    return (
        select(User.id, User.name, User.email, User.availability)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.workspace_id == workspace_id,
            Membership.is_active.is_(True),
            User.is_active.is_(True),
        )
        .order_by(User.name, User.id)
    )


def member_of(user_id: int, name: str, email: str, availability: str) -> Member:
    return Member(user_id, name, email.split("@", 1)[0].lower(), availability)


def workspace_members(session: Session, workspace_id: int) -> list[Member]:
    """Active members of the workspace, by name (one query)."""
    return [member_of(*r) for r in session.execute(members_query(workspace_id)).tuples()]


def _member(session: Session, workspace_id: int, user_id: int) -> User:
    user = session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            User.id == user_id,
            Membership.workspace_id == workspace_id,
            Membership.is_active.is_(True),
            User.is_active.is_(True),
        )
    )
    if user is None:
        raise user_error(NotFound, "That agent is not an active member of this workspace.")
    return user


def _team(session: Session, workspace_id: int, team_id: int) -> Team:
    team = session.scalar(select(Team).where(Team.id == team_id, Team.workspace_id == workspace_id))
    if team is None:
        raise user_error(NotFound, "That team does not exist in this workspace.")
    return team


# -- timeline, notifications and events -------------------------------------------------------


def _record(
    session: Session, actor: Actor, conversation: Conversation, kind: str, **data: Any
) -> ConversationEvent:
    event = ConversationEvent(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        actor_id=actor.user_id,
        kind=kind,
        data=data,
    )
    session.add(event)
    session.flush()
    return event


def _audit(
    session: Session, actor: Actor, conversation: Conversation, action: str, **details: Any
) -> None:
    """The audit entry for an agent's change (ids only: no note or message text)."""
    audit.record(
        session,
        workspace_id=conversation.workspace_id,
        actor=actor,
        action=action,
        target=f"conversation {conversation.id}",
        details=details,
    )


def publish_conversation(
    session: Session, conversation: Conversation, change: str, *, event_id: int | None = None
) -> None:
    publish(session, conversation_updated(conversation, change, event_id=event_id))


# -- assignment ----------------------------------------------------------------------------


def _check_expected_assignee(
    session: Session, conversation: Conversation, expected: int | str | None
) -> None:
    """`expected` is the assignee the agent saw ("" = none); "any" skips the check."""
    if expected == "any":
        return
    if isinstance(expected, str) and expected not in ("", "none") and not expected.isdigit():
        raise user_error(InvalidInput, "Reload the page and try again.")
    seen = None if expected in (None, "", "none") else int(expected)
    if conversation.assignee_id != seen:
        current = session.get(User, conversation.assignee_id) if conversation.assignee_id else None
        if current is None:
            raise user_error(
                Conflict,
                "Someone changed this conversation meanwhile: it is now unassigned. "
                "Check and try again.",
            )
        raise user_error(
            Conflict,
            "Someone changed this conversation meanwhile: it is now assigned to %(name)s. "
            "Check and try again.",
            name=current.name,
        )


def do_assign(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    *,
    assignee_id: int | None,
    team_id: int | None = None,
    expected_assignee: int | str | None = "any",
) -> Conversation:
    """Assign (or unassign with None) the conversation, optionally transferring it to a team."""
    _check_expected_assignee(session, conversation, expected_assignee)
    assignee = _member(session, conversation.workspace_id, assignee_id) if assignee_id else None
    team = _team(session, conversation.workspace_id, team_id) if team_id else None
    before = conversation.assignee_id
    before_team = conversation.team_id
    conversation.assignee_id = assignee.id if assignee else None
    if team is not None:
        conversation.team_id = team.id
    if before == conversation.assignee_id and before_team == conversation.team_id:
        return conversation
    if before != conversation.assignee_id:
        facts.assigned(session, conversation, utcnow(), previous_assignee_id=before)
    event = _record(
        session,
        actor,
        conversation,
        "assigned" if assignee else "unassigned",
        from_user_id=before,
        to_user_id=conversation.assignee_id,
        to_name=assignee.name if assignee else None,
        team_id=conversation.team_id,
        team_name=team.name if team else None,
    )
    _audit(
        session,
        actor,
        conversation,
        Action.CONVERSATION_ASSIGNED,
        from_user_id=before,
        to_user_id=conversation.assignee_id,
        team_id=conversation.team_id,
    )
    session.flush()
    if assignee is not None and assignee.id != actor.user_id and assignee.id != before:
        by = actor.user.name if actor.user is not None else actor.label
        notifications.do_notify(
            session,
            workspace_id=conversation.workspace_id,
            user_id=assignee.id,
            kind="assigned",
            conversation_id=conversation.id,
            actor_id=actor.user_id,
            text=f"{by} → #{conversation.id}",
        )
    # The previous assignee may no longer see the conversation: tell them too.
    publish(
        session,
        conversation_assigned(conversation, event_id=event.id, previous_assignee_id=before),
    )
    return conversation


# -- status: close, reopen, snooze --------------------------------------------------------------


def _check_expected_status(conversation: Conversation, expected: str | None) -> None:
    if expected and conversation.status != expected:
        raise user_error(
            Conflict,
            "Someone changed this conversation meanwhile: it is now %(status)s. "
            "Check and try again.",
            status=conversation.status,
        )


def do_close(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    *,
    closing_note: str = "",
    note_required: bool = False,
    expected_status: str | None = None,
) -> Conversation:
    _check_expected_status(conversation, expected_status)
    if conversation.status == ConversationStatus.RESOLVED.value:
        raise user_error(Conflict, "This conversation is already closed.")
    closing_note = closing_note.strip()
    if note_required and not closing_note:
        raise user_error(InvalidInput, "A closing note is required to close a conversation.")
    if len(closing_note) > MAX_NOTE:
        raise user_error(
            InvalidInput, "The note is too long (at most %(n)s characters).", n=MAX_NOTE
        )
    facts.resolved(session, conversation, utcnow())
    conversation.status = ConversationStatus.RESOLVED.value
    conversation.snoozed_until = None
    conversation.waiting_since = None
    event = _record(session, actor, conversation, "closed", note=closing_note or None)
    _audit(session, actor, conversation, Action.CONVERSATION_CLOSED)
    publish_conversation(session, conversation, "status", event_id=event.id)
    return conversation


def do_reopen(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    *,
    expected_status: str | None = None,
) -> Conversation:
    _check_expected_status(conversation, expected_status)
    if conversation.status == ConversationStatus.OPEN.value:
        raise user_error(Conflict, "This conversation is already open.")
    if conversation.status == ConversationStatus.RESOLVED.value:
        facts.opened(session, conversation, utcnow(), reopened=True, source="agent")
        opened = ConversationOpened(
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
            channel_id=conversation.channel_id,
            contact_id=conversation.contact_id,
            reopened=True,
            source="agent",
        )
        publish(session, opened)
    conversation.status = ConversationStatus.OPEN.value
    conversation.snoozed_until = None
    event = _record(session, actor, conversation, "reopened")
    _audit(session, actor, conversation, Action.CONVERSATION_REOPENED)
    publish_conversation(session, conversation, "status", event_id=event.id)
    return conversation


def do_snooze(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    *,
    until: dt.datetime,
    now: dt.datetime | None = None,
    expected_status: str | None = None,
) -> Conversation:
    _check_expected_status(conversation, expected_status)
    now = now or utcnow()
    if until.tzinfo is None:
        raise ValueError("snooze time must be timezone-aware")
    if until <= now:
        raise user_error(InvalidInput, "Choose a time in the future to snooze until.")
    conversation.status = ConversationStatus.SNOOZED.value
    conversation.snoozed_until = until
    event = _record(session, actor, conversation, "snoozed", until=until.isoformat())
    _audit(session, actor, conversation, Action.CONVERSATION_SNOOZED, until=until.isoformat())
    publish_conversation(session, conversation, "status", event_id=event.id)
    return conversation


def wake_snoozed(session: Session, now: dt.datetime | None = None) -> int:
    """Reopen conversations whose snooze time has passed. Returns how many."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.SNOOZED.value,
                Conversation.snoozed_until <= now,
            )
            .limit(500)
        )
    )
    for conversation in due:
        conversation.status = ConversationStatus.OPEN.value
        conversation.snoozed_until = None
        session.add(
            ConversationEvent(
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                kind="snooze_ended",
                data={},
            )
        )
        publish_conversation(session, conversation, "status")
    return len(due)


# -- notes and mentions -----------------------------------------------------------------------


def mentioned_members(body: str, members: list[Member]) -> list[Member]:
    """Members named with @handle (email local part) or @FirstName when that is unique."""
    by_handle = {m.handle: m for m in members}
    by_first: dict[str, list[Member]] = {}
    for m in members:
        first = m.name.split()[0].lower() if m.name.split() else ""
        by_first.setdefault(first, []).append(m)
    found: dict[int, Member] = {}
    for raw in MENTION_RE.findall(body):
        word = raw.rstrip(".-").lower()
        member = by_handle.get(word)
        if member is None and len(by_first.get(word, [])) == 1:
            member = by_first[word][0]
        if member is not None:
            found[member.id] = member
    return list(found.values())


def do_add_note(session: Session, actor: Actor, conversation: Conversation, body: str) -> Note:
    body = body.strip()
    if not body:
        raise user_error(InvalidInput, "Write the note first.")
    if len(body) > MAX_NOTE:
        raise user_error(
            InvalidInput, "The note is too long (at most %(n)s characters).", n=MAX_NOTE
        )
    note = Note(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        author_id=actor.user_id,
        body=body,
    )
    session.add(note)
    session.flush()
    _audit(session, actor, conversation, Action.NOTE_ADDED, note_id=note.id)
    mentioned = mentioned_members(body, workspace_members(session, conversation.workspace_id))
    by = actor.user.name if actor.user is not None else actor.label
    for member in mentioned:
        session.add(
            Mention(workspace_id=conversation.workspace_id, note_id=note.id, user_id=member.id)
        )
        if member.id != actor.user_id:
            notifications.do_notify(
                session,
                workspace_id=conversation.workspace_id,
                user_id=member.id,
                kind="mention",
                conversation_id=conversation.id,
                actor_id=actor.user_id,
                text=f"{by}: {body}",
            )
    session.flush()
    publish(
        session,
        NoteAdded(
            workspace_id=conversation.workspace_id, conversation_id=conversation.id, note_id=note.id
        ),
    )
    return note


# -- labels, bot, unread ------------------------------------------------------------------------


def clean_label(raw: str) -> str:
    label = " ".join(raw.strip().lower().split())
    if not label:
        raise user_error(InvalidInput, "Write the label first.")
    if len(label) > MAX_LABEL:
        raise user_error(InvalidInput, "A label has at most %(n)s characters.", n=MAX_LABEL)
    return label


def do_add_label(session: Session, actor: Actor, conversation: Conversation, raw: str) -> None:
    label = clean_label(raw)
    labels = list(conversation.labels or [])
    if label in labels:
        return
    if len(labels) >= MAX_LABELS:
        raise user_error(InvalidInput, "A conversation has at most %(n)s labels.", n=MAX_LABELS)
    conversation.labels = [*labels, label]
    event = _record(session, actor, conversation, "label_added", label=label)
    _audit(session, actor, conversation, Action.CONVERSATION_LABELLED, label=label)
    publish_conversation(session, conversation, "labels", event_id=event.id)


def do_remove_label(session: Session, actor: Actor, conversation: Conversation, raw: str) -> None:
    label = clean_label(raw)
    labels = list(conversation.labels or [])
    if label not in labels:
        return
    conversation.labels = [x for x in labels if x != label]
    event = _record(session, actor, conversation, "label_removed", label=label)
    _audit(session, actor, conversation, Action.CONVERSATION_UNLABELLED, label=label)
    publish_conversation(session, conversation, "labels", event_id=event.id)


def do_set_bot_paused(
    session: Session, actor: Actor, conversation: Conversation, *, paused: bool
) -> None:
    if conversation.bot_paused == paused and conversation.bot_paused_until is None:
        return
    conversation.bot_paused = paused
    conversation.bot_paused_until = None  # a person's choice holds until changed
    event = _record(session, actor, conversation, "bot_paused" if paused else "bot_resumed")
    _audit(session, actor, conversation, Action.BOT_PAUSED if paused else Action.BOT_RESUMED)
    publish_conversation(session, conversation, "bot", event_id=event.id)


def do_mark_unread(session: Session, actor: Actor, conversation: Conversation) -> None:
    conversation.unread_count = max(conversation.unread_count or 0, 1)
    publish_conversation(session, conversation, "unread")


def do_mark_read(session: Session, conversation: Conversation) -> bool:
    """Clear the unread marker when an agent opens the conversation (one UPDATE)."""
    if not conversation.unread_count:
        return False
    # An UPDATE by id: the page may have loaded the conversation through a reader session.
    session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation.id,
            Conversation.workspace_id == conversation.workspace_id,
        )
        .values(unread_count=0)
    )
    publish_conversation(session, conversation, "read")
    return True


# -- notifications --------------------------------------------------------------------------


def unread_notifications(session: Session, actor: Actor, limit: int = 20) -> list[Notification]:
    if actor.user_id is None:
        return []
    return list(
        session.scalars(
            select(Notification)
            .where(
                Notification.workspace_id == actor.workspace_id,
                Notification.user_id == actor.user_id,
                Notification.read_at.is_(None),
            )
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def do_read_notifications(
    session: Session, actor: Actor, conversation_id: int | None = None
) -> int:
    if actor.user_id is None:
        return 0
    stmt = update(Notification).where(
        Notification.workspace_id == actor.workspace_id,
        Notification.user_id == actor.user_id,
        Notification.read_at.is_(None),
    )
    if conversation_id is not None:
        stmt = stmt.where(Notification.conversation_id == conversation_id)
    result = session.execute(stmt.values(read_at=utcnow()))
    changed = int(getattr(result, "rowcount", 0) or 0)
    if changed:
        notifications.publish_read(session, actor)
    return changed


def visible_to(actor: Actor, conversation: Conversation) -> bool:
    return can_see_conversation(actor, conversation)


# -- sending from the composer exactly once ----------------------------------------------------


def do_send_once(
    session: Session, workspace_id: int, key: str, send: Callable[[], Message]
) -> tuple[Message, bool]:
    """Run `send` unless a request with the same browser key already did; returns the
    message and whether it is new. A double click or a retried request sends nothing twice."""
    key = key.strip()[:64]
    if not key:
        return send(), True
    existing = _submitted(session, workspace_id, key)
    if existing is not None:
        return existing, False
    submission = ComposerSubmission(workspace_id=workspace_id, key=key)
    try:
        with session.begin_nested():
            session.add(submission)
            session.flush()
    except IntegrityError:
        # Another request with this key committed first: show its message.
        again = _submitted(session, workspace_id, key)
        if again is None:
            raise user_error(Conflict, "This message is already being sent.") from None
        return again, False
    message = send()
    submission.message_id = message.id
    session.flush()
    return message, True


def _submitted(session: Session, workspace_id: int, key: str) -> Message | None:
    return session.scalar(
        select(Message)
        .join(ComposerSubmission, ComposerSubmission.message_id == Message.id)
        .where(ComposerSubmission.workspace_id == workspace_id, ComposerSubmission.key == key)
    )
