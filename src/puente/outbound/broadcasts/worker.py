"""The broadcast worker's step: start scheduled broadcasts, queue recipients that waited
(for the messaging-limit tier, or after a crash mid-queueing), mark finished broadcasts
completed, and notice replies. The BROADCASTS queue wakes it whenever a broadcast's
progress changes (see queue.publish_progress)."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

from sqlalchemy import select

from puente.conversations.models import Direction, Message
from puente.db.base import utcnow
from puente.events import MessageStored, bus
from puente.jobs import BROADCASTS, Worker, skip_locked
from puente.jobs import install as install_worker
from puente.outbound.broadcasts.queue import CHUNK, queue_pending
from puente.outbound.broadcasts.service import do_finish_if_done, do_note_reply, do_start
from puente.outbound.models import Broadcast, BroadcastState
from puente.runtime import Runtime

# Workers serve every workspace; the rows they claim name their own.
WHY = "the broadcasts of every workspace"

log = logging.getLogger(__name__)


class BroadcastWorker(Worker):
    def __init__(self, runtime: Runtime, *, poll_seconds: float | None = None) -> None:
        idle = poll_seconds or runtime.settings.worker_poll_seconds
        super().__init__("puente-broadcasts", BROADCASTS, self.step, idle_seconds=idle)
        self.runtime = runtime
        self._replies: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._unsubscribe: list[Callable[[], None]] = []

    def start(self) -> None:
        self._unsubscribe = [bus.subscribe(MessageStored, self._on_message)]
        super().start()

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        super().stop()

    def _on_message(self, event: MessageStored) -> None:
        if event.direction == Direction.INBOUND.value:
            self._replies.put(event.message_id)
            self.wake()

    def step(self) -> bool:
        did = self._note_replies()
        db = self.runtime.db
        now = utcnow()
        with db.read(unscoped=WHY) as session:
            due = list(
                session.execute(
                    select(Broadcast.id, Broadcast.state).where(
                        (
                            (Broadcast.state == BroadcastState.SCHEDULED.value)
                            & (Broadcast.scheduled_at <= now)
                        )
                        | (Broadcast.state == BroadcastState.SENDING.value)
                    )
                ).tuples()
            )
        for broadcast_id, state in due:
            try:
                with db.unit_of_work(unscoped=WHY) as session:
                    claim = select(Broadcast).where(Broadcast.id == broadcast_id)
                    broadcast = session.scalar(skip_locked(session, claim))
                    if broadcast is None:
                        continue  # another process is on it
                    if broadcast.state == BroadcastState.SCHEDULED.value:
                        did = do_start(session, broadcast, limit=CHUNK) > 0 or True
                    elif broadcast.state == BroadcastState.SENDING.value:
                        did = queue_pending(session, broadcast, limit=CHUNK) > 0 or did
                        do_finish_if_done(session, broadcast)
            except Exception:
                log.exception("broadcast %s: step failed (state %s)", broadcast_id, state)
        return did

    def _note_replies(self) -> bool:
        ids: list[int] = []
        while len(ids) < 500:
            try:
                ids.append(self._replies.get_nowait())
            except queue.Empty:
                break
        if not ids:
            return False
        with self.runtime.db.unit_of_work(unscoped=WHY) as session:
            rows = session.execute(
                select(Message.workspace_id, Message.contact_id, Message.timestamp).where(
                    Message.id.in_(ids), Message.direction == Direction.INBOUND.value
                )
            ).tuples()
            for workspace_id, contact_id, at in rows:
                do_note_reply(session, workspace_id, contact_id, at)
        return True


def register(runtime: Runtime) -> None:
    """Add the broadcast worker."""
    install_worker(runtime, BroadcastWorker(runtime))
