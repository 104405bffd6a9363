"""Domain events: one small typed class per thing that happened, published into the unit
of work and delivered to the subscribers of its type only after the transaction commits.

The classes are pure data and know no table, so any layer may subscribe to them; each is
built from the domain's rows by the domain that owns it (conversations/events.py,
channels/events.py, ...). Every class registers itself by name, so an event that crosses
processes (PostgreSQL NOTIFY, see conversations/realtime.py) comes back as the same type.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer
from sqlalchemy.orm import Session

from puente.db.session import on_commit

log = logging.getLogger(__name__)

# What browsers have always been sent (`datetime.isoformat`), not pydantic's "Z" form.
Timestamp = Annotated[dt.datetime, PlainSerializer(dt.datetime.isoformat, when_used="json")]

_REGISTRY: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Something that happened in a workspace. Subclasses name their `kind`, the name the
    browsers' scripts (static/inbox.js, notify.js) switch on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]
    workspace_id: int

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not hasattr(cls, "kind"):
            return  # an audience base (ConversationEvent, PersonalEvent), never published
        if cls.__name__ in _REGISTRY:
            raise TypeError(f"two event types are named {cls.__name__}")
        _REGISTRY[cls.__name__] = cls

    def to_browser(self) -> dict[str, Any]:
        """The JSON object an agent's browser receives for this event."""
        # Only a conversation's events name one at the top: the browser reads it to know
        # whether the event is about the conversation on screen.
        conversation_id = self.conversation_id if isinstance(self, ConversationEvent) else None
        return {
            "workspace_id": self.workspace_id,
            "kind": self.kind,
            "conversation_id": conversation_id,
            "data": self.model_dump(mode="json", exclude={"workspace_id"}),
        }


class ConversationEvent(Event):
    """Seen by whoever may see the conversation (the gate decides, at delivery)."""

    conversation_id: int


class PersonalEvent(Event):
    """Seen by one user only (their notifications and unread count)."""

    to_user_id: int


def event_types() -> dict[str, type[Event]]:
    """Every event type by name."""
    return dict(_REGISTRY)


def dumps(event: Event) -> str:
    """The event as text another process turns back into the same type with `loads`."""
    body = {"type": type(event).__name__, "event": event.model_dump(mode="json")}
    return json.dumps(body, separators=(",", ":"))


def loads(text: str) -> Event:
    raw = json.loads(text)
    return _REGISTRY[raw["type"]].model_validate(raw["event"])


# -- messages -----------------------------------------------------------------------------


class MessageStored(ConversationEvent):
    """A message was stored: a customer's, an echo from the owner's phone, or one queued to
    send (then with its outbox item)."""

    kind: ClassVar[str] = "message.created"
    message_id: int
    wamid: str | None
    channel_id: int
    direction: str
    source: str
    type: str
    status: str
    outbox_id: int | None = None
    opened: bool = False  # a customer's message that began or reopened the conversation


class MessageStatusChanged(ConversationEvent):
    kind: ClassVar[str] = "message.status"
    message_id: int
    wamid: str | None
    channel_id: int
    direction: str
    source: str
    type: str
    status: str
    error: dict[str, Any] | None = None
    at: Timestamp


class MediaInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    state: str
    mime_type: str | None
    file_size: int | None


class MessageUpdated(ConversationEvent):
    """A message was edited or revoked by its sender, or its media file changed state."""

    kind: ClassVar[str] = "message.updated"
    message_id: int
    wamid: str | None
    edited: bool
    revoked: bool
    media: MediaInfo | None = None


# -- conversations ------------------------------------------------------------------------


class ConversationUpdated(ConversationEvent):
    """The conversation's list entry or panel changed; `change` says what (None: a new
    message moved it), `event_id` names the timeline entry recording it, if any."""

    kind: ClassVar[str] = "conversation.updated"
    channel_id: int
    change: str | None
    status: str
    assignee_id: int | None
    team_id: int | None
    event_id: int | None = None


class ConversationAssigned(ConversationUpdated):
    # The previous assignee may no longer see the conversation; they are told too.
    also_user_ids: tuple[int, ...] = ()


class ConversationOpened(ConversationEvent):
    """A conversation began (its first customer message) or began again (a customer wrote
    to a closed one, or an agent reopened it): outgoing webhooks' conversation.created."""

    kind: ClassVar[str] = "conversation.opened"
    channel_id: int
    contact_id: int
    reopened: bool
    source: str  # who opened it: a MessageSource, or "agent"


class NoteAdded(ConversationEvent):
    kind: ClassVar[str] = "note.created"
    note_id: int


class AgentTyping(ConversationEvent):
    """Ephemeral: relayed at once by the realtime hub, never through a transaction."""

    kind: ClassVar[str] = "agent.typing"
    user_id: int
    name: str


class NotificationCreated(PersonalEvent):
    kind: ClassVar[str] = "notification.created"
    notification_id: int | None  # None when only the browser shows it
    notification_kind: str
    conversation_id: int | None
    text: str
    in_app: bool
    browser: bool
    unread: int


class NotificationsRead(PersonalEvent):
    kind: ClassVar[str] = "notification.read"
    unread: int


# -- contacts -----------------------------------------------------------------------------


class ContactCreated(Event):
    kind: ClassVar[str] = "contact.created"
    contact_id: int


class ContactUpdated(Event):
    kind: ClassVar[str] = "contact.updated"
    contact_id: int
    # Which of the fields agents own changed ("name", "custom.<field>"); empty when the
    # change came from WhatsApp or the phone.
    fields: tuple[str, ...] = ()


class ContactErased(Event):
    """A contact is being erased (published before its rows go, in the same transaction,
    so reactions can still find what hangs off it)."""

    kind: ClassVar[str] = "contact.erased"
    contact_id: int


class ContactTagged(Event):
    """Tags were added to a contact (not removed): workflows may start on it."""

    kind: ClassVar[str] = "contact.tagged"
    contact_id: int
    tags: tuple[str, ...]


class ContactsImported(Event):
    """One event for a whole file: one per row would flood live listeners and NOTIFY."""

    kind: ClassVar[str] = "contacts.imported"
    created: int
    updated: int


class ConsentChanged(Event):
    kind: ClassVar[str] = "contact.consent"
    contact_id: int
    scope: str
    state: str


class ContactMerged(Event):
    """Another contact was absorbed into `contact_id` (and no longer exists)."""

    kind: ClassVar[str] = "contact.merged"
    contact_id: int
    merged_contact_id: int


# -- channels, templates, broadcasts, people ------------------------------------------------


class ChannelUpdated(Event):
    """A number's connection, phone activity and health, always whole."""

    kind: ClassVar[str] = "channel.updated"
    channel_id: int
    connection_state: str
    state_reason: str | None
    last_phone_activity_at: Timestamp | None
    quality_rating: str | None
    quality_event: str | None
    messaging_limit_tier: str
    throughput_mps: int
    name_status: str | None


class ChannelConnectionChanged(Event):
    """A number's connection state changed (connected, disconnected, syncing, ...)."""

    kind: ClassVar[str] = "channel.connection"
    channel_id: int
    connection_state: str
    previous_state: str | None
    state_reason: str | None


class ChannelSyncProgress(Event):
    kind: ClassVar[str] = "channel.sync_progress"
    channel_id: int
    history_state: str
    phase: int | None
    progress: dict[str, int]
    overall: int
    chunks: int
    messages: int
    contacts_state: str
    contacts_synced: int


class TemplateStatusChanged(Event):
    kind: ClassVar[str] = "template.status"
    template_id: int
    waba_id: str
    name: str
    language: str
    status: str
    reason: str | None
    category: str | None


class BroadcastProgress(Event):
    kind: ClassVar[str] = "broadcast.progress"
    broadcast_id: int
    state: str


class BroadcastReplied(Event):
    """A recipient wrote back after a broadcast: the hook automation subscribes to."""

    kind: ClassVar[str] = "broadcast.replied"
    broadcast_id: int
    recipient_id: int
    contact_id: int
    message_id: int | None
    replied_at: Timestamp | None


class WorkflowRunFinished(Event):
    """A workflow run ended: done, failed or stopped."""

    kind: ClassVar[str] = "workflow_run.finished"
    run_id: int
    workflow_id: int
    status: str
    contact_id: int | None
    conversation_id: int | None
    error: str | None = None


class PresenceChanged(Event):
    kind: ClassVar[str] = "presence.changed"
    user_id: int
    availability: str


# -- delivery -------------------------------------------------------------------------------

E = TypeVar("E", bound=Event)


class EventBus:
    """Hands each committed event to the handlers subscribed to its type or a base of it
    (`Event` for all of them)."""

    def __init__(self) -> None:
        self._handlers: list[tuple[type[Event], Callable[[Any], None]]] = []
        self._lock = threading.Lock()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call `handler` with every event of `event_type`; returns the unsubscribe."""
        entry: tuple[type[Event], Callable[[Any], None]] = (event_type, handler)
        with self._lock:
            self._handlers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._handlers:
                    self._handlers.remove(entry)

        return unsubscribe

    def deliver(self, event: Event) -> None:
        with self._lock:
            handlers = [h for t, h in self._handlers if isinstance(event, t)]
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed for %s", type(event).__name__)


# One bus per process. Tests that need isolation subscribe and unsubscribe around their work.
bus = EventBus()


# -- reactions inside the transaction ---------------------------------------------------

Reaction = Callable[[Session, Any], None]
_REACTIONS: list[tuple[type[Event], Reaction]] = []


def react(event_type: type[E], reaction: Callable[[Session, E], None]) -> None:
    """Run `reaction(session, event)` for every event of `event_type` as it is published,
    inside the transaction that caused it: what it writes (an away message queued in the
    outbox, a workflow run started) commits with the change or not at all, so a crash
    between the two can neither lose it nor do it twice. Subscribers of the bus, by
    contrast, hear of an event only after the commit and keep nothing durable.

    Registered once per process at import time by the module that reacts (see
    `puente.automation`); a reaction that raises fails the unit of work it runs in."""
    _REACTIONS.append((event_type, reaction))


# Every module that registers reactions, imported by the first `publish` of any process
# (the web, a worker, a CLI command such as `puente contacts merge`), so that no process
# commits a change without what reacts to it: an outgoing webhook's delivery, a report
# fact, a workflow run. Named, not imported here: they import this module.
# tests/test_events.py checks that every module calling `react` is listed.
REACTION_MODULES = (
    "puente.automation.reactions",
    "puente.channels.chat_links",
    "puente.integrations.webhooks.reactions",
    "puente.reports.csat",
    "puente.reports.hooks",
)
_reactions_loaded = threading.Event()
_loading = threading.Lock()


def load_reactions() -> None:
    if _reactions_loaded.is_set():
        return
    with _loading:
        if not _reactions_loaded.is_set():
            for name in REACTION_MODULES:
                importlib.import_module(name)
            _reactions_loaded.set()


def publish(session: Session, event: Event) -> None:
    """Run the event's reactions now, in the transaction, and queue it for the bus's
    subscribers once `session` commits (dropped on rollback)."""
    load_reactions()
    for event_type, reaction in _REACTIONS:
        if isinstance(event, event_type):
            reaction(session, event)
    on_commit(session, lambda: bus.deliver(event))
