"""Domain events for live updates, released only after the transaction commits.

In one process (SQLite) subscribers are called in-process; on PostgreSQL the publisher
also sends NOTIFY so other web processes can relay events to their browsers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from puente.db.session import on_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainEvent:
    workspace_id: int
    kind: str  # e.g. "message.created", "message.status", "conversation.updated"
    data: dict[str, Any] = field(default_factory=dict)
    # Who may see it: None means anyone allowed to see the conversation (decided by the gate).
    conversation_id: int | None = None


Subscriber = Callable[[DomainEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def deliver(self, event: DomainEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed for %s", event.kind)


# One bus per process. Tests that need isolation subscribe and unsubscribe around their work.
bus = EventBus()


def publish(session: Session, event: DomainEvent) -> None:
    """Queue `event` for delivery once `session` commits (dropped on rollback)."""
    on_commit(session, lambda: bus.deliver(event))
