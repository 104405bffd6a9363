"""The knowledge-base bot at work, inside the transaction that stored a customer's message
(the first of automation's STEPS): it answers with the best entry above the workspace's
threshold, or hands the conversation to the team (bot paused, conversation open and
waiting, a handoff message) when the customer asks for a person, when it could not answer
several questions in a row, or when someone of the team writes in the conversation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.answered import was_answered
from puente.automation.kb import BotSettings, access_entry, bot_settings
from puente.automation.kb_models import KbConversation
from puente.automation.kb_search import Match, best_matches
from puente.automation.kb_text import asks_for_person, guess_language
from puente.contacts.models import Contact
from puente.contacts.optout_keywords import contact_language
from puente.conversations.collab import publish_conversation
from puente.conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Direction,
    Message,
    MessageSource,
    bot_is_paused,
)
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.events import MessageStored, react
from puente.outbound.outbox.service import do_queue_message
from puente.reports import facts

log = logging.getLogger(__name__)

_SETTINGS_CACHE = "puente.kb_bot_settings"


def settings_for(session: Session, workspace_id: int) -> BotSettings:
    """The workspace's bot settings, read once per session: an ingest batch is one
    session, so its messages share one look-up (none when the Workspace row is already
    in the session), and a workspace without the bot costs nothing more."""
    cache: dict[int, tuple[Workspace | None, BotSettings]] = session.info.setdefault(
        _SETTINGS_CACHE, {}
    )
    if workspace_id not in cache:
        workspace = session.get(Workspace, workspace_id)
        # The row is kept too: the session's identity map holds it only while something
        # does, and the opt-out keywords read the same row later in the batch.
        cache[workspace_id] = (workspace, bot_settings(workspace) if workspace else BotSettings())
    return cache[workspace_id][1]


# -- deciding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message: "answer" (with `answer`), "handoff" (the
    customer asked for a person, or this was one unanswered question too many) or
    "wait" (no entry was close enough; the question counts as unanswered)."""

    action: str
    reason: str  # "matched", "asked_for_person", "unanswered", "below_threshold"
    language: str | None = None
    answer: str | None = None
    entry_id: int | None = None
    matches: list[Match] = field(default_factory=list)


def decide(
    session: Session,
    workspace_id: int,
    settings: BotSettings,
    text: str,
    unanswered_before: int = 0,
) -> Decision:
    asked = asks_for_person(text)
    if asked is not None:
        return Decision("handoff", "asked_for_person", language=asked)
    matches = best_matches(session, workspace_id, text)
    if matches and matches[0].score >= settings.threshold:
        view = access_entry(session, workspace_id, matches[0].entry_id)
        return Decision(
            "answer",
            "matched",
            language=view.entry.language,
            answer=view.entry.answer,
            entry_id=view.entry.id,
            matches=matches,
        )
    language = guess_language(text)
    if unanswered_before + 1 >= settings.max_unanswered:
        return Decision("handoff", "unanswered", language=language, matches=matches)
    return Decision("wait", "below_threshold", language=language, matches=matches)


# -- the step -------------------------------------------------------------------------------


def answer_with_knowledge_base(session: Session, event: MessageStored) -> None:
    """automation.reactions' first step, for a customer's own new message."""
    settings = settings_for(session, event.workspace_id)
    if not settings.enabled or event.type != "text" or was_answered(session, event.message_id):
        return
    conversation = session.get(Conversation, event.conversation_id)
    message = session.get(Message, event.message_id)
    if conversation is None or bot_is_paused(conversation, utcnow()) or message is None:
        return
    if not (message.text or "").strip():
        return
    state = session.get(KbConversation, conversation.id)
    unanswered = state.unanswered if state is not None else 0
    decision = decide(session, event.workspace_id, settings, message.text or "", unanswered)
    if decision.action == "answer":
        assert decision.answer is not None
        _send(session, conversation, decision.answer)
        # The customer has their answer: nobody of the team is being waited for.
        conversation.waiting_since = None
        unanswered = 0
    elif decision.action == "handoff":
        hand_off(session, conversation, settings, _language_of(session, conversation, decision))
        if conversation.waiting_since is None:
            conversation.waiting_since = message.timestamp
        unanswered = 0
    else:
        unanswered += 1
    if state is not None:
        state.unanswered = unanswered
    elif unanswered:
        _remember(session, conversation, unanswered)


def hand_off(
    session: Session, conversation: Conversation, settings: BotSettings, language: str
) -> None:
    """The bot steps back: paused for this conversation (the timeline says so), the
    conversation open for the team, left unassigned for routing or an agent to take, and
    the customer told in their language."""
    pause_bot(session, conversation)
    facts.record(
        session,
        facts.Fact(
            kind=facts.Kind.HANDOFF,
            workspace_id=conversation.workspace_id,
            at=utcnow(),
            channel_id=conversation.channel_id,
            team_id=conversation.team_id or 0,
            source="bot",
        ),
    )
    if conversation.status != ConversationStatus.OPEN.value:
        conversation.status = ConversationStatus.OPEN.value
        conversation.snoozed_until = None
    _send(session, conversation, settings.handoff_text(language))


def pause_bot(session: Session, conversation: Conversation) -> None:
    """Paused as an agent pauses it from the inbox (the timeline says "Puente paused the
    bot"), but with no audit entry: what Puente does by itself is not a person's action."""
    conversation.bot_paused = True
    conversation.bot_paused_until = None
    event = ConversationEvent(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        actor_id=None,
        kind="bot_paused",
        data={},
    )
    session.add(event)
    session.flush()
    publish_conversation(session, conversation, "bot", event_id=event.id)


def _language_of(session: Session, conversation: Conversation, decision: Decision) -> str:
    if decision.language is not None:
        return decision.language
    if decision.matches:
        best = access_entry(session, conversation.workspace_id, decision.matches[0].entry_id)
        return best.entry.language
    contact = session.get(Contact, conversation.contact_id)
    return contact_language(contact) if contact is not None else "es"


def _send(session: Session, conversation: Conversation, body: str) -> None:
    # The customer has just written, so the service window is open. A send that cannot
    # be queued (the number is disconnected, say) is logged; the bot's decision stands.
    try:
        with session.begin_nested():
            do_queue_message(
                session,
                workspace_id=conversation.workspace_id,
                message_type="text",
                content={"body": body},
                conversation_id=conversation.id,
                source=MessageSource.BOT,
            )
    except PuenteError as exc:
        log.warning("bot message to conversation %s not queued: %s", conversation.id, exc)


def _remember(session: Session, conversation: Conversation, unanswered: int) -> None:
    # An upsert: two workers processing the same conversation's messages never trip over
    # each other's first row.
    table: Any = KbConversation.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(
        conversation_id=conversation.id,
        workspace_id=conversation.workspace_id,
        unanswered=unanswered,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.conversation_id],
            set_={"unanswered": statement.excluded.unanswered},
        )
    )


# -- when the team writes ---------------------------------------------------------------------


def pause_when_the_team_writes(session: Session, event: MessageStored) -> None:
    """An agent's message pauses the bot in that conversation: a person has taken over."""
    if event.direction != Direction.OUTBOUND.value or event.source != MessageSource.AGENT.value:
        return
    if not settings_for(session, event.workspace_id).enabled:
        return
    conversation = session.get(Conversation, event.conversation_id)
    if conversation is None or (conversation.bot_paused and conversation.bot_paused_until is None):
        return
    pause_bot(session, conversation)
    session.execute(
        update(KbConversation)
        .where(
            KbConversation.workspace_id == conversation.workspace_id,
            KbConversation.conversation_id == conversation.id,
        )
        .values(unanswered=0)
    )


react(MessageStored, pause_when_the_team_writes)
