"""Customer messages that are not for the inbox: the answer to a satisfaction survey sent
when the conversation closed is stored in the conversation like any message, but it
reopens nothing, counts as unread for nobody, notifies no one and starts no automation.

Whoever takes such answers registers a taker here (reports.csat does), so storing
messages needs no import of them. Takers are asked only about a customer's message in a
closed conversation, so the usual message costs nothing."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from puente.conversations.incoming import NewMessage
from puente.conversations.models import Conversation

# (session, conversation, the message as it came in, its stored id) -> whether it was taken.
Taker = Callable[[Session, Conversation, NewMessage, int], bool]

_TAKERS: list[Taker] = []
_TAKEN_KEY = "puente.taken_replies"  # session.info: the ids of the messages taken


def take_replies_with(taker: Taker) -> None:
    """Register `taker` (once per process, at import time)."""
    _TAKERS.append(taker)


def take_reply(
    session: Session, conversation: Conversation, message: NewMessage, message_id: int
) -> bool:
    """Whether a taker takes this customer's message: then it is theirs, not the inbox's."""
    for taker in _TAKERS:
        if taker(session, conversation, message, message_id):
            session.info.setdefault(_TAKEN_KEY, set()).add(message_id)
            return True
    return False


def was_taken(session: Session, message_id: int) -> bool:
    """Whether this transaction's message `message_id` was taken (automation skips it)."""
    return message_id in session.info.get(_TAKEN_KEY, ())
