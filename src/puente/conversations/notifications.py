"""Agents' notifications: assignments, mentions and new customer messages in the
conversations assigned to them, each kind in-app and/or in the browser as the agent
chose. New messages of one conversation collapse into one unread notification.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor
from puente.accounts.models import User
from puente.conversations.incoming import Stored, preview_of
from puente.conversations.models import UNREAD_MESSAGE, Direction, MessageSource, Notification
from puente.db.base import utcnow
from puente.events import NotificationCreated, NotificationsRead, publish

KINDS = ("assigned", "mention", "message")
WAYS = ("app", "browser")  # in the inbox's list and counter / as a system notification
MAX_TEXT = 300


def wants(prefs: dict[str, Any] | None, kind: str, way: str) -> bool:
    # Everything is on until the agent turns it off.
    return bool((prefs or {}).get(f"{kind}.{way}", True))


def do_set_notification_prefs(session: Session, user: User, chosen: set[str]) -> None:
    """`chosen` holds "kind.way" keys that are on; every other combination is off."""
    user.notification_prefs = {f"{k}.{w}": f"{k}.{w}" in chosen for k in KINDS for w in WAYS}
    session.flush()


def unread_count(session: Session, workspace_id: int, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(Notification.id)).where(
                Notification.workspace_id == workspace_id,
                Notification.user_id == user_id,
                Notification.read_at.is_(None),
            )
        )
        or 0
    )


def _publish(
    session: Session,
    *,
    workspace_id: int,
    user_id: int,
    kind: str,
    notification_id: int | None,
    conversation_id: int | None,
    text: str,
    browser: bool,
) -> None:
    publish(
        session,
        NotificationCreated(
            workspace_id=workspace_id,
            to_user_id=user_id,
            notification_id=notification_id,
            notification_kind=kind,
            conversation_id=conversation_id,
            text=text,
            in_app=notification_id is not None,
            browser=browser,
            unread=unread_count(session, workspace_id, user_id),
        ),
    )


def do_notify(
    session: Session,
    *,
    workspace_id: int,
    user_id: int,
    kind: str,
    conversation_id: int | None,
    actor_id: int | None,
    text: str,
) -> Notification | None:
    """An assignment or mention notification, as the user's preferences allow; pushed
    live to that user's browsers after commit. None when only the browser shows it."""
    user = session.get(User, user_id)
    prefs = user.notification_prefs if user is not None else None
    in_app, browser = wants(prefs, kind, "app"), wants(prefs, kind, "browser")
    if not (in_app or browser):
        return None
    notification = None
    if in_app:
        notification = Notification(
            workspace_id=workspace_id,
            user_id=user_id,
            kind=kind,
            conversation_id=conversation_id,
            actor_id=actor_id,
            text=text[:MAX_TEXT],
        )
        session.add(notification)
        session.flush()
    _publish(
        session,
        workspace_id=workspace_id,
        user_id=user_id,
        kind=kind,
        notification_id=notification.id if notification else None,
        conversation_id=conversation_id,
        text=text[:MAX_TEXT],
        browser=browser,
    )
    return notification


# -- new messages in my conversations ----------------------------------------------------


def _is_news(stored: Stored) -> bool:
    """A customer writing now: not imported history, not the owner's phone, not an agent."""
    item = stored.message
    if item.source != MessageSource.CUSTOMER.value or item.direction != Direction.INBOUND.value:
        return False
    if item.type == "system":
        return False
    return not (item.type == "reaction" and not item.text)


def notify_new_messages(session: Session, stored: Sequence[Stored]) -> None:
    """One unread "message" notification per assigned conversation that got news, its
    count raised by each further message until the agent reads it."""
    latest: dict[int, Stored] = {}
    counts: dict[int, int] = {}
    for s in stored:
        if s.conversation.assignee_id is None or not _is_news(s):
            continue
        latest[s.conversation.id] = s  # `stored` is in time order
        counts[s.conversation.id] = counts.get(s.conversation.id, 0) + 1
    if not latest:
        return
    assignees = {s.conversation.assignee_id for s in latest.values()}
    rows = session.execute(select(User.id, User.notification_prefs).where(User.id.in_(assignees)))
    # Not dict(rows): a Result has keys() and would be read as a mapping.
    prefs = {user_id: chosen for user_id, chosen in rows.tuples()}
    for conversation_id, s in latest.items():
        user_id = s.conversation.assignee_id
        assert user_id is not None
        in_app = wants(prefs.get(user_id), "message", "app")
        browser = wants(prefs.get(user_id), "message", "browser")
        if not (in_app or browser):
            continue
        text = preview_of(s.message)[:MAX_TEXT]
        notification_id = None
        if in_app:
            notification_id = _upsert_message(
                session,
                workspace_id=s.conversation.workspace_id,
                user_id=user_id,
                conversation_id=conversation_id,
                text=text,
                count=counts[conversation_id],
            )
        _publish(
            session,
            workspace_id=s.conversation.workspace_id,
            user_id=user_id,
            kind="message",
            notification_id=notification_id,
            conversation_id=conversation_id,
            text=text,
            browser=browser,
        )


def _upsert_message(
    session: Session,
    *,
    workspace_id: int,
    user_id: int,
    conversation_id: int,
    text: str,
    count: int,
) -> int:
    # One statement on both engines, so two workers storing messages of the same
    # conversation at once still leave a single unread notification.
    table: Any = Notification.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(
        workspace_id=workspace_id,
        user_id=user_id,
        kind="message",
        conversation_id=conversation_id,
        text=text,
        message_count=count,
        created_at=utcnow(),
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.conversation_id],
        index_where=sql_text(UNREAD_MESSAGE),
        set_={
            "text": stmt.excluded.text,
            "message_count": table.c.message_count + stmt.excluded.message_count,
            "created_at": stmt.excluded.created_at,
        },
    ).returning(table.c.id)
    return int(session.execute(upsert).scalar_one())


# -- reading ---------------------------------------------------------------------------------


def do_read_notification(session: Session, actor: Actor, notification_id: int) -> bool:
    """Mark one of the actor's own notifications read; False if it was not theirs/unread."""
    if actor.user_id is None:
        return False
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.workspace_id == actor.workspace_id,
            Notification.user_id == actor.user_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    changed = bool(getattr(result, "rowcount", 0))
    if changed:
        publish_read(session, actor)
    return changed


def publish_read(session: Session, actor: Actor) -> None:
    """Tell the actor's other tabs the new unread count."""
    if actor.user_id is None:
        return
    publish(
        session,
        NotificationsRead(
            workspace_id=actor.workspace_id,
            to_user_id=actor.user_id,
            unread=unread_count(session, actor.workspace_id, actor.user_id),
        ),
    )
