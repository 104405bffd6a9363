"""What starts a run, and what a waiting run hears: reactions inside the transaction that
stored a customer's message, closed a conversation, tagged a contact or noted a
broadcast reply, so that a run is created with the change or not at all.

Only a customer's own message counts (automation.reactions filters echoes from the
phone, imported history and whatever Puente or an agent sent). One event starts each
matching workflow once: the run's `trigger_key` is unique per workflow, so a message
Meta delivers twice (stored once anyway) cannot start a second run. A workflow's own
effects (its close step closing the conversation) never start that same workflow.

The enabled workflows of a workspace are kept per process for a couple of seconds
(`WorkflowIndex`), so a workspace without workflows costs an inbound message nothing,
and one with fifty costs a look-up in memory; a change made in this process is seen at
once, one made in another within `INDEX_SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from puente.automation.answered import mark_answered
from puente.automation.hours import cached_hours, is_open
from puente.automation.workflows.context import RunContext, fold
from puente.automation.workflows.definition import SENDING_STEPS, Definition, Trigger
from puente.automation.workflows.engine import (
    N_,
    RUNNING_KEY,
    StepFailed,
    definition_of,
    insert_run,
    parsed_version,
)
from puente.automation.workflows.models import (
    ACTIVE,
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.incoming import stored_in_session
from puente.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    bot_is_paused,
)
from puente.db.base import utcnow
from puente.events import (
    BroadcastReplied,
    ContactTagged,
    ContactUpdated,
    ConversationUpdated,
    MessageStored,
    react,
)
from puente.jobs import WORKFLOWS

INDEX_SECONDS = 2.0
_SILENT_TYPES = frozenset({"system", "reaction", "unsupported"})
_PUNCTUATION = re.compile(r"[^\w\s]")
# Outside business hours a conversation starts an out-of-hours workflow once per period.
OUTSIDE_HOURS_PERIOD = dt.timedelta(hours=12)


# -- the index of enabled workflows ----------------------------------------------------------


@dataclass(frozen=True)
class Enabled:
    """A switched-on workflow as triggers need it, worked out once per index refresh."""

    workspace_id: int
    workflow_id: int
    version_id: int
    trigger_type: str
    trigger: Trigger
    keywords: tuple[str, ...]  # folded, punctuation gone, between spaces (" precio ")
    answers: bool  # some step talks to the customer
    asks: bool  # some step asks a question


@dataclass(frozen=True)
class _Entry:
    at: float
    workflows: tuple[Enabled, ...]
    asking: bool  # some run of the workspace waits for an answer
    asks: bool = False  # that, or some workflow asks a question (worked out once)


def _enabled(
    workspace_id: int, workflow_id: int, version_id: int, definition: Definition
) -> Enabled:
    trigger = definition.trigger
    return Enabled(
        workspace_id=workspace_id,
        workflow_id=workflow_id,
        version_id=version_id,
        trigger_type=trigger.type,
        trigger=trigger,
        keywords=tuple(f" {k} " for k in (normalize(k) for k in trigger.keywords) if k),
        answers=any(step.type in SENDING_STEPS for step in definition.steps),
        asks=any(step.type == "question" for step in definition.steps),
    )


class WorkflowIndex:
    """Per database (engine) and workspace: a process may hold several databases (tests
    do), and the same workspace id in each is another workspace."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[Any, dict[int, _Entry]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _of(self, session: Session) -> dict[int, _Entry]:
        engine = session.get_bind()
        engine = getattr(engine, "engine", engine)  # a Connection's engine
        with self._lock:
            return self._entries.setdefault(engine, {})

    def get(self, session: Session, workspace_id: int) -> _Entry:
        now = time.monotonic()
        entries = self._of(session)
        with self._lock:
            entry = entries.get(workspace_id)
        if entry is not None and now - entry.at < INDEX_SECONDS:
            return entry
        rows = session.execute(
            select(Workflow.id, WorkflowVersion)
            .join(WorkflowVersion, WorkflowVersion.id == Workflow.published_version_id)
            .where(Workflow.workspace_id == workspace_id, Workflow.enabled.is_(True))
        ).all()
        asking = bool(
            session.scalar(
                select(
                    exists().where(
                        WorkflowRun.workspace_id == workspace_id,
                        WorkflowRun.status == RunStatus.ASKING.value,
                    )
                )
            )
        )
        workflows = tuple(
            _enabled(workspace_id, wid, version.id, parsed_version(session, version))
            for wid, version in rows
        )
        entry = _Entry(now, workflows, asking, asking or any(w.asks for w in workflows))
        with self._lock:
            entries[workspace_id] = entry
        return entry

    def forget(self, workspace_id: int) -> None:
        """Forget the workspace in every database (the caller's commit was in one)."""
        with self._lock:
            for entries in self._entries.values():
                entries.pop(workspace_id, None)


INDEX = WorkflowIndex()


def forget_after_commit(session: Session, workspace_id: int) -> None:
    """A workflow was switched, published or a run began to ask: this process sees it at
    once (other processes within INDEX_SECONDS)."""
    from puente.db.session import on_commit

    on_commit(session, lambda: INDEX.forget(workspace_id))


def _matching(session: Session, workspace_id: int, kinds: tuple[str, ...]) -> list[Enabled]:
    return [w for w in INDEX.get(session, workspace_id).workflows if w.trigger_type in kinds]


# -- starting runs -----------------------------------------------------------------------------


def _start(
    session: Session,
    enabled: Enabled,
    *,
    workspace_id: int,
    trigger: str,
    key: str,
    contact_id: int | None,
    conversation_id: int | None,
    variables: dict[str, Any] | None = None,
    now: dt.datetime,
) -> WorkflowRun | None:
    """A ready run of the workflow's published version, unless this key started one."""
    if enabled.workflow_id in session.info.get(RUNNING_KEY, ()):
        return None  # the workflow's own effect
    try:
        definition = definition_of(session, enabled.version_id)
    except StepFailed:
        return None
    return insert_run(
        session,
        workspace_id=workspace_id,
        workflow_id=enabled.workflow_id,
        version_id=enabled.version_id,
        definition=definition,
        trigger=trigger,
        key=key,
        contact_id=contact_id,
        conversation_id=conversation_id,
        variables=dict(variables or {}),
        now=now,
    )


def _trigger_holds(
    session: Session,
    trigger: Trigger,
    *,
    workspace_id: int,
    contact: Contact | None,
    conversation: Conversation | None,
    message_text: str | None,
    now: dt.datetime,
) -> bool:
    if trigger.channel_ids and (
        conversation is None or conversation.channel_id not in trigger.channel_ids
    ):
        return False
    if trigger.conditions is None or not trigger.conditions.rules:
        return True
    ctx = RunContext(
        session=session,
        workspace_id=workspace_id,
        now=now,
        contact=contact,
        conversation=conversation,
        variables={},
        message_text=message_text,
    )
    return ctx.holds(trigger.conditions)


def normalize(text: str) -> str:
    """Folded (case, accents), punctuation gone, spaces squeezed."""
    return " ".join(_PUNCTUATION.sub(" ", fold(text)).split())


def keyword_matches(trigger: Trigger, text: str) -> bool:
    """Keywords and phrases, case and accents ignored: "contains" finds them as whole
    words anywhere in the message, "exact" wants the message to be one of them."""
    keywords = tuple(f" {k} " for k in (normalize(k) for k in trigger.keywords) if k)
    return _matches(keywords, trigger.keyword_mode, f" {normalize(text)} ")


def _matches(keywords: tuple[str, ...], mode: str, said: str) -> bool:
    """`said` and each keyword between spaces, so that only whole words match."""
    if said == "  ":
        return False
    if mode == "exact":
        return said in keywords
    return any(keyword in said for keyword in keywords)


# -- a customer's message ----------------------------------------------------------------------


def on_customer_message(session: Session, event: MessageStored) -> None:
    """automation.reactions' first step: a waiting question takes its answer; otherwise
    the workflows a customer's message starts are started. What does not depend on the
    message (each trigger, its keywords folded) was worked out with the index: a message
    that starts nothing costs a few comparisons in memory."""
    entry = INDEX.get(session, event.workspace_id)
    if not entry.workflows and not entry.asking:
        return
    if event.type in _SILENT_TYPES:
        return
    now = utcnow()
    conversation = session.get(Conversation, event.conversation_id)
    if conversation is None:
        return
    said_now = _said(session, event.message_id)
    # Only a workspace with a workflow that asks (or a test run waiting for an answer,
    # which this process knows of at once) looks for a run waiting in this conversation.
    if entry.asks and _give_answer(session, conversation, said_now, now):
        mark_answered(session, event.message_id)
        return
    text = said_now["text"] or None
    said: str | None = None  # the text normalized, once, when a keyword needs it
    closed: bool | None = None  # whether the number is closed, once, when needed
    matched: list[tuple[Enabled, str]] = []
    for enabled in entry.workflows:
        trigger = enabled.trigger
        key = f"message:{event.message_id}"
        if enabled.trigger_type == "message_received":
            if trigger.match == "first" and not event.opened:
                continue
            if trigger.match == "keyword":
                if said is None:
                    said = f" {normalize(text or '')} "
                if not _matches(enabled.keywords, trigger.keyword_mode, said):
                    continue
        elif enabled.trigger_type == "outside_hours":
            if closed is None:
                closed = _is_closed(session, conversation, now)
            if not closed:
                continue
            period = int(now.timestamp() // OUTSIDE_HOURS_PERIOD.total_seconds())
            key = f"outside:{conversation.id}:{period}"
        elif enabled.trigger_type != "conversation_opened" or not event.opened:
            continue
        matched.append((enabled, key))
    if not matched or bot_is_paused(conversation, now):
        return
    contact = session.get(Contact, conversation.contact_id)
    # One context for every workflow's conditions: the contact's tags are read once.
    ctx = RunContext(
        session=session,
        workspace_id=event.workspace_id,
        now=now,
        contact=contact,
        conversation=conversation,
        variables={},
        message_text=text,
    )
    answered = False
    for enabled, key in matched:
        trigger = enabled.trigger
        if trigger.channel_ids and conversation.channel_id not in trigger.channel_ids:
            continue
        if not ctx.holds(trigger.conditions):
            continue
        run = _start(
            session,
            enabled,
            workspace_id=event.workspace_id,
            trigger=enabled.trigger_type,
            key=key,
            contact_id=conversation.contact_id,
            conversation_id=conversation.id,
            variables={"message_text": text} if text else None,
            now=now,
        )
        # A keyword is addressed to its workflow: when it talks to the customer, it answers
        # this message and the bot stays quiet. A first message or one outside business
        # hours may still be a question the bot can answer.
        if run is not None and enabled.trigger.match == "keyword" and enabled.answers:
            answered = True
    if answered:
        mark_answered(session, event.message_id)


def _is_closed(session: Session, conversation: Conversation, now: dt.datetime) -> bool:
    channel = session.get(Channel, conversation.channel_id)
    hours = cached_hours(session, channel) if channel is not None else None
    return hours is not None and not is_open(hours, now)


def _said(session: Session, message_id: int) -> dict[str, Any]:
    """What the customer said, as a question's answer reads it: the text, and the id of
    the button or list row they tapped."""
    stored = stored_in_session(session, message_id)
    if stored is not None:
        text, content = stored.text, stored.content
    else:
        message = session.get(Message, message_id)
        text, content = (message.text, message.content) if message is not None else ("", {})
    chosen = None
    kind = content.get("type") if isinstance(content, dict) else None
    if isinstance(kind, str) and isinstance(content.get(kind), dict):
        chosen = content[kind].get("id")  # a tapped button or list row
    return {"text": text or "", "id": chosen, "message_id": message_id}


def _give_answer(
    session: Session, conversation: Conversation, reply: dict[str, Any], now: dt.datetime
) -> bool:
    """The customer's message is the answer to a run's question in this conversation:
    the run wakes with it. When a person has taken the conversation over meanwhile, the
    question is dropped (the run stops) and the message is theirs to answer."""
    asking = session.scalars(
        select(WorkflowRun)
        .where(
            WorkflowRun.conversation_id == conversation.id,
            WorkflowRun.status == RunStatus.ASKING.value,
        )
        .order_by(WorkflowRun.id)
    ).all()
    if not asking:
        return False
    if bot_is_paused(conversation, now):
        for run in asking:
            if not run.variables.get("bot_off_by_run"):
                _stop(
                    run,
                    N_("A person is answering this conversation: the question was dropped."),
                    now,
                )
        return False
    for run in asking:
        variables = dict(run.variables)
        variables["reply"] = reply
        run.variables = variables
        run.status = RunStatus.READY.value
        run.wake_at = now
    WORKFLOWS.wake_after_commit(session)
    return True


def _stop(run: WorkflowRun, reason: str, now: dt.datetime) -> None:
    run.status = RunStatus.STOPPED.value
    run.error = reason
    run.wake_at = None
    run.finished_at = now


# -- other events ------------------------------------------------------------------------------


def _start_each(
    session: Session,
    matching: list[Enabled],
    *,
    workspace_id: int,
    kind: str,
    key: str,
    contact: Contact | None,
    conversation: Conversation | None,
    wanted: Callable[[Trigger], bool] = lambda trigger: True,
    variables: dict[str, Any] | None = None,
) -> None:
    """Start each of `matching` whose trigger wants this event and whose conditions hold."""
    now = utcnow()
    for enabled in matching:
        if not wanted(enabled.trigger) or not _trigger_holds(
            session,
            enabled.trigger,
            workspace_id=workspace_id,
            contact=contact,
            conversation=conversation,
            message_text=None,
            now=now,
        ):
            continue
        _start(
            session,
            enabled,
            workspace_id=workspace_id,
            trigger=kind,
            key=key,
            contact_id=contact.id if contact is not None else None,
            conversation_id=conversation.id if conversation is not None else None,
            variables=variables,
            now=now,
        )


def _on_conversation_updated(session: Session, event: ConversationUpdated) -> None:
    if event.change != "status":
        return
    if event.status == ConversationStatus.RESOLVED.value:
        kind = "conversation_closed"
    elif event.status == ConversationStatus.OPEN.value:
        kind = "conversation_opened"
    else:
        return
    matching = _matching(session, event.workspace_id, (kind,))
    conversation = session.get(Conversation, event.conversation_id) if matching else None
    if conversation is None:
        return
    _start_each(
        session,
        matching,
        workspace_id=event.workspace_id,
        kind=kind,
        key=f"{kind}:{conversation.id}:{event.event_id or utcnow().isoformat()}",
        contact=session.get(Contact, conversation.contact_id),
        conversation=conversation,
    )


def _latest_conversation(session: Session, contact_id: int) -> Conversation | None:
    return session.scalar(
        select(Conversation)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.last_activity_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    )


def _start_for_contact(
    session: Session,
    workspace_id: int,
    contact_id: int,
    kind: str,
    key: str,
    wanted: Callable[[Trigger], bool],
) -> None:
    matching = _matching(session, workspace_id, (kind,))
    if not matching:
        return
    _start_each(
        session,
        matching,
        workspace_id=workspace_id,
        kind=kind,
        key=f"{key}:{utcnow().isoformat()}",
        contact=session.get(Contact, contact_id),
        conversation=_latest_conversation(session, contact_id),
        wanted=wanted,
    )


def _on_contact_tagged(session: Session, event: ContactTagged) -> None:
    tags = {fold(t) for t in event.tags}
    _start_for_contact(
        session,
        event.workspace_id,
        event.contact_id,
        "tag_added",
        f"tag:{event.contact_id}:{','.join(sorted(tags))}",
        lambda trigger: fold(trigger.tag or "") in tags,
    )


def _on_contact_updated(session: Session, event: ContactUpdated) -> None:
    if not event.fields:
        return
    fields = {fold(f) for f in event.fields}

    def wanted(trigger: Trigger) -> bool:
        name = fold(trigger.field or "")
        return name in fields or f"custom.{name}" in fields

    _start_for_contact(
        session,
        event.workspace_id,
        event.contact_id,
        "field_changed",
        f"field:{event.contact_id}:{','.join(sorted(fields))}",
        wanted,
    )


def _on_broadcast_reply(session: Session, event: BroadcastReplied) -> None:
    matching = _matching(session, event.workspace_id, ("broadcast_reply",))
    if not matching:
        return
    message = session.get(Message, event.message_id) if event.message_id else None
    conversation = (
        session.get(Conversation, message.conversation_id)
        if message is not None
        else _latest_conversation(session, event.contact_id)
    )
    _start_each(
        session,
        matching,
        workspace_id=event.workspace_id,
        kind="broadcast_reply",
        key=f"broadcast-reply:{event.recipient_id}",
        contact=session.get(Contact, event.contact_id),
        conversation=conversation,
        wanted=lambda t: t.broadcast_id is None or t.broadcast_id == event.broadcast_id,
        variables={"vars": {"broadcast_id": event.broadcast_id}},
    )


# -- no reply for N minutes (the worker's sweep) -------------------------------------------------

# Conversations that went quiet longer ago than this before the workflow's time are not
# woken up: switching a workflow on does not message every old conversation.
NO_REPLY_HORIZON = dt.timedelta(days=1)


def start_no_reply_runs(session: Session, workspace_id: int, now: dt.datetime) -> int:
    """Start the workspace's no-reply workflows for conversations quiet long enough;
    each conversation once per message it is waiting on. Returns how many started."""
    started = 0
    for enabled in _matching(session, workspace_id, ("no_reply",)):
        trigger = enabled.trigger
        minutes = dt.timedelta(minutes=trigger.minutes or 60)
        due = now - minutes
        stmt = select(Conversation).where(
            Conversation.workspace_id == workspace_id,
            Conversation.status == ConversationStatus.OPEN.value,
        )
        if trigger.waiting_on == "team":
            # The customer wrote and nobody of the team (nor Puente) answered.
            stmt = stmt.where(
                Conversation.waiting_since <= due,
                Conversation.waiting_since > due - NO_REPLY_HORIZON,
                Conversation.last_message_source == "customer",
            )
        else:
            # The team (or Puente) wrote last and the customer has not answered.
            stmt = stmt.where(
                Conversation.last_message_source.in_(("agent", "bot", "api", "business_app")),
                Conversation.last_activity_at <= due,
                Conversation.last_activity_at > due - NO_REPLY_HORIZON,
            )
        for conversation in session.scalars(stmt.limit(500)):
            if trigger.channel_ids and conversation.channel_id not in trigger.channel_ids:
                continue
            contact = session.get(Contact, conversation.contact_id)
            if not _trigger_holds(
                session,
                trigger,
                workspace_id=workspace_id,
                contact=contact,
                conversation=conversation,
                message_text=None,
                now=now,
            ):
                continue
            run = _start(
                session,
                enabled,
                workspace_id=workspace_id,
                trigger="no_reply",
                key=f"no-reply:{conversation.id}:{conversation.last_message_id}",
                contact_id=conversation.contact_id,
                conversation_id=conversation.id,
                now=now,
            )
            started += run is not None
    return started


def workspaces_with_no_reply(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Workflow.workspace_id)
            .where(Workflow.enabled.is_(True), Workflow.trigger_type == "no_reply")
            .distinct()
        )
    )


def stop_active_runs(session: Session, conversation_id: int, reason: str) -> int:
    result = session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.conversation_id == conversation_id, WorkflowRun.status.in_(ACTIVE))
        .values(status=RunStatus.STOPPED.value, error=reason, wake_at=None, finished_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


react(ConversationUpdated, _on_conversation_updated)
react(ContactTagged, _on_contact_tagged)
react(ContactUpdated, _on_contact_updated)
react(BroadcastReplied, _on_broadcast_reply)
