"""Live updates for agents' browsers: a hub that receives domain events after commit and
fans them out to the Server-Sent Event streams of the people allowed to see them.

In one process the hub subscribes to every event type on `puente.events.bus`. On
PostgreSQL it also relays every local event with NOTIFY (`puente.events.dumps`, so the
other side gets the same type back) and LISTENs for other processes' events, so an agent
connected to any web process sees what any worker or web process committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, text

from puente.accounts.gate import Actor, can_see_conversation
from puente.conversations.models import Conversation
from puente.db.session import Database
from puente.events import (
    ConversationAssigned,
    ConversationEvent,
    Event,
    EventBus,
    PersonalEvent,
    dumps,
    loads,
)
from puente.runtime import BackgroundWorker

log = logging.getLogger(__name__)

CHANNEL = "puente_events"
# NOTIFY payloads must stay under 8000 bytes. Events carry ids and short texts (a
# notification's is cut to 300 characters), so one bigger than this is a bug to see.
MAX_NOTIFY = 7000
# How long the dispatcher thread lingers with nobody connected before it stops.
IDLE_STOP_SECONDS = 30.0
RETRY_PAUSES = (0.02, 0.05, 0.1, 0.2)


@dataclass(eq=False)
class Subscription:
    """One open event stream: who is watching and where their events go."""

    actor: Actor
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))

    def push(self, payload: str) -> None:
        def put() -> None:
            if self.queue.full():
                return  # a stalled browser loses events, never the server's memory
            self.queue.put_nowait(payload)

        # A closed loop means the stream is gone; it unsubscribes itself.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(put)


def browser_payload(event: Event) -> str:
    """What an agent's browser receives: the one place its JSON is derived from an event."""
    return json.dumps(event.to_browser(), separators=(",", ":"))


class RealtimeHub:
    """Routes domain events to subscriptions, asking the gate who may see each one."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._subs: dict[int, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._inbox: queue.Queue[tuple[str, Event]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._listener: _PgListener | None = None
        self._closed = False
        self._bus = bus
        self._unsubscribe: Callable[[], None] | None = None

    def open(self) -> None:
        """Start relaying this process's events: when the app starts serving (its
        lifespan) or the workers start (`puente worker`), never at construction. A hub of
        an app that was built but never run (a test's, a command's) would otherwise relay
        every event of the process until it was garbage collected, and on PostgreSQL its
        NOTIFYs reached the live hubs as a second copy of each event."""
        with self._lock:
            if self._closed or self._unsubscribe is not None:
                return
            # The bus holds the hub weakly, so a hub whose app is gone stops receiving.
            ref = weakref.ref(self)

            def relay(event: Event) -> None:
                hub = ref()
                if hub is None:
                    unsubscribe()
                else:
                    hub._on_local_event(event)

            unsubscribe = self._bus.subscribe(Event, relay)
            self._unsubscribe = unsubscribe

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(self, actor: Actor, loop: asyncio.AbstractEventLoop) -> Subscription:
        sub = Subscription(actor, loop)
        if self._closed:
            return sub  # shutting down: the stream ends with the server
        with self._lock:
            self._subs.setdefault(actor.workspace_id, set()).add(sub)
            self._ensure_threads()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.actor.workspace_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.actor.workspace_id]

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def close(self) -> None:
        """Stop relaying (the app shuts down): no more NOTIFY, LISTEN or fan-out."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._listener is not None:
            self._listener.stop()

    def _ensure_threads(self) -> None:
        self._ensure_dispatcher()
        if self.db.is_postgres and (self._listener is None or not self._listener.alive()):
            self._listener = _PgListener(self)
            self._listener.start()

    def _ensure_dispatcher(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._dispatch_loop, name="realtime-dispatch", daemon=True
            )
            self._thread.start()

    # -- receiving --------------------------------------------------------------------

    def _on_local_event(self, event: Event) -> None:
        # Called in the committing thread: hand over at once, decide in the dispatcher.
        if self._closed:
            return
        with self._lock:
            watched = event.workspace_id in self._subs
            if self.db.is_postgres:
                # Other processes' browsers may be watching even when nobody here is.
                self._inbox.put(("notify", event))
                self._ensure_dispatcher()
        if watched:
            self._inbox.put(("local", event))

    def receive_remote(self, payload: str) -> None:
        """An event NOTIFYed by a process (maybe this one: its own are skipped)."""
        try:
            origin, _, body = payload.partition("|")
            if origin == self.origin:
                return
            event = loads(body)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed realtime notification")
            return
        with self._lock:
            watched = event.workspace_id in self._subs
        if watched:
            self._inbox.put(("local", event))

    def deliver_now(self, event: Event) -> None:
        """Fan an ephemeral event (typing, presence) out without a transaction."""
        self._on_local_event(event)

    # -- dispatching ------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        idle = 0.0
        while True:
            try:
                what, event = self._inbox.get(timeout=1.0)
            except queue.Empty:
                idle += 1.0
                with self._lock:
                    if not self._subs and idle >= IDLE_STOP_SECONDS and self._inbox.empty():
                        self._thread = None
                        return
                continue
            idle = 0.0
            try:
                if what == "notify":
                    self._notify(event)
                else:
                    self.dispatch(event)
            except Exception:
                log.exception("realtime dispatch failed for %s", type(event).__name__)

    def _notify(self, event: Event) -> None:
        body = dumps(event)
        if len(body) > MAX_NOTIFY:
            log.error("%s too big to NOTIFY (%d bytes)", type(event).__name__, len(body))
            return
        with self.db.engine.connect() as conn:
            conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": f"{self.origin}|{body}"},
            )
            conn.commit()

    def recipients(self, event: Event) -> list[Subscription]:
        with self._lock:
            subs = list(self._subs.get(event.workspace_id, ()))
        if not subs:
            return []
        if isinstance(event, PersonalEvent):
            return [s for s in subs if s.actor.user_id == event.to_user_id]
        if not isinstance(event, ConversationEvent):
            return subs
        conversation = self._conversation(event.workspace_id, event.conversation_id)
        for pause in RETRY_PAUSES:
            if conversation is not None:
                break
            # Seen on SQLite under load: a conversation created by the transaction that
            # published the event was not yet visible to a read begun right after it.
            time.sleep(pause)
            conversation = self._conversation(event.workspace_id, event.conversation_id)
        if conversation is None:
            return []
        also = set(event.also_user_ids) if isinstance(event, ConversationAssigned) else set()
        return [
            s
            for s in subs
            if can_see_conversation(s.actor, conversation) or s.actor.user_id in also
        ]

    def _conversation(self, workspace_id: int, conversation_id: int) -> Conversation | None:
        # Read fresh from the database: an assignment may have changed who sees it.
        with self.db.read(scope=workspace_id) as session:
            row = session.execute(
                select(Conversation.assignee_id, Conversation.team_id).where(
                    Conversation.id == conversation_id,
                    Conversation.workspace_id == workspace_id,
                )
            ).first()
        if row is None:
            return None
        # A detached stand-in carrying what the gate looks at.
        return Conversation(
            id=conversation_id, workspace_id=workspace_id, assignee_id=row[0], team_id=row[1]
        )

    def dispatch(self, event: Event) -> None:
        targets = self.recipients(event)
        if not targets:
            return
        payload = browser_payload(event)
        for sub in targets:
            sub.push(payload)


class _PgListener:
    """LISTENs on PostgreSQL for events committed by other processes."""

    def __init__(self, hub: RealtimeHub) -> None:
        self.hub = hub
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realtime-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        url = self.hub.db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.hub.receive_remote(note.payload)
                        if self.hub.subscriber_count() == 0:
                            self._stop.wait(1.0)
            except Exception:
                log.exception("realtime LISTEN connection failed; retrying")
                self._stop.wait(2.0)


class HubCloser(BackgroundWorker):
    """Opens the realtime hub when the workers start and closes it when they stop (at
    shutdown), so a stopped app never keeps relaying events; it runs nothing of its own."""

    def __init__(self, hub: RealtimeHub) -> None:
        super().__init__("realtime-hub", lambda: False)
        self.hub = hub

    def start(self) -> None:
        self.hub.open()

    def stop(self) -> None:
        self.hub.close()

    def join(self, timeout: float = 10) -> None:
        pass
