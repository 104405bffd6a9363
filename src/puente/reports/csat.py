"""Customer satisfaction surveys: sent when a conversation closes on a number whose survey
is on, answered from the customer's phone, counted for reports.

Closing a conversation (an agent, a workflow, anything that calls `collab.do_close`)
creates the survey and queues its message through the outbox in the same transaction.
The customer's answer (a tapped button or list row, a typed number or an answer's title)
is taken before the inbox sees it (`conversations.replies`): it is stored in the
conversation, but it never reopens it, counts as unread for nobody and notifies no one.
Anything else the customer writes ends the survey and goes to the inbox as usual.

Imported by every process that stores messages or closes conversations (next to
`puente.automation.reactions`), which registers its reaction and its taker."""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.events import conversation_updated
from puente.conversations.incoming import NewMessage
from puente.conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    MessageSource,
)
from puente.conversations.replies import take_replies_with
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.events import ConversationUpdated, publish, react
from puente.outbound.outbox.service import do_queue_message, window_is_open
from puente.reports.csat_settings import Mode, SurveySettings, survey_settings
from puente.reports.facts import Fact, Kind, record
from puente.reports.models import CsatSurvey

log = logging.getLogger(__name__)

ANSWER_WAIT = dt.timedelta(hours=24)
# After the score, the next text is the comment only this soon: later, it is the customer
# writing about something else.
COMMENT_WAIT = dt.timedelta(hours=1)
MAX_COMMENT = 2000
ID_PREFIX = "csat:"  # a button's or row's id: csat:<survey id>:<score>


class State:
    ASKED = "asked"
    COMMENT = "comment"
    ANSWERED = "answered"
    EXPIRED = "expired"


OPEN_STATES = (State.ASKED, State.COMMENT)


# -- asking ----------------------------------------------------------------------------------


def _on_conversation_updated(session: Session, event: ConversationUpdated) -> None:
    if event.change != "status" or event.status != ConversationStatus.RESOLVED.value:
        return
    channel = session.get(Channel, event.channel_id)
    if channel is None:
        return
    settings = survey_settings(channel)
    if not settings.on:
        return
    conversation = session.get(Conversation, event.conversation_id)
    if conversation is not None:
        do_send_survey(session, conversation, settings, utcnow())


def do_send_survey(
    session: Session, conversation: Conversation, settings: SurveySettings, now: dt.datetime
) -> CsatSurvey | None:
    """Create the survey and queue its message (the buttons or list inside the 24-hour
    window, the template outside it). None when none goes: the customer never wrote, a
    survey is still waiting for its answer, the window is closed and no template is set,
    or the outbox refuses the message (the number is disconnected, say)."""
    if conversation.last_inbound_at is None:
        return None
    if _open_survey(session, conversation, now) is not None:
        return None
    inside = window_is_open(conversation, now)
    if not inside and not settings.template_name:
        return None
    try:
        with session.begin_nested():
            survey = CsatSurvey(
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                channel_id=conversation.channel_id,
                contact_id=conversation.contact_id,
                agent_id=conversation.assignee_id,
                team_id=conversation.team_id,
                state=State.ASKED,
                expires_at=now + ANSWER_WAIT,
            )
            session.add(survey)
            session.flush()
            if inside:
                kind, content = "interactive", interactive_of(settings, survey.id)
            else:
                kind, content = "template", template_of(settings)
            _queue(session, conversation, kind, content)
    except PuenteError as exc:
        log.info("no survey for conversation %s: %s", conversation.id, exc.message)
        return None
    return survey


def interactive_of(settings: SurveySettings, survey_id: int) -> dict[str, Any]:
    """The question with its answers, each answer's id naming the survey and the score."""
    body = {"text": settings.question_text}
    ids = {o.score: f"{ID_PREFIX}{survey_id}:{o.score}" for o in settings.options}
    if settings.mode == Mode.LIST.value:
        rows = [
            {"id": ids[o.score], "title": o.title, "description": o.description}
            for o in settings.options
        ]
        words = settings.texts
        return {
            "type": "list",
            "body": body,
            "action": {
                "button": words["list_button"],
                "sections": [{"title": words["section"], "rows": rows}],
            },
        }
    buttons = [
        {"type": "reply", "reply": {"id": ids[o.score], "title": o.title}} for o in settings.options
    ]
    return {"type": "button", "body": body, "action": {"buttons": buttons}}


def template_of(settings: SurveySettings) -> dict[str, Any]:
    return {"name": settings.template_name, "language": {"code": settings.template_language}}


def _queue(session: Session, conversation: Conversation, kind: str, content: Any) -> None:
    do_queue_message(
        session,
        workspace_id=conversation.workspace_id,
        message_type=kind,
        content=content,
        conversation_id=conversation.id,
        source=MessageSource.BOT,
    )


def _open_survey(
    session: Session, conversation: Conversation, now: dt.datetime
) -> CsatSurvey | None:
    """The survey still waiting in this conversation, if any; one that waited too long
    is ended here (surveys expire lazily, when something looks at them)."""
    survey = session.scalar(
        select(CsatSurvey)
        .where(
            CsatSurvey.workspace_id == conversation.workspace_id,
            CsatSurvey.conversation_id == conversation.id,
            CsatSurvey.state.in_(OPEN_STATES),
        )
        .order_by(CsatSurvey.id.desc())
        .limit(1)
    )
    if survey is None or not _stale(survey, now):
        return survey
    _end(survey)
    return None


def _stale(survey: CsatSurvey, now: dt.datetime) -> bool:
    return survey.expires_at is not None and survey.expires_at <= now


def _end(survey: CsatSurvey) -> None:
    """No (more) answer: a survey with its score is answered, one without expires."""
    survey.state = State.ANSWERED if survey.score is not None else State.EXPIRED


# -- answers ---------------------------------------------------------------------------------


def take_answer(
    session: Session, conversation: Conversation, message: NewMessage, message_id: int
) -> bool:
    """The taker (conversations.replies) for a customer's message in a closed conversation:
    True when it answers the conversation's survey, which then keeps it from the inbox."""
    chosen = _chosen_id(message)
    if chosen is not None and chosen.startswith(ID_PREFIX):
        return _take_tap(session, conversation, message, chosen)
    # The number is in the session already (ingest loaded it): a number without a survey
    # costs no statement. One asked before it was switched off ends by itself.
    channel = session.get(Channel, conversation.channel_id)
    settings = survey_settings(channel) if channel is not None else SurveySettings()
    if not settings.on:
        return False
    survey = _open_survey(session, conversation, message.timestamp)
    if survey is None:
        return False
    if survey.state == State.COMMENT:
        if message.type != "text" or not (message.text or "").strip():
            _end(survey)  # the customer moved on: the message is the inbox's
            return False
        _comment(session, conversation, survey, (message.text or "").strip(), message.timestamp)
        return True
    score = score_of(settings, message)
    if score is None:
        _end(survey)  # not an answer: the survey is over, the inbox takes the message
        return False
    _score(session, conversation, survey, score, message.timestamp)
    return True


def _take_tap(
    session: Session, conversation: Conversation, message: NewMessage, chosen: str
) -> bool:
    """A tapped answer names its survey: a second tap (or one on an answered survey's
    message) changes nothing and stays out of the inbox, as the first did."""
    parts = chosen.removeprefix(ID_PREFIX).split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    survey = session.get(CsatSurvey, int(parts[0]))
    if survey is None or survey.conversation_id != conversation.id:
        return False
    if survey.workspace_id != conversation.workspace_id:
        return False
    if survey.state in (State.COMMENT, State.ANSWERED):
        return True
    if survey.state != State.ASKED or _stale(survey, message.timestamp):
        if survey.state == State.ASKED:
            _end(survey)
        return False
    score = int(parts[1])
    if not 1 <= score <= 5:
        return False
    _score(session, conversation, survey, score, message.timestamp)
    return True


def _chosen_id(message: NewMessage) -> str | None:
    """The id of the button or list row tapped, or a template button's payload."""
    content = message.content if isinstance(message.content, dict) else {}
    kind = content.get("type")
    reply = content.get(kind) if isinstance(kind, str) else None
    if isinstance(reply, dict) and isinstance(reply.get("id"), str):
        return str(reply["id"])
    payload = content.get("payload")
    return payload if isinstance(payload, str) else None


def _plain(text: str) -> str:
    """Lower case, without accents, emoji or punctuation: how typed answers compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(kept.casefold().split())


def score_of(settings: SurveySettings, message: NewMessage) -> int | None:
    """The score a message gives: a number from 1 to 5, or one of the answers' titles
    (a template's quick-reply button arrives as its text). None when it is no answer."""
    said = {_plain(message.text or "")}
    payload = _chosen_id(message)
    if payload:
        said.add(_plain(payload))
    for text in said:
        if text.isdigit() and 1 <= int(text) <= 5:
            return int(text)
        for option in settings.options:
            if text and text == _plain(option.title):
                return option.score
    return None


def _score(
    session: Session,
    conversation: Conversation,
    survey: CsatSurvey,
    score: int,
    at: dt.datetime,
) -> None:
    survey.score = score
    survey.answered_at = at
    survey.state = State.ANSWERED
    channel = session.get(Channel, conversation.channel_id)
    settings = survey_settings(channel) if channel is not None else SurveySettings()
    if settings.follow_up and _ask_comment(session, conversation, settings):
        survey.state = State.COMMENT
        survey.expires_at = at + COMMENT_WAIT
    record(
        session,
        Fact(
            kind=Kind.CSAT.value,
            workspace_id=survey.workspace_id,
            at=at,
            channel_id=survey.channel_id,
            conversation_id=survey.conversation_id,
            team_id=survey.team_id or 0,
            agent_id=survey.agent_id or 0,
            label=str(score),
        ),
    )
    _timeline(session, conversation, "csat", {"survey_id": survey.id, "score": score})


def _ask_comment(session: Session, conversation: Conversation, settings: SurveySettings) -> bool:
    try:
        with session.begin_nested():
            _queue(session, conversation, "text", {"body": settings.comment_text})
    except PuenteError as exc:
        log.info("no comment question in conversation %s: %s", conversation.id, exc.message)
        return False
    return True


def _comment(
    session: Session, conversation: Conversation, survey: CsatSurvey, text: str, at: dt.datetime
) -> None:
    survey.comment = text[:MAX_COMMENT]
    survey.state = State.ANSWERED
    data = {"survey_id": survey.id, "score": survey.score, "comment": survey.comment}
    _timeline(session, conversation, "csat_comment", data)


def _timeline(
    session: Session, conversation: Conversation, kind: str, data: dict[str, Any]
) -> None:
    """An entry in the conversation's timeline (and the contact's), shown live."""
    entry = ConversationEvent(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        actor_id=None,
        kind=kind,
        data=data,
    )
    session.add(entry)
    session.flush()
    publish(session, conversation_updated(conversation, "csat", event_id=entry.id))


# -- reading ---------------------------------------------------------------------------------


def latest_survey(session: Session, conversation: Conversation) -> CsatSurvey | None:
    """The conversation's newest survey, for its panel."""
    return session.scalar(
        select(CsatSurvey)
        .where(
            CsatSurvey.workspace_id == conversation.workspace_id,
            CsatSurvey.conversation_id == conversation.id,
        )
        .order_by(CsatSurvey.id.desc())
        .limit(1)
    )


react(ConversationUpdated, _on_conversation_updated)
take_replies_with(take_answer)
